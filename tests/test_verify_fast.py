"""The fast path of `verify`: chunks of a table keyed by an INTEGER PRIMARY KEY compared as
canonical text rendered by SQLite and by PostgreSQL. It must find what the row-by-row path
finds (then let that path name it), give the same digests, and never take two different
values for equal because their texts read the same."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import lite2pg.verify as verify_package
from lite2pg.load import prefetch
from lite2pg.plan import parse_plan
from lite2pg.run import MigrateOptions, migrate
from lite2pg.verify import TableVerification, VerifyReport, _fast, _main, _parallel, _sorted, verify

from .conftest import MakeDb, PgSchema

WIDE = (
    "CREATE TABLE parents (id INTEGER PRIMARY KEY, name TEXT);"
    "CREATE TABLE items (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parents(id),"
    "  label TEXT NOT NULL, note TEXT, qty INTEGER, price NUMERIC(10,2), done BOOLEAN,"
    "  at DATETIME, day DATE, raw BLOB, code VARCHAR(8));"
    "INSERT INTO parents VALUES (1, 'one'), (2, 'two'), (3, NULL);"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)"
    " INSERT INTO items SELECT i, CASE WHEN i % 7 = 0 THEN NULL ELSE 1 + i % 3 END,"
    "  'item ' || i,"
    "  CASE i % 5 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'tab' || char(9) || 'nl'"
    "   || char(10) || 'back\\slash \"q\" é ✓' ELSE 'plain' END,"
    "  CASE WHEN i % 11 = 0 THEN NULL ELSE i * 37 - 5000 END,"
    "  CASE WHEN i % 13 = 0 THEN NULL ELSE i % 100 END,"  # a real would take the slow path
    "  i % 2,"
    "  CASE WHEN i % 17 = 0 THEN NULL ELSE '2021-03-' || printf('%02d', 1 + i % 28)"
    "   || ' 12:34:' || printf('%02d', i % 60) || CASE WHEN i % 3 = 0 THEN '.25' ELSE '' END"
    "   END,"
    "  CASE WHEN i % 19 = 0 THEN NULL ELSE '1999-12-' || printf('%02d', 1 + i % 31) END,"
    "  CASE i % 4 WHEN 0 THEN NULL WHEN 1 THEN x'' ELSE randomblob(1 + i % 9) END,"
    "  printf('c%d', i % 50)"
    " FROM n;"
)


def run_of(make_db: MakeDb, pg: PgSchema, tmp_path: Path, script: str) -> Path:
    db = make_db(script)
    run_dir = tmp_path / "run"
    migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir, verify=False))
    return run_dir


def table(report: VerifyReport, name: str) -> TableVerification:
    return next(t for t in report.tables if t.source == name)


def kinds(report: VerifyReport, name: str) -> list[tuple[str, str]]:
    return [(d["kind"], d["key"]["id"]) for d in table(report, name).differences]


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_fast, "CHUNK_ROWS", 100)


def without_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(t: Any) -> str:
        return "switched off by the test"

    monkeypatch.setattr(_parallel, "fast_path_refusal", refuse)
    monkeypatch.setattr(_main, "fast_path_refusal", refuse)


def test_a_clean_table_is_compared_in_chunks_without_the_slow_path(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, small_chunks: None
) -> None:
    run_dir = run_of(make_db, pg, tmp_path, WIDE)

    report = verify(run_dir, pg.target)

    assert report.ok, report.problems
    items = table(report, "items")
    assert (items.fast_rows, items.slow_rows, items.present) == (1000, 0, 1000)
    [dist] = [d for d in report.distributions if d.column == "parent_id"]
    assert dist.ok and dist.groups_source == 4  # 1, 2, 3 and NULL


def test_a_change_the_fast_path_sees_is_named_by_the_slow_path(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, small_chunks: None
) -> None:
    run_dir = run_of(make_db, pg, tmp_path, WIDE)
    pg.execute("UPDATE items SET note = 'plain ' WHERE id = 453")
    pg.execute("UPDATE items SET parent_id = 3 WHERE id = 454")

    report = verify(run_dir, pg.target)

    items = table(report, "items")
    assert kinds(report, "items") == [("changed", "453"), ("changed", "454")]
    [note, parent] = [d["columns"] for d in items.differences]
    assert note == [{"column": "note", "source": "'plain'", "target": "'plain '"}]
    assert parent == [{"column": "parent_id", "source": "2", "target": "3"}]
    # Only the chunk that holds them went through the slow path.
    assert items.fast_rows >= 900 and 0 < items.slow_rows <= 100
    [dist] = [d for d in report.distributions if d.column == "parent_id"]
    assert not dist.ok


def test_both_paths_give_the_same_digests_and_distributions(
    make_db: MakeDb,
    pg: PgSchema,
    tmp_path: Path,
    small_chunks: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_dir = run_of(make_db, pg, tmp_path, WIDE)
    pg.execute("UPDATE items SET qty = qty + 1 WHERE id = 777")
    pg.execute("DELETE FROM items WHERE id = 12")

    fast = verify(run_dir, pg.target)
    without_fast_path(monkeypatch)
    slow = verify(run_dir, pg.target)

    assert table(fast, "items").fast_rows > 0 and table(slow, "items").fast_rows < 1000
    for a, b in zip(fast.tables, slow.tables, strict=True):
        assert (a.source_digest, a.target_digest) == (b.source_digest, b.target_digest)
        assert a.differences == b.differences
    assert table(fast, "items").source_digest != table(fast, "items").target_digest
    assert [d.as_dict() for d in fast.distributions] == [d.as_dict() for d in slow.distributions]


SEPARATED = (
    "CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT, y TEXT);"
    "INSERT INTO t VALUES (1, 'a' || char(31) || 'b', 'same'), (2, 'c', 'same'),"
    " (3, NULL, 'same'), (4, char(29), 'same'), (5, 'e', 'same');"
)


def test_values_that_hold_a_separator_are_not_taken_for_other_rows(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = run_of(make_db, pg, tmp_path, SEPARATED)
    # Column x of rows 1-2 reads 'a', US, 'b', US, 'c' on both sides, split differently.
    pg.execute("UPDATE t SET x = 'a' WHERE id = 1")
    pg.execute("UPDATE t SET x = 'b' || chr(31) || 'c' WHERE id = 2")

    report = verify(run_dir, pg.target)

    assert kinds(report, "t") == [("changed", "1"), ("changed", "2")]


def test_null_and_the_character_that_marks_null_are_told_apart(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = run_of(make_db, pg, tmp_path, SEPARATED)
    # Row 3 is NULL and row 4 the one character GS: swapped, each side's text is the same.
    pg.execute("UPDATE t SET x = chr(29) WHERE id = 3")
    pg.execute("UPDATE t SET x = NULL WHERE id = 4")

    report = verify(run_dir, pg.target)

    assert kinds(report, "t") == [("changed", "3"), ("changed", "4")]
    assert table(report, "t").differences[0]["columns"] == [
        {"column": "x", "source": "NULL", "target": "'\\x1d'"}
    ]


@pytest.mark.parametrize("fast_path", [True, False])
@pytest.mark.parametrize(
    ("column", "stored", "in_postgresql"),
    [
        # A blob of the digits: transform rejects it, the digits read as PostgreSQL's 5.
        ("n INTEGER", "CAST('5' AS BLOB)", "5"),
        # Text that PostgreSQL prints for values transform never gives.
        ("at DATETIME", "'infinity'", "'infinity'"),
        ("at DATETIME", "'0044-03-15 12:00:00 BC'", "'0044-03-15 12:00:00 BC'"),
        ("amount NUMERIC", "'NaN'", "'NaN'"),
        # Text with a NUL: PostgreSQL can only hold what comes before it.
        ("note TEXT", "'ab' || char(0) || 'cd'", "'ab'"),
    ],
)
def test_a_rejected_value_whose_text_postgresql_prints_is_still_caught(
    make_db: MakeDb,
    pg: PgSchema,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fast_path: bool,
    column: str,
    stored: str,
    in_postgresql: str,
) -> None:
    name = column.split()[0]
    run_dir = run_of(
        make_db,
        pg,
        tmp_path,
        f"CREATE TABLE t (id INTEGER PRIMARY KEY, {column});"
        f"INSERT INTO t VALUES (1, {stored}), (2, NULL);",
    )
    assert [r[0] for r in pg.query("SELECT id FROM t")] == [2]  # the run rejected row 1
    pg.execute(f"INSERT INTO t (id, {name}) VALUES (1, {in_postgresql})")
    if not fast_path:
        without_fast_path(monkeypatch)

    report = verify(run_dir, pg.target)

    assert not report.ok
    assert kinds(report, "t")[0] == ("rejected but present", "1")


# -- what the fast path now takes: timestamps and times with fractions -------------------

FRACTIONS = (
    "CREATE TABLE t (id INTEGER PRIMARY KEY, at DATETIME, at3 DATETIME, naive DATETIME,"
    "  tod TEXT, tod2 TEXT);"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)"
    " INSERT INTO t SELECT i,"
    # Django's text: six digits, trailing zeros and all, none on a whole second.
    "  '2021-03-04 05:06:' || printf('%02d', i % 60) || CASE i % 4 WHEN 0 THEN ''"
    "   WHEN 1 THEN '.120000' WHEN 2 THEN '.000000'"
    "   ELSE '.' || printf('%06d', i * 7919 % 1000000) END,"
    "  '2022-01-01 00:00:00.' || printf('%03d', i % 1000) || '000',"
    "  CASE WHEN i % 9 = 0 THEN NULL ELSE '1999-12-31 23:59:59.5' END,"
    "  '23:59:' || printf('%02d', i % 60) || CASE i % 3 WHEN 0 THEN '' WHEN 1 THEN '.10'"
    "   ELSE '.000001' END,"
    "  printf('%02d:00:00.%d', i % 24, i % 10)"
    " FROM n;"
)
FRACTION_CASTS = {"t.at3": "timestamptz(3)", "t.naive": "timestamp", "t.tod": "time",
                  "t.tod2": "time(1)"}  # fmt: skip


def fraction_run(make_db: MakeDb, pg: PgSchema, tmp_path: Path) -> Path:
    db = make_db(FRACTIONS)
    run_dir = tmp_path / "run"
    opts = MigrateOptions(schema=pg.schema, run_dir=run_dir, verify=False, casts=FRACTION_CASTS)
    migrate(db, pg.target, opts)
    return run_dir


def test_timestamps_and_times_with_fractions_are_compared_in_chunks(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, small_chunks: None
) -> None:
    run_dir = fraction_run(make_db, pg, tmp_path)

    report = verify(run_dir, pg.target)

    assert report.ok, report.problems
    t = table(report, "t")
    assert (t.fast_chunks, t.slow_chunks, t.slow_rows, t.fast_path_refusal) == (3, 0, 0, None)


@pytest.mark.parametrize(
    "update",
    [
        "UPDATE t SET at = at + interval '1 microsecond' WHERE id = 150",
        "UPDATE t SET at = date_trunc('second', at) WHERE id = 149",  # .120000 -> none
        "UPDATE t SET at3 = at3 + interval '1 millisecond' WHERE id = 150",
        "UPDATE t SET naive = naive - interval '0.5 second' WHERE id = 150",
        "UPDATE t SET tod = tod + interval '1 microsecond' WHERE id = 150",
        "UPDATE t SET tod2 = '05:00:00' WHERE id = 150",
    ],
)
def test_a_fraction_changed_in_one_cell_is_caught_in_chunks(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, small_chunks: None, update: str
) -> None:
    run_dir = fraction_run(make_db, pg, tmp_path)
    pg.execute(update)

    report = verify(run_dir, pg.target)

    assert not report.ok
    t = table(report, "t")
    assert len(t.differences) == 1 and t.differences[0]["kind"] == "changed"
    assert (t.fast_chunks, t.slow_chunks) == (2, 1)


@pytest.mark.parametrize(
    ("column", "stored", "in_postgresql"),
    [
        # The cut of trailing zeros must not make these read as PostgreSQL's text.
        ("at DATETIME", "'2021-01-01 10:00:00.'", "'2021-01-01 10:00:00'"),
        ("at DATETIME", "'2021-01-01 10:00:00.5.0'", "'2021-01-01 10:00:00.5'"),
        ("at DATETIME", "'2021-01-01 10:00:00..'", "'2021-01-01 10:00:00'"),
        ("at DATETIME", "'2021-01-01 10:00:00.12345670'", "'2021-01-01 10:00:00.123456'"),
        ("at DATETIME", "'2021-01-01 10:00:00.a0'", "'2021-01-01 10:00:00'"),
        ("at DATETIME", "CAST('2021-01-01 10:00:00.10' AS BLOB)", "'2021-01-01 10:00:00.1'"),
        ("tod TEXT", "'10:00:00.'", "'10:00:00'"),
        ("tod TEXT", "'24:00:00'", "'24:00:00'"),
        ("tod TEXT", "'10:00:00.1234560'", "'10:00:00.123456'"),
    ],
)
def test_text_that_only_looks_like_a_fraction_is_still_caught(
    make_db: MakeDb,
    pg: PgSchema,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    column: str,
    stored: str,
    in_postgresql: str,
) -> None:
    name = column.split()[0]
    db = make_db(
        f"CREATE TABLE t (id INTEGER PRIMARY KEY, {column});"
        f"INSERT INTO t VALUES (1, {stored}), (2, NULL);"
    )
    run_dir = tmp_path / "run"
    casts = {"t.tod": "time"} if name == "tod" else {}
    opts = MigrateOptions(schema=pg.schema, run_dir=run_dir, verify=False, casts=casts)
    migrate(db, pg.target, opts)
    assert [r[0] for r in pg.query("SELECT id FROM t")] == [2]  # the run rejected row 1
    pg.execute(f"INSERT INTO t (id, {name}) VALUES (1, {in_postgresql})")

    report = verify(run_dir, pg.target)

    assert not report.ok
    assert kinds(report, "t")[0] == ("rejected but present", "1")


# -- REAL values: DECIMAL columns (stored as REAL) and float columns ---------------------

REALS = (
    "CREATE TABLE t (id INTEGER PRIMARY KEY, price DECIMAL(10,2), amount DECIMAL,"
    "  ratio REAL, weight DOUBLE, loose);"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)"
    " INSERT INTO t SELECT i,"
    "  CASE i % 5 WHEN 0 THEN NULL WHEN 1 THEN i ELSE round(i * 1.37 - 100, 2) END,"
    "  CASE i % 4 WHEN 0 THEN round(0.001 * i, 3) WHEN 1 THEN round(123456.789 + i, 3)"
    "   WHEN 2 THEN round(-0.5 / i, 6) ELSE round(1e13 / i, 2) END,"
    "  CASE i % 3 WHEN 0 THEN 0 WHEN 1 THEN i / 8.0 ELSE round(-i * 0.1, 1) END,"
    "  CASE WHEN i % 23 = 0 THEN NULL ELSE round(i * 0.7, 3) END,"  # NULL in a double column
    "  i * 0.25"
    " FROM n;"
)
REAL_CASTS = {"t.loose": "double precision"}


def real_run(make_db: MakeDb, pg: PgSchema, tmp_path: Path, script: str = REALS) -> Path:
    db = make_db(script)
    run_dir = tmp_path / "run"
    opts = MigrateOptions(schema=pg.schema, run_dir=run_dir, verify=False, casts=REAL_CASTS)
    report = migrate(db, pg.target, opts)
    assert report.exit_code() == 0, report.as_dict()
    return run_dir


def test_decimal_and_float_columns_holding_reals_are_compared_in_chunks(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, small_chunks: None
) -> None:
    run_dir = real_run(make_db, pg, tmp_path)

    report = verify(run_dir, pg.target)

    assert report.ok, report.problems
    t = table(report, "t")
    assert (t.fast_chunks, t.slow_chunks, t.slow_rows, t.fast_path_refusal) == (3, 0, 0, None)


@pytest.mark.parametrize(
    "update",
    [
        "UPDATE t SET price = price + 0.01 WHERE id = 152",
        "UPDATE t SET price = 1 WHERE id = 151",
        # The double nearest to 0.15 is not 0.15: the numeric that equals it is caught.
        "UPDATE t SET amount = 0.15::float8::numeric(40,30) WHERE id = 150",
        "UPDATE t SET amount = amount + 0.0000000000001 WHERE id = 149",
        "UPDATE t SET ratio = 18.750000000000004 WHERE id = 150",  # one ulp more
        "UPDATE t SET ratio = '-0' WHERE id = 150",  # 0.0 in SQLite
        "UPDATE t SET weight = weight * (1 + 1e-15) WHERE id = 150",
        "UPDATE t SET weight = NULL WHERE id = 150",
        "UPDATE t SET weight = 0 WHERE id = 230",  # NULL in SQLite
        "UPDATE t SET loose = 37.5000001 WHERE id = 150",
    ],
)
def test_a_real_changed_in_one_cell_is_caught_in_chunks(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, small_chunks: None, update: str
) -> None:
    run_dir = real_run(make_db, pg, tmp_path)
    pg.execute(update)

    report = verify(run_dir, pg.target)

    assert not report.ok
    t = table(report, "t")
    assert [d["kind"] for d in t.differences] == ["changed"]
    assert (t.fast_chunks, t.slow_chunks) == (2, 1)


def test_floats_of_any_digits_and_size_are_compared_in_chunks_with_the_same_digests(
    make_db: MakeDb,
    pg: PgSchema,
    tmp_path: Path,
    small_chunks: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Doubles compare bit for bit; their digest text is Python's repr, which PostgreSQL's
    # text must give too (whole numbers, 1e15 to 1e16, exponents).
    floats = [0.1 + 0.2, 1 / 3, 1e-9, -2.5e-10, 1e-5, 5e-19, 123456789.12345679, 1e15,
              1.5e15, 1234567890123456.8, 1e16, 2.0**62 - 512, -7.0, 0.0, 1e-4,
              # whole doubles PostgreSQL prints with 17 digits, Python's repr with fewer
              2.662306560134349e16, -4.575667461512672e18]  # fmt: skip
    updates = "".join(
        f"UPDATE t SET ratio = {v!r}, weight = {-v!r} WHERE id = {10 * k + 5};"
        for k, v in enumerate(floats)
    )
    run_dir = real_run(make_db, pg, tmp_path, REALS + updates)

    report = verify(run_dir, pg.target)
    without_fast_path(monkeypatch)
    slow = verify(run_dir, pg.target)

    assert report.ok, report.problems
    t = table(report, "t")
    assert (t.fast_chunks, t.slow_chunks) == (3, 0)
    assert (t.source_digest, t.target_digest) == (
        table(slow, "t").source_digest,
        table(slow, "t").target_digest,
    )


def test_reals_without_an_exact_short_form_go_row_by_row_and_verify(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, small_chunks: None
) -> None:
    # A DECIMAL with 17 significant digits or beyond 1e15; a double beyond 2**63; -0.0 in
    # a column without affinity, where either zero may be stored.
    run_dir = real_run(
        make_db,
        pg,
        tmp_path,
        REALS + "UPDATE t SET amount = 0.1 + 0.2 WHERE id = 10;"
        "UPDATE t SET amount = 1e20 WHERE id = 110; UPDATE t SET weight = 1e300 WHERE id = 210;"
        "UPDATE t SET loose = -0.0 WHERE id = 290;",
    )

    report = verify(run_dir, pg.target)

    assert report.ok, report.problems
    t = table(report, "t")
    assert (t.fast_chunks, t.slow_chunks) == (0, 3)


@pytest.mark.parametrize(
    ("column", "stored", "in_postgresql"),
    [
        # More decimals than the column keeps: transform rejects, PostgreSQL rounds.
        ("price DECIMAL(10,2)", "12.345", "12.35"),
        ("price DECIMAL(10,2)", "0.125", "0.13"),
        # Not a float4: 0.1 as real is 0.10000000149011612.
        ("small REAL", "0.1", "0.1"),
        # Text is not a double, even when it reads as one.
        ("w", "'2.5'", "2.5"),
        ("w", "9007199254740993", "9007199254740992"),
    ],
)
def test_a_real_transform_rejects_is_still_caught(
    make_db: MakeDb,
    pg: PgSchema,
    tmp_path: Path,
    column: str,
    stored: str,
    in_postgresql: str,
) -> None:
    name = column.split()[0]
    db = make_db(
        f"CREATE TABLE t (id INTEGER PRIMARY KEY, {column});"
        f"INSERT INTO t VALUES (1, {stored}), (2, NULL);"
    )
    run_dir = tmp_path / "run"
    cast = {"small": "real", "w": "double precision"}.get(name)
    casts = {f"t.{name}": cast} if cast else {}
    opts = MigrateOptions(schema=pg.schema, run_dir=run_dir, verify=False, casts=casts)
    migrate(db, pg.target, opts)
    assert [r[0] for r in pg.query("SELECT id FROM t")] == [2]  # the run rejected row 1
    pg.execute(f"INSERT INTO t (id, {name}) VALUES (1, {in_postgresql})")

    report = verify(run_dir, pg.target)

    assert not report.ok
    assert kinds(report, "t")[0] == ("rejected but present", "1")


# -- tables with plan transforms: only the transformed columns are rendered in Python -----

PLANNED = (
    "CREATE TABLE owners (id INTEGER PRIMARY KEY, name TEXT);"
    "CREATE TABLE tasks (id INTEGER PRIMARY KEY, owner_id INTEGER REFERENCES owners(id),"
    "  state TEXT, priority TEXT, note TEXT, due INTEGER, cost DECIMAL(8,1), title TEXT);"
    "INSERT INTO owners VALUES (1, 'a'), (2, 'b'), (3, 'c');"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)"
    " INSERT INTO tasks SELECT i,"
    "  CASE WHEN i % 10 = 0 THEN 99 WHEN i % 7 = 0 THEN NULL ELSE 1 + i % 3 END,"  # 99: orphan
    "  CASE i % 4 WHEN 0 THEN 'Open' WHEN 1 THEN ' done ' WHEN 2 THEN 'WIP' ELSE 'open' END,"
    "  CASE WHEN i % 3 = 0 THEN NULL ELSE 'p' || (i % 3) END,"
    "  CASE WHEN i % 5 = 0 THEN '  padded  ' ELSE 'note ' || i END,"
    "  1600000000 + i * 3601,"
    "  round(i * 0.25, 2),"  # 2 decimals: numeric(8,1) rounds with round = true
    "  'task ' || i"
    " FROM n;"
)
PLANNED_PLAN = """
[tables.tasks]
add = { origin = { type = "text", default = "legacy" }, batch = { type = "integer" } }

