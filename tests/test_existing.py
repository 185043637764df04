"""`--data-only` into the app's own schema: every value lands exactly or is rejected with a
reason; a type PostgreSQL would round (timestamptz(p), numeric(p,s), money, time(p)) takes
a value with more digits only when the plan says `round = true`, and verify proves it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from lite2pg.errors import SchemaError
from lite2pg.plan import load_plan
from lite2pg.run import MigrateOptions, migrate
from lite2pg.verify import verify

from .conftest import MakeDb, PgSchema


@dataclass(frozen=True)
class Case:
    id: str
    declared: str  # the SQLite column's declared type
    target: str  # the app's PostgreSQL column type
    exact: Any  # a value the target holds as it is
    exact_pg: str  # how PostgreSQL prints it (`::text`, money as numeric)
    inexact: Any  # a value PostgreSQL would round
    rounded_pg: str  # what round = true loads for it


CASES = [
    Case(
        "timestamptz(0)",
        "DATETIME",
        "timestamp(0) with time zone",
        "2024-05-01 10:00:00",
        "2024-05-01 10:00:00+00",
        "2024-05-01 10:00:00.6",
        "2024-05-01 10:00:01+00",
    ),
    Case(
        "timestamptz(3)",
        "DATETIME",
        "timestamptz(3)",
        "2024-05-01T10:00:00.123Z",
        "2024-05-01 10:00:00.123+00",
        "2024-05-01 10:00:00.1235",
        "2024-05-01 10:00:00.124+00",
    ),
    Case(
        "timestamp(2)",
        "DATETIME",
        "timestamp(2) without time zone",
        "1999-12-31 23:59:59.99",
        "1999-12-31 23:59:59.99",
        "1999-12-31 23:59:59.995",
        "1999-12-31 23:59:59.99",  # a tie before 2000-01-01 goes earlier, as PostgreSQL does
    ),
    Case("numeric(10,2)", "REAL", "numeric(10,2)", 2.5, "2.50", 2.345, "2.35"),
    Case("money", "REAL", "money", 7, "7.00", 19.999, "20.00"),
    Case("time(0)", "TEXT", "time(0)", "10:00:00", "10:00:00", "10:00:00.5", "10:00:01"),
    Case("time", "TEXT", "time", "23:59:59.25", "23:59:59.25", "07:30:00.1234567", ""),
    Case("domain", "NUMERIC", "price", 3, "3.00", "3.001", "3.00"),
]


def _load(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, case: Case, plan: str | None, staged: bool
) -> tuple[Any, Path]:
    db = make_db(
        "CREATE TABLE item (id INTEGER PRIMARY KEY, v " + case.declared + ");",
        ("INSERT INTO item VALUES (?, ?)", [(1, case.exact), (2, case.inexact), (3, None)]),
    )
    pg.execute(
        "CREATE DOMAIN price AS numeric(6,2) CHECK (VALUE >= 0);"
        f"CREATE TABLE item (id bigint PRIMARY KEY, v {case.target});"
    )
    # staged: export, transform (which never sees the target's types), then load, as the
    # command line does for a real target; else one streamed pass.
    opts = MigrateOptions(
        schema=pg.schema, data_only=True, run_dir=tmp_path / "run", keep_artifacts=staged
    )
    if plan is not None:
        (tmp_path / "plan.toml").write_text(plan)
        opts.plan = load_plan(str(tmp_path / "plan.toml"))
    return migrate(db, pg.target, opts), tmp_path / "run"


def _rejects(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _values(pg: PgSchema, case: Case) -> dict[int, str | None]:
    cast = "v::numeric::text" if case.target == "money" else "v::text"
    return {int(i): v for i, v in pg.query(f"SELECT id, {cast} FROM item ORDER BY id")}


STAGED = pytest.mark.parametrize("staged", [False, True], ids=["streamed", "staged"])


@STAGED
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_value_the_apps_column_would_round_is_rejected_with_the_plan_option_named(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, case: Case, staged: bool
) -> None:
    report, run_dir = _load(make_db, pg, tmp_path, case, None, staged)

    assert report.rows_rejected == 1 and report.rows_loaded == 2
    assert report.verify is not None and report.verify["ok"], report.verify
    assert _values(pg, case) == {1: case.exact_pg, 3: None}
    (reject,) = _rejects(run_dir / "rejects" / "item.jsonl")
    assert reject["key"] == {"id": 2} and reject["column"] == "v"
    if case.rounded_pg:
        assert "round = true" in reject["reason"], reject["reason"]


@STAGED
@pytest.mark.parametrize("case", [c for c in CASES if c.rounded_pg], ids=lambda c: c.id)
def test_round_true_in_the_plan_rounds_as_postgresql_would_and_verify_passes(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, case: Case, staged: bool
) -> None:
    plan = "[tables.item.columns.v]\nround = true\n"
    report, _ = _load(make_db, pg, tmp_path, case, plan, staged)

    assert report.rows_rejected == 0 and report.rows_loaded == 3
    assert report.verify is not None and report.verify["ok"], report.verify
    assert _values(pg, case) == {1: case.exact_pg, 2: case.rounded_pg, 3: None}


@STAGED
def test_char_n_rejects_values_it_would_pad_and_strip_or_cut_and_verify_passes(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, staged: bool
) -> None:
    db = make_db(
        "CREATE TABLE code (id INTEGER PRIMARY KEY, c TEXT, v TEXT);",
        (
            "INSERT INTO code VALUES (?, ?, ?)",
            [(1, "ab", "abc"), (2, "ab ", "abc"), (3, "abcde  ", "abc"), (4, "ab", "abcd")],
        ),
    )
    pg.execute("CREATE DOMAIN short AS varchar(3); CREATE TABLE code (id int, c char(5), v short)")

    report = migrate(
        db,
        pg.target,
        MigrateOptions(
            schema=pg.schema, data_only=True, run_dir=tmp_path / "run", keep_artifacts=staged
        ),
    )

    reasons = {r["key"]["id"]: r["reason"] for r in _rejects(tmp_path / "run/rejects/code.jsonl")}
    assert set(reasons) == {2, 3, 4}
    assert "ends in blanks" in reasons[2]
    assert "longer than 5" in reasons[3]  # PostgreSQL would cut the blanks silently
    assert "longer than 3" in reasons[4]  # the domain's varchar(3), read through the domain
    assert pg.query("SELECT id, c::text, v FROM code") == [(1, "ab", "abc")]
    assert report.verify is not None and report.verify["ok"], report.verify


def test_epoch_integers_go_into_timestamptz_only_with_the_plans_unit(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        'CREATE TABLE "Post" (id INTEGER PRIMARY KEY, "createdAt" DATETIME NOT NULL);',
        ('INSERT INTO "Post" VALUES (?, ?)', [(1, 1_714_557_600_123), (2, 1_714_557_600_000)]),
    )
    pg.execute('CREATE TABLE "Post" (id int PRIMARY KEY, "createdAt" timestamp(3) NOT NULL)')

    refused = migrate(
        db, pg.target, MigrateOptions(schema=pg.schema, data_only=True, run_dir=tmp_path / "a")
    )
    (tmp_path / "plan.toml").write_text(
        "[tables.Post.columns.createdAt]\n"
        'transforms = [{ timestamp = { epoch = "milliseconds" } }]\n'
    )
    loaded = migrate(
        db,
        pg.target,
        MigrateOptions(
            schema=pg.schema,
            data_only=True,
            truncate=True,
            run_dir=tmp_path / "b",
            plan=load_plan(str(tmp_path / "plan.toml")),
        ),
    )

    assert refused.rows_rejected == 2
    assert loaded.rows_rejected == 0 and loaded.verify is not None and loaded.verify["ok"]
    assert pg.query('SELECT "createdAt"::text FROM "Post" ORDER BY id') == [
        ("2024-05-01 10:00:00.123",),
        ("2024-05-01 10:00:00",),
    ]


@pytest.mark.parametrize("case", [c for c in CASES if c.rounded_pg], ids=lambda c: c.id)
def test_verify_notices_a_value_postgresql_rounded_behind_lite2pgs_back(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, case: Case
) -> None:
    _, run_dir = _load(make_db, pg, tmp_path, case, None, False)
    # Someone loads the rejected row by hand: PostgreSQL takes it and rounds it silently.
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(pg.schema)))
        conn.execute("INSERT INTO item VALUES (2, %s)", (str(case.inexact),))

    report = verify(run_dir, pg.target)

    assert not report.ok
    assert _values(pg, case)[2] == case.rounded_pg  # PostgreSQL did round it


def test_data_only_refuses_a_not_null_target_column_no_source_fills_before_writing(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE item (id INTEGER PRIMARY KEY, v TEXT);",
        ("INSERT INTO item VALUES (?, ?)", [(1, "a"), (2, "b")]),
    )
    pg.execute(
        "CREATE TABLE item (id bigint PRIMARY KEY, v text, sku text NOT NULL);"
        "CREATE TABLE other (id bigint PRIMARY KEY);"
        "INSERT INTO other VALUES (7)"
    )
    opts = MigrateOptions(schema=pg.schema, data_only=True, run_dir=tmp_path / "run")

    with pytest.raises(SchemaError, match=r"item\.sku is NOT NULL without a default"):
        migrate(db, pg.target, opts)

    assert pg.query("SELECT count(*) FROM item") == [(0,)]
    assert pg.query("SELECT id FROM other") == [(7,)]
    # Early: before the snapshot is even taken.
    assert not (tmp_path / "run" / "source.snapshot.db").exists()
