"""The fast path's renderings are a proof: for every storage class SQLite may hold in a
column (NULL, INTEGER, REAL, TEXT, BLOB, text that is not UTF-8), whatever the column's
declared type, equal texts on both sides (and no guard raised) mean that PostgreSQL holds
exactly what the load makes of the source value. A value SQLite cannot render exactly
must send its chunk row by row, and that path must name the row, the column and both
values."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import sql

from lite2pg.coerce import Family, PgType, converter, parse_pg_type
from lite2pg.errors import TransformError
from lite2pg.run import MigrateOptions, migrate
from lite2pg.schema import ColumnMap
from lite2pg.source import decode_text
from lite2pg.verify import VerifyReport, _fast, verify
from lite2pg.verify._canon import _canon_fn, _pg_canon, _text, null_marker, shortest_doubles
from lite2pg.verify._render import (
    FREE,
    any_of,
    pg_compare,
    pg_ok,
    pg_text,
    signed_zeros,
    sqlite_column,
)

from .conftest import MakeDb, PgSchema

# (declared type in SQLite, the PostgreSQL type it lands as): every affinity (INTEGER,
# REAL, NUMERIC, TEXT, BLOB or none), the declared types that map to special types, and
# types a plan may give a column of another affinity.
COLUMNS = [
    ("INTEGER", "bigint"),
    ("REAL", "double precision"),
    ("NUMERIC", "numeric"),
    ("DECIMAL(10,2)", "numeric(10,2)"),
    ("TEXT", "text"),
    ("", "text"),
    ("VARCHAR(20)", "text"),
    ("BLOB", "bytea"),
    ("BOOLEAN", "boolean"),
    ("DATE", "date"),
    ("DATETIME", "timestamptz"),
    ("TIMESTAMP", "timestamp"),
    ("TIME", "time"),
    ("JSON", "jsonb"),
    ("JSON", "json"),
    ("UUID", "uuid"),
    ("INET", "inet"),
    ("LABEL", "label"),  # an enum
    ("TEXT", "numeric"),
    ("TEXT", "double precision"),
    ("TEXT", "bigint"),
    ("TEXT", "boolean"),
    ("TEXT", "jsonb"),
    ("TEXT", "uuid"),
    ("TEXT", "timestamptz"),
    ("TEXT", "label"),
    ("INTEGER", "text"),
    ("REAL", "text"),
    ("REAL", "numeric"),
    ("NUMERIC", "text"),
]
LABELS = ("1", "2.5", "red", "0.1")


class NotUtf8(bytes):
    """Bytes stored as TEXT (SQLite keeps whatever bytes it is given)."""


_TRICKY_TEXT = [
    "",
    " ",
    "0",
    "-0",
    "5",
    "05",
    "5.0",
    "1.5",
    "1.50",
    ".5",
    "1e5",
    "1E+5",
    "NaN",
    "nan",
    "Infinity",
    "-infinity",
    "true",
    "t",
    "1",
    "0.1",
    "0.10000000000000001",
    "0.100000000000000",
    "1.23456789012346",
    "1.2345678901234568",
    "2021-03-04",
    "2021-03-04 10:20:30",
    "2021-03-04 10:20:30.5",
    "2021-03-04 10:20:30.500000",
    "2021-03-04T10:20:30",
    "2021-03-04 10:20:30+00",
    "2021-03-04 10:20:30.1234567",
    "10:20:30",
    "10:20:30.250",
    "24:00:00",
    '{"a": 1}',
    '{"a":1}',
    "[1, 2]",
    "[1,2]",
    '"x"',
    "null",
    "0123456789abcdef0123456789abcdef",
    "01234567-89ab-cdef-0123-456789abcdef",
    "10.0.0.1",
    "10.0.0.1/32",
    "::1",
    "red",
    "2.5",
    "a\x1fb",
    "a\x1db",
    "\x1d",
    "\x1b",
    "ab ",
]


def _floats() -> st.SearchStrategy[float]:
    return st.one_of(
        st.floats(allow_nan=False),
        st.floats(allow_nan=False, allow_infinity=False, width=32),
        st.sampled_from([0.1, 1.23456789012345678, -0.0, 0.0, 1e15, 1e16, 2.5, 5.0, 1e-7]),
        st.integers(-(2**60), 2**60).map(float),
        st.decimals(places=2, min_value=-(10**8), max_value=10**8).map(float),
    )


def _number_texts() -> st.SearchStrategy[str]:
    return st.one_of(
        _floats().map(repr),
        _floats().map(lambda f: f"{f:.15g}"),
        _floats().map(lambda f: f"{f:.17g}"),
        st.integers().map(str),
        st.decimals(allow_nan=False, allow_infinity=False).map(str),
    )


# A value of each storage class SQLite may hold in any column.
VALUES: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0, 1, 2, -1, 2**53, 2**53 + 1, 20210304]),
    _floats(),
    st.text(max_size=12),
    st.sampled_from(_TRICKY_TEXT),
    _number_texts(),
    st.uuids().map(lambda u: u.hex),
    st.binary(max_size=12),
    st.sampled_from(_TRICKY_TEXT).map(lambda s: s.encode()),
    st.binary(min_size=1, max_size=8).filter(lambda b: not _utf8(b)).map(NotUtf8),
)


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _source_table(path: Path, declared: str, values: list[Any]) -> sqlite3.Connection:
    """A SQLite table s(k, v) whose column v is declared `declared` and holds `values`
    with the storage class each has in Python, whatever the affinity (the writable_schema
    trick: stored without a type, then the declared type changed)."""
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE s (k INTEGER PRIMARY KEY, v)")
    for k, v in enumerate(values):
        value = "CAST(? AS TEXT)" if isinstance(v, NotUtf8) else "?"
        conn.execute(
            f"INSERT INTO s VALUES (?, {value})", (k, bytes(v) if isinstance(v, NotUtf8) else v)
        )
    conn.commit()
    conn.execute("PRAGMA writable_schema = 1")
    conn.execute(
        "UPDATE sqlite_master SET sql = ? WHERE name = 's'",
        (f"CREATE TABLE s (k INTEGER PRIMARY KEY, v {declared})",),
    )
    conn.commit()
    conn.close()
    conn = sqlite3.connect(path)
    conn.text_factory = decode_text
    return conn


REJECTED = object()


def _expected(pg: PgType, value: Any) -> Any:
    """What the load makes of a source value, as the canonical value; REJECTED if none."""
    try:
        return _canon_fn(pg)(converter(pg)(value))
    except (TransformError, ValueError, TypeError, ArithmeticError):
        return REJECTED


def _candidates(src: sqlite3.Connection, pg: PgType, k: int, value: Any, text: bytes) -> list[str]:
    """Texts that PostgreSQL may read as a value rendering like the source value: the
    source's own compare text, SQLite's text of the value, and what the load gives."""
    out = []
    if _utf8(text):
        out.append(text.decode())
    [cast] = src.execute("SELECT CAST(v AS TEXT) FROM s WHERE k = ?", (k,)).fetchone()
    if isinstance(cast, str):
        out.append(cast)
    expected = _expected(pg, value)
    if expected is not REJECTED and expected is not None:
        if isinstance(expected, bytes):
            out.append("\\x" + expected.hex())
        elif isinstance(expected, float):
            out.append(repr(expected))
        else:
            out.append(str(expected))
    return [t for t in dict.fromkeys(out) if "\x00" not in t]


def _shown(v: Any) -> str:
    return _text(v, "<NULL>")


def check_column(
    conn: psycopg.Connection[Any], path: Path, declared: str, pg_sql: str, values: list[Any]
) -> int:
    """Every PostgreSQL value whose compare text equals a guard-free source value's is what
    the load makes of that source value; the fast path hashes that value's canonical text.
    Returns how many such pairs were checked."""
    pg = parse_pg_type(pg_sql, LABELS if pg_sql == "label" else None)
    c = ColumnMap("v", "v", pg, not_null=False)
    src = _source_table(path, declared, values)
    col = sqlite_column(c, '"v"', declared)
    bad = any_of(col.bad) if col.bad else "0"
    rows = src.execute(
        f"SELECT k, v, CAST({col.text} AS BLOB), coalesce({bad}, 0) FROM s ORDER BY k"
    ).fetchall()
    conn.execute("TRUNCATE p")
    for k, value, text, _ in rows:
        if value is None:
            continue
        for n, candidate in enumerate(_candidates(src, pg, k, value, bytes(text))):
            with contextlib.suppress(psycopg.errors.DataError):
                conn.execute(
                    sql.SQL("INSERT INTO p VALUES (%s, %s, CAST(%s AS {}))").format(
                        sql.SQL(pg.sql)
                    ),
                    (k, n, candidate),
                )
    ok = sql.SQL(" AND ").join(pg_ok(c, per_row=True)) if pg_ok(c, True) else sql.SQL("true")
    query = sql.SQL(
        "SELECT k, n, convert_to({}, 'UTF8'), convert_to({}, 'UTF8'), {}, {} FROM p ORDER BY k, n"
    ).format(pg_compare(c, declared), pg_text(c), ok, _pg_canon(c))
    target = conn.execute(query).fetchall()
    by_key = {k: (value, bytes(text or b""), flagged) for k, value, text, flagged in rows}
    null = null_marker(pg)
    proven = 0
    for k, _, compare, canonical_text, in_range, canonical in target:
        value, text, flagged = by_key[k]
        compare = bytes(compare)
        if flagged or not in_range or compare != text:
            continue
        if pg.family in FREE and any(ch in compare for ch in b"\x1b\x1d\x1e\x1f"):
            continue  # the chunk's count of separators refuses it
        expected = _expected(pg, value)
        where = (
            f"{declared or '(none)'} -> {pg.sql}: source {value!r} "
            f"({type(value).__name__}), target {canonical!r}"
        )
        assert expected is not REJECTED, f"{where}: the load rejects the value, yet texts match"
        assert _shown(canonical) == _shown(expected), f"{where}: equal texts, values differ"
        digest_text = bytes(canonical_text)
        if pg.family is Family.FLOAT:
            digest_text = shortest_doubles(digest_text)  # as the fast path hashes it
        assert digest_text == _text(expected, null).encode("utf-8", "surrogatepass"), where
        proven += 1
    src.close()
    return proven


@pytest.fixture
def pg_conn(pg: PgSchema) -> Iterator[Callable[[str], psycopg.Connection[Any]]]:
    conns: list[psycopg.Connection[Any]] = []

    def open_for(pg_sql: str) -> psycopg.Connection[Any]:
        conn = psycopg.connect(pg.dsn, autocommit=True)
        conns.append(conn)
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(pg.schema)))
        # verify's session settings (`_run._connect_snapshot`)
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("SET DateStyle = 'ISO, YMD'")
        conn.execute("SET extra_float_digits = 1")
        if pg_sql == "label":
            labels = sql.SQL(", ").join(sql.Literal(x) for x in LABELS)
            conn.execute(sql.SQL("CREATE TYPE label AS ENUM ({})").format(labels))
        conn.execute(sql.SQL("CREATE TABLE p (k int, n int, v {})").format(sql.SQL(pg_sql)))
        return conn

    yield open_for
    for conn in conns:
        conn.close()


@pytest.mark.parametrize(("declared", "pg_sql"), COLUMNS)
def test_equal_texts_prove_equal_values_for_every_storage_class_and_declared_type(
    declared: str,
    pg_sql: str,
    pg_conn: Callable[[str], psycopg.Connection[Any]],
    tmp_path: Path,
) -> None:
    conn = pg_conn(pg_sql)

    @settings(max_examples=40, deadline=None)
    @given(st.lists(VALUES, min_size=1, max_size=8))
    def check(values: list[Any]) -> None:
        check_column(conn, tmp_path / "s.sqlite", declared, pg_sql, values)

    check()


# -- end to end: migrate, change one cell to what reads the same, verify ------------------

# 17 significant digits, or 16: SQLite's text of each (15 digits) reads as another double.
LONG_REALS = [0.1 + 0.2, 1.23456789012345678, 1 / 3, 2.0 / 7, 1e-7 / 3, 123456.78901234567]


def _altered_run(make_db: MakeDb, pg: PgSchema, tmp_path: Path, before: str, after: str) -> Path:
    """A migrated table t(id, v) whose column v was declared `before` when its values were
    stored (two hundred reals) and `after` when migrated, as the writable_schema trick
    leaves it."""
    rows = [(i, LONG_REALS[i % len(LONG_REALS)] * (1 + i)) for i in range(1, 201)]
    db = make_db(
        f"CREATE TABLE t (id INTEGER PRIMARY KEY, v {before});",
        ("INSERT INTO t VALUES (?, ?)", rows),
        "PRAGMA writable_schema = 1;"
        f"UPDATE sqlite_master SET sql = replace(sql, 'v {before}', 'v {after}') WHERE name = 't';",
    )
    run_dir = tmp_path / "run"
    report = migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir, verify=False))
    assert report.exit_code() == 0, report.as_dict()
    return run_dir


def _differences(report: VerifyReport) -> list[tuple[str, str, list[dict[str, str]]]]:
    [t] = report.tables
    return [(d["kind"], d["key"]["id"], d["columns"]) for d in t.differences]


def _sqlite_text(value: float) -> str:
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        return str(conn.execute("SELECT CAST(? AS TEXT)", (value,)).fetchone()[0])


def test_a_real_in_a_text_column_holding_sqlites_15_digits_in_postgresql_is_caught(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = _altered_run(make_db, pg, tmp_path, "REAL", "TEXT")
    values = {i: LONG_REALS[i % len(LONG_REALS)] * (1 + i) for i in (1, 7, 150)}
    # The load wrote Python's repr (up to 17 digits): PostgreSQL must hold exactly that.
    [(held,)] = pg.query("SELECT v FROM t WHERE id = 7")
    assert held == repr(values[7]) != _sqlite_text(values[7])
    assert verify(run_dir, pg.target).ok
    # SQLite's own text of each value: 15 digits, which the fast path once took for equal.
    for i, value in values.items():
        pg.execute(f"UPDATE t SET v = '{_sqlite_text(value)}' WHERE id = {i}")

    report = verify(run_dir, pg.target)

    assert not report.ok
    assert _differences(report) == [
        ("changed", str(i), [{"column": "v", "source": repr(repr(v)), "target": repr(sqlite_text)}])
        for i, v in values.items()
        for sqlite_text in [_sqlite_text(v)]
    ]  # fmt: skip


def test_minus_zero_in_a_real_column_is_told_from_zero(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    # Stored without affinity, then declared REAL: SQLite keeps -0.0, prints it as 0.0.
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v);",
        ("INSERT INTO t VALUES (?, ?)", [(i, -0.0 if i % 2 else 0.0) for i in range(1, 101)]),
        "PRAGMA writable_schema = 1;"
        "UPDATE sqlite_master SET sql = replace(sql, 'v)', 'v REAL)') WHERE name = 't';",
    )
    run_dir = tmp_path / "run"
    migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir, verify=False))
    assert pg.query("SELECT v::text FROM t WHERE id IN (1, 2) ORDER BY id") == [("-0",), ("0",)]
    first = verify(run_dir, pg.target)
    assert first.ok, first.problems
    if signed_zeros():
        assert first.tables[0].slow_rows == 0
    pg.execute("UPDATE t SET v = 0 WHERE id = 51")
    pg.execute("UPDATE t SET v = '-0' WHERE id = 52")

    report = verify(run_dir, pg.target)

    assert _differences(report) == [
        ("changed", "51", [{"column": "v", "source": "-0.0", "target": "0.0"}]),
        ("changed", "52", [{"column": "v", "source": "0.0", "target": "-0.0"}]),
    ]


def test_well_typed_tables_with_zeros_and_text_still_take_the_fast_path(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_fast, "CHUNK_ROWS", 100)
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, x REAL, n NUMERIC, label TEXT, kind VARCHAR(4));"
        "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 500)"
        " INSERT INTO t SELECT i, CASE WHEN i % 3 = 0 THEN 0.0 ELSE i * 0.25 END,"
        " i % 7, 'row ' || i, CASE WHEN i % 2 THEN 'odd' END FROM s;"
    )
    run_dir = tmp_path / "run"
    migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir, verify=False))

    report = verify(run_dir, pg.target)

    assert report.ok, report.problems
    [t] = report.tables
    assert (t.fast_rows, t.slow_rows, t.fast_chunks, t.slow_chunks) == (500, 0, 5, 0)