[[tables.tasks.columns.state.transforms]]
map = { values = { open = "open", done = "closed", wip = "open" }, ignore_case = true, trim = true }

[tables.tasks.columns.priority]
transforms = [{ map = { values = { p1 = "high", p2 = "low" } } }, { default = "none" }]

[tables.tasks.columns.note]
transforms = ["strip"]

[tables.tasks.columns.due]
transforms = [{ timestamp = { epoch = "seconds" } }]

[tables.tasks.columns.cost]
round = true

[tables.tasks.foreign_keys.owner_id]
on_orphan = "null"
"""


def planned_run(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, plan: str = PLANNED_PLAN, script: str = ""
) -> Path:
    db = make_db(PLANNED + script)
    run_dir = tmp_path / "run"
    opts = MigrateOptions(
        schema=pg.schema, run_dir=run_dir, verify=False, plan=parse_plan(plan),
        casts={"tasks.cost": "numeric(8,1)"},
    )  # fmt: skip
    migrate(db, pg.target, opts)
    return run_dir


def test_a_table_with_plan_transforms_is_compared_in_chunks(
    make_db: MakeDb,
    pg: PgSchema,
    tmp_path: Path,
    small_chunks: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_dir = planned_run(make_db, pg, tmp_path)

    report = verify(run_dir, pg.target)

    assert report.ok, report.problems
    tasks = table(report, "tasks")
    assert (tasks.fast_chunks, tasks.slow_chunks, tasks.slow_rows) == (3, 0, 0)
    assert tasks.orphans_nulled == 30
    # The value distributions and rows per parent are those of the row-by-row path.
    without_fast_path(monkeypatch)
    slow = verify(run_dir, pg.target)
    assert table(slow, "tasks").fast_chunks == 0
    assert (tasks.source_digest, tasks.target_digest) == (
        table(slow, "tasks").source_digest,
        table(slow, "tasks").target_digest,
    )
    assert [d.as_dict() for d in report.distributions] == [d.as_dict() for d in slow.distributions]
    [state] = [d for d in report.distributions if d.column == "state"]
    assert {(m["before"], m["after"], m["rows"]) for m in state.mapping} == {
        ("'Open'", "'open'", 75), ("' done '", "'closed'", 75), ("'WIP'", "'open'", 75),
        ("'open'", "'open'", 75),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("update", "column"),
    [
        ("UPDATE tasks SET state = 'closed' WHERE id = 152", "state"),  # mapped
        ("UPDATE tasks SET priority = 'high' WHERE id = 150", "priority"),  # the default
        ("UPDATE tasks SET note = ' note 151' WHERE id = 151", "note"),  # not stripped
        ("UPDATE tasks SET due = due + interval '1 second' WHERE id = 151", "due"),
        ("UPDATE tasks SET cost = 37.6 WHERE id = 150", "cost"),  # 37.5 rounds to 37.5
        ("UPDATE tasks SET origin = 'legacy ' WHERE id = 151", "origin"),  # added
        ("UPDATE tasks SET batch = 0 WHERE id = 151", "batch"),  # added, NULL
        ("UPDATE tasks SET owner_id = 1 WHERE id = 150", "owner_id"),  # an orphan, nulled
        ("UPDATE tasks SET owner_id = NULL WHERE id = 151", "owner_id"),  # not an orphan
        ("UPDATE tasks SET title = 'task 0151' WHERE id = 151", "title"),  # untransformed
    ],
)
def test_one_changed_cell_of_a_table_with_plan_transforms_is_caught(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, small_chunks: None, update: str, column: str
) -> None:
    run_dir = planned_run(make_db, pg, tmp_path)
    pg.execute("ALTER TABLE tasks DROP CONSTRAINT IF EXISTS tasks_owner_id_fkey")
    pg.execute(update)

    report = verify(run_dir, pg.target)

    assert not report.ok
    tasks = table(report, "tasks")
    assert [(d["kind"], [c["column"] for c in d["columns"]]) for d in tasks.differences] == [
        ("changed", [column])
    ]
    assert (tasks.fast_chunks, tasks.slow_chunks) == (2, 1)


@pytest.mark.parametrize(
    ("plan", "script"),
    [
        # An unknown state rejects the row.
        (PLANNED_PLAN, "UPDATE tasks SET state = 'lost' WHERE id = 150;"),
        # An orphan rejects the row.
        (PLANNED_PLAN.replace('on_orphan = "null"', 'on_orphan = "reject"'), ""),
    ],
)
def test_a_row_the_plan_rejects_is_still_caught_in_postgresql(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, small_chunks: None, plan: str, script: str
) -> None:
    run_dir = planned_run(make_db, pg, tmp_path, plan, script)
    assert not pg.query("SELECT 1 FROM tasks WHERE id = 150")  # the run rejected it
    pg.execute("ALTER TABLE tasks DROP CONSTRAINT IF EXISTS tasks_owner_id_fkey")
    pg.execute(
        "INSERT INTO tasks SELECT 150, owner_id, state, priority, note, due, cost, title,"
        " origin, batch FROM tasks WHERE id = 149"
    )

    report = verify(run_dir, pg.target)

    assert not report.ok
    assert ("rejected but present", "150") in kinds(report, "tasks")


# -- tables without a primary key: sorted row texts ----------------------------------------

UNKEYED = (
    "CREATE TABLE parents (id INTEGER PRIMARY KEY);"
    "INSERT INTO parents VALUES (1), (2);"
    "CREATE TABLE log (parent_id INTEGER REFERENCES parents(id), msg TEXT, n INTEGER,"
    "  price DECIMAL(8,2), ratio REAL, at DATETIME, raw BLOB);"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 250)"
    " INSERT INTO log SELECT 1 + i % 2, CASE i % 5 WHEN 0 THEN NULL WHEN 1 THEN '' ELSE"
    "  'line ' || (i % 40) END, i % 7, round(i * 0.35, 2), i / 3.0,"
    "  '2023-05-06 07:08:09.' || printf('%06d', i * 1000), CASE WHEN i % 3 = 0 THEN NULL"
    "  ELSE CAST(i AS BLOB) END"
    " FROM n;"
    "INSERT INTO log SELECT * FROM log WHERE n = 3;"  # duplicate rows
)


def unkeyed_run(make_db: MakeDb, pg: PgSchema, tmp_path: Path, script: str = "") -> Path:
    return run_of(make_db, pg, tmp_path, UNKEYED + script)


def test_a_table_without_a_key_is_compared_as_sorted_texts_with_the_same_digest(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, small_chunks: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    run_dir = unkeyed_run(make_db, pg, tmp_path)
    # PostgreSQL's stored order no longer follows SQLite's: the rows are sorted instead.
    pg.execute("UPDATE log SET n = n WHERE n < 3")

    report = verify(run_dir, pg.target)
    without_fast_path(monkeypatch)
    monkeypatch.setattr(_sorted, "sorted_refusal", lambda t: "switched off by the test")
    slow = verify(run_dir, pg.target)

    assert report.ok, report.problems
    log = table(report, "log")
    assert (log.mode, log.fast_chunks, log.slow_chunks, log.slow_rows) == ("unordered", 3, 0, 0)
    assert (log.source_digest, log.target_digest) == (
        table(slow, "log").source_digest,
        table(slow, "log").target_digest,
    )
    assert table(slow, "log").fast_chunks == 0
    assert [d.as_dict() for d in report.distributions] == [d.as_dict() for d in slow.distributions]


@pytest.mark.parametrize(
    "update",
    [
        "UPDATE log SET msg = 'line 9 ' WHERE msg = 'line 9' AND n = 2",
        "UPDATE log SET msg = NULL WHERE ctid = (SELECT min(ctid) FROM log WHERE msg = '')",
        "UPDATE log SET n = 4 WHERE ctid = (SELECT min(ctid) FROM log WHERE n = 3)",  # a twin
        "UPDATE log SET price = price + 0.01 WHERE ctid = (SELECT max(ctid) FROM log)",
        "UPDATE log SET ratio = 1.0 / 3 + 1e-16 WHERE ratio = 1.0 / 3",
        "UPDATE log SET at = at + interval '1 microsecond' WHERE n = 6 AND ratio > 80",
        "UPDATE log SET raw = '\\x00' WHERE ctid = (SELECT max(ctid) FROM log WHERE raw IS NULL)",
        "UPDATE log SET parent_id = 3 - parent_id WHERE ctid = (SELECT min(ctid) FROM log)",
        "DELETE FROM log WHERE ctid = (SELECT min(ctid) FROM log WHERE n = 3)",
        "INSERT INTO log SELECT * FROM log WHERE n = 5 LIMIT 1",
    ],
)
def test_one_changed_cell_of_a_table_without_a_key_is_caught(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, small_chunks: None, update: str
) -> None:
    run_dir = unkeyed_run(make_db, pg, tmp_path)
    pg.execute(update)

    report = verify(run_dir, pg.target)

    assert not report.ok
    log = table(report, "log")
    assert log.source_digest != log.target_digest
    # The digest says that the table differs; the rows that do are then named.
    kind = {"DELETE": "missing", "INSERT": "extra"}.get(update.split()[0], "changed")
    assert [d["kind"] for d in log.differences] == ["digest", kind], log.differences
    if kind == "changed":
        column = update.split("SET ", 1)[1].split()[0]
        assert [c["column"] for c in log.differences[1]["columns"]] == [column]


@pytest.mark.parametrize(
    ("script", "update"),
    [
        # A value holding the separator, and one that is the NULL marker of text.
        ("UPDATE log SET msg = 'a' || char(31) || 'b' WHERE n = 1;", ""),
        ("UPDATE log SET msg = char(29) WHERE n = 1;", ""),
        # A row the run rejects.
        ("UPDATE log SET n = 'seven' WHERE n = 1 AND msg IS NULL;", ""),
        ("", "UPDATE log SET msg = chr(29) WHERE msg IS NULL"),
    ],
)
def test_rows_the_sorted_texts_cannot_prove_go_row_by_row(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, small_chunks: None, script: str, update: str
) -> None:
    run_dir = unkeyed_run(make_db, pg, tmp_path, script)
    if update:
        pg.execute(update)

    report = verify(run_dir, pg.target)

    log = table(report, "log")
    assert (log.fast_chunks, log.slow_chunks) == (0, 1)
    assert report.ok is not bool(update), report.problems


def test_a_prefetch_the_consumer_leaves_early_stops_its_thread() -> None:
    # Its last batch queued, the thread then waits to queue the end: closing must not hang.
    queued = threading.Event()

    def items() -> Iterator[list[int]]:
        yield [1]
        yield [2]
        queued.set()  # asked for more: [2] is queued, and the end waits for room next

    batches = prefetch(items(), depth=1)
    assert next(batches) == [1]
    assert queued.wait(5)
    done = threading.Event()

    def close() -> None:
        batches.close()
        done.set()

    threading.Thread(target=close, daemon=True).start()
    assert done.wait(5), "closing the prefetch hung"


def test_columns_the_plan_adds_to_a_table_without_a_key_are_compared_as_sorted_texts(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, small_chunks: None
) -> None:
    db = make_db(UNKEYED)
    run_dir = tmp_path / "run"
    plan = parse_plan(
        '[tables.log]\nadd = { rate = { type = "numeric(6,3)", default = 1.5 },'
        ' w = { type = "double precision", default = 0.1 }, tag = { type = "text" } }\n'
    )
    opts = MigrateOptions(schema=pg.schema, run_dir=run_dir, verify=False, plan=plan)
    migrate(db, pg.target, opts)

    clean = verify(run_dir, pg.target)
    pg.execute("UPDATE log SET w = 0.1 + 1e-17 * 8 WHERE ctid = (SELECT min(ctid) FROM log)")
    tampered = verify(run_dir, pg.target)

    assert clean.ok, clean.problems
    assert (table(clean, "log").fast_chunks, table(clean, "log").slow_chunks) == (3, 0)
    assert not tampered.ok
    assert table(tampered, "log").slow_chunks == 1


# -- big tables without a key: slices by the values of an integer column -------------------

SLICED = "INSERT INTO log (parent_id, msg, n) VALUES (NULL, 'no parent', 8), (NULL, NULL, NULL);"


def sliced(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables of more than 100 rows are cut into jobs (the log: three slices)."""
    monkeypatch.setattr(verify_package, "UNIT_ROWS", 100)


