"""verify/_canon.py: how verify shows and canonicalises values; tests written for survivors
of the mutation run (tests/mutation), each against a hand-written value."""

from __future__ import annotations

import functools
import itertools
import random
import sqlite3
from contextlib import closing
from typing import Any

from lite2pg.verify._canon import _cmp, _show, _sqlite_literal


def test_a_blob_is_shown_by_its_first_24_bytes_and_marked_cut_only_when_longer() -> None:
    assert _show(bytes(range(24))) == "\\x" + bytes(range(24)).hex() + " (24 bytes)"
    assert _show(bytes(range(25))) == "\\x" + bytes(range(24)).hex() + "... (25 bytes)"
    assert _show(b"") == "\\x (0 bytes)"


def test_text_is_shown_whole_up_to_the_limit_and_cut_past_it() -> None:
    assert _show("a" * 58) == "'" + "a" * 58 + "'"  # 60 characters with its quotes
    assert _show("a" * 59) == "'" + "a" * 55 + "...'"
    assert _show(None) == "NULL"
    assert _show("hunter2", secret=True) == "<redacted>"


def test_sqlite_reads_each_literal_back_as_the_value_it_was_made_from() -> None:
    values: list[Any] = [
        float("inf"),
        float("-inf"),
        -0.5,
        1e300,
        2**63 - 1,
        -(2**63),
        "it's",
        "",
        b"\x00\xff",
        None,
    ]
    with closing(sqlite3.connect(":memory:")) as db:
        for v in values:
            [(back,)] = db.execute(f"SELECT {_sqlite_literal(v)}").fetchall()
            assert back == v and type(back) is type(v), (v, back)
        [(one,)] = db.execute(f"SELECT {_sqlite_literal(True)}").fetchall()
        assert one == 1


KEYS: list[tuple[Any, ...]] = [(0,), (1, 5), (1, 7), (1, 7, "a"), (1, 7, "b"), (1, 8)]


def test_key_comparison_orders_as_python_orders_the_key_tuples() -> None:
    for a, b in itertools.product(KEYS, repeat=2):
        assert _cmp(a, b) == (a > b) - (a < b), (a, b)
    shuffled = random.Random(3).sample(KEYS, len(KEYS))
    assert sorted(shuffled, key=functools.cmp_to_key(_cmp)) == KEYS
