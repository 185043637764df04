"""verify's fast path renders a double as text `M p K` with x = M * 2**-K, the same SQL in
SQLite and PostgreSQL (verify/_render.py). Checked here against the value itself: Python's
exact rational of the double (fractions.Fraction), in every band of exponents."""

from __future__ import annotations

import math
import sqlite3
from contextlib import closing
from fractions import Fraction

import psycopg
import pytest

from lite2pg.verify._render import _bits

DOUBLES = [
    0.1,
    -1.5,
    1.0,
    3.0e-5,
    2.0**-64,
    1.5 * 2.0**-60,
    123456.789,
    2.0**40 + 0.5,
    2.0**56,
    2.0**56 + 16,  # the next double after 2**56
    -(2.0**60) - 256,
    2.0**62 + 2.0**10,
    2.0**63 - 1024,  # the largest double below 2**63
    # Outside 2**-64 .. 2**63 a double is the marker, never a text another double shares.
    2.0**-65,
    -1e-300,
    5e-324,
    2.0**63,
    -1e300,
]


def _in_bands(x: float) -> bool:
    return 2.0**-64 <= abs(x) < 2.0**63


def _exact(text: str) -> Fraction:
    mantissa, scale = text.split("p")
    return Fraction(int(mantissa)) / Fraction(2) ** int(scale)


@pytest.mark.parametrize("x", DOUBLES)
def test_a_double_renders_as_its_exact_value_and_alike_in_sqlite_and_postgresql(
    pg_dsn: str, x: float
) -> None:
    expression = _bits("x", "'0'", "?")
    with closing(sqlite3.connect(":memory:")) as db:
        [(in_sqlite,)] = db.execute(f"SELECT {expression} FROM (SELECT ? AS x)", (x,)).fetchall()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        row = conn.execute(
            f"SELECT {expression} FROM (SELECT %s::float8 AS x) AS t".encode(), (x,)
        ).fetchone()
    assert row is not None
    assert in_sqlite == row[0]
    if _in_bands(x):
        assert _exact(in_sqlite) == Fraction(x), (x, in_sqlite)
    else:
        assert in_sqlite == "?", (x, in_sqlite)


def test_neighbouring_doubles_render_apart() -> None:
    expression = _bits("x", "'0'", "?")
    with closing(sqlite3.connect(":memory:")) as db:
        for x in filter(_in_bands, DOUBLES):
            texts = {
                db.execute(f"SELECT {expression} FROM (SELECT ? AS x)", (y,)).fetchone()[0]
                for y in (math.nextafter(x, -math.inf), x, math.nextafter(x, math.inf))
            }
            assert len(texts) == 3 or "?" in texts, (x, texts)