def test_a_big_table_without_a_key_is_compared_in_slices_with_the_same_digest(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, small_chunks: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    run_dir = unkeyed_run(make_db, pg, tmp_path, SLICED)
    pg.execute("UPDATE log SET n = n WHERE n < 3")  # stored order no longer SQLite's
    whole = verify(run_dir, pg.target)
    sliced(monkeypatch)

    report = verify(run_dir, pg.target)

    assert report.ok and whole.ok, report.problems
    log, one = table(report, "log"), table(whole, "log")
    # Slices by parent_id (NULL, 1, 2): each sorted, none row by row.
    assert (log.mode, log.slow_chunks, log.slow_rows) == ("unordered", 0, 0)
    assert log.fast_chunks > one.fast_chunks
    assert (log.source_digest, log.target_digest) == (one.source_digest, one.target_digest)
    assert [d.as_dict() for d in report.distributions] == [d.as_dict() for d in whole.distributions]


@pytest.mark.parametrize(
    "update",
    [
        "UPDATE log SET msg = 'line 9 ' WHERE msg = 'line 9' AND n = 2",
        # A row moved to another slice, a NULL to a value, a value to NULL.
        "UPDATE log SET parent_id = 3 - parent_id"
        " WHERE ctid = (SELECT min(ctid) FROM log WHERE parent_id IS NOT NULL)",
        "UPDATE log SET parent_id = 1 WHERE ctid = (SELECT min(ctid) FROM log WHERE n = 8)",
        "UPDATE log SET parent_id = NULL"
        " WHERE ctid = (SELECT max(ctid) FROM log WHERE parent_id = 2)",
        "DELETE FROM log WHERE ctid = (SELECT min(ctid) FROM log WHERE parent_id IS NULL)",
        "INSERT INTO log SELECT * FROM log WHERE n = 5 LIMIT 1",
    ],
)
def test_one_changed_cell_of_a_table_compared_in_slices_is_caught_and_named(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, small_chunks: None,
    monkeypatch: pytest.MonkeyPatch, update: str,
) -> None:  # fmt: skip
    run_dir = unkeyed_run(make_db, pg, tmp_path, SLICED)
    pg.execute(update)
    sliced(monkeypatch)

    report = verify(run_dir, pg.target)

    assert not report.ok
    log = table(report, "log")
    # The whole table went row by row, in one job: the rows that differ are named.
    assert (log.fast_chunks, log.slow_chunks) == (0, 1)
    kind = {"DELETE": "missing", "INSERT": "extra"}.get(update.split()[0], "changed")
    assert [d["kind"] for d in log.differences] == ["digest", kind], log.differences


def test_a_row_the_run_rejected_sends_a_sliced_table_row_by_row(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, small_chunks: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # Text in the integer column that cuts the slices: SQLite sorts it above every bound.
    run_dir = unkeyed_run(make_db, pg, tmp_path, "UPDATE log SET parent_id = 'x' WHERE n = 4;")
    sliced(monkeypatch)
    monkeypatch.setattr(verify_package, "PARALLEL_MIN_ROWS", 0)  # in worker processes

    report = verify(run_dir, pg.target)

    log = table(report, "log")
    assert report.ok, report.problems
    assert log.rejected > 0 and (log.fast_chunks, log.slow_chunks) == (0, 1)
