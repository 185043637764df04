"""The command line, run as users run it (`python -m lite2pg migrate ...`).

Bad input gives one line on stderr, `lite2pg: error: ... (hint: ...)`, exit code 2, no
traceback, and a target exactly as it was. Rejected rows give exit 1 (0 with
--allow-rejects). The flags that touch existing tables (--drop, --data-only, --truncate)
do what they say.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ._cli import Result, cli, known_error
from .conftest import MakeDb, PgSchema, staging_schema


def lite2pg(*args: str, cwd: Path) -> Result:
    """Run `python -m lite2pg migrate ARGS` in `cwd`, with no PG*/DATABASE_URL around."""
    return cli("migrate", *args, cwd=cwd, timeout=120)


def state(pg: PgSchema) -> dict[str, Any]:
    """Every schema name, and every table of the test schema with its columns and rows."""
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        # Only schemas a run of this test could leave behind (its own staging schema):
        # other tests, and other sessions on a shared server, make and drop theirs beside it.
        mine = (pg.schema, staging_schema(pg.schema), "lite2pg")
        schemas = [
            r[0]
            for r in conn.execute("SELECT nspname FROM pg_namespace ORDER BY 1")
            if r[0] in mine
        ]
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (pg.schema,)
            )
        ]
        out: dict[str, Any] = {"schemas": schemas}
        for t in tables:
            cols = conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                (pg.schema, t),
            ).fetchall()
            rows = conn.execute(
                sql.SQL("SELECT * FROM {}.{} ORDER BY 1").format(
                    sql.Identifier(pg.schema), sql.Identifier(t)
                )
            ).fetchall()
            out[t] = {"columns": cols, "rows": rows}
    return out


@pytest.fixture
def people_db(make_db: MakeDb) -> Path:
    """A small valid source: t(id, name) with three rows."""
    return make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
        ("INSERT INTO t VALUES (?, ?)", [(1, "ada"), (2, "grace"), (3, "edsger")]),
    )


@pytest.fixture
def occupied(pg: PgSchema) -> Iterator[PgSchema]:
    """The test schema with a table `t` of another shape and rows of its own."""
    pg.execute("CREATE TABLE t (x text PRIMARY KEY); INSERT INTO t VALUES ('old'), ('older');")
    yield pg


def target_args(pg: PgSchema, tmp_path: Path) -> list[str]:
    return ["--target", pg.dsn, "--schema", pg.schema, "--run-dir", str(tmp_path / "run")]


# --- bad input: one line, a hint, exit 2, target untouched -----------------------------


def _bad_source(kind: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{kind}.db"
    if kind == "not-sqlite":
        path.write_text("id,name\n1,ada\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "directory":
        path.mkdir()
    return path  # "missing": never created


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("not-sqlite", "not a SQLite 3 database"),
        ("missing", "no such file"),
        ("empty", "file is empty"),
        ("directory", "is a directory"),
    ],
)
def test_unusable_source_file_is_one_line_error_naming_the_file(
    occupied: PgSchema, tmp_path: Path, kind: str, problem: str
) -> None:
    source = _bad_source(kind, tmp_path)
    before = state(occupied)
    line = known_error(lite2pg(str(source), *target_args(occupied, tmp_path), cwd=tmp_path))
    assert problem in line
    assert str(source) in line
    assert state(occupied) == before


def test_unreachable_server_is_one_line_error_with_a_hint(people_db: Path, tmp_path: Path) -> None:
    result = lite2pg(
        str(people_db), "--target", "postgresql://postgres@127.0.0.1:1/x", cwd=tmp_path
    )
    line = known_error(result)
    assert "cannot connect" in line
    assert "check that the server runs" in line


def test_missing_database_is_one_line_error_saying_to_create_it(
    pg: PgSchema, people_db: Path, tmp_path: Path
) -> None:
    missing = f"lite2pg_missing_{uuid.uuid4().hex[:8]}"
    before = state(pg)
    line = known_error(
        lite2pg(str(people_db), "--target", make_conninfo(pg.dsn, dbname=missing), cwd=tmp_path)
    )
    assert missing in line
    assert "create the database first" in line
    assert state(pg) == before


def test_existing_target_table_is_refused_without_data_only_or_drop(
    occupied: PgSchema, people_db: Path, tmp_path: Path
) -> None:
    before = state(occupied)
    line = known_error(lite2pg(str(people_db), *target_args(occupied, tmp_path), cwd=tmp_path))
    assert "'t' already exists" in line
    assert "--data-only" in line and "--drop" in line
    assert state(occupied) == before


def test_truncate_without_data_only_is_refused(
    occupied: PgSchema, people_db: Path, tmp_path: Path
) -> None:
    before = state(occupied)
    # With --drop, a run that ignored the misuse would replace t: untouched proves it did not.
    result = lite2pg(
        str(people_db), "--truncate", "--drop", *target_args(occupied, tmp_path), cwd=tmp_path
    )
    line = known_error(result)
    assert "--truncate" in line and "--data-only" in line
    assert state(occupied) == before


@pytest.mark.parametrize(
    ("cast", "named"),
    [
        ("t.name", "t.name"),  # no type
        ("t.nickname=text", "nickname"),  # no such column
        ("people.name=text", "people.name"),  # no such table
        ("t.name=frobnicate", "frobnicate"),  # no such type
    ],
)
def test_bad_cast_is_one_line_error_naming_what_is_wrong(
    pg: PgSchema, people_db: Path, tmp_path: Path, cast: str, named: str
) -> None:
    before = state(pg)
    result = lite2pg(str(people_db), "--cast", cast, *target_args(pg, tmp_path), cwd=tmp_path)
    line = known_error(result)
    assert named in line
    assert state(pg) == before


def test_quiet_error_is_the_only_line_on_stderr(
    occupied: PgSchema, people_db: Path, tmp_path: Path
) -> None:
    result = lite2pg(str(people_db), "-q", *target_args(occupied, tmp_path), cwd=tmp_path)
    line = known_error(result)
    assert result.stderr.splitlines() == [line]


# --- exit codes for rejected rows --------------------------------------------------------


def _pg_rows(pg: PgSchema, table: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        return conn.execute(
            sql.SQL("SELECT * FROM {}.{} ORDER BY 1").format(
                sql.Identifier(pg.schema), sql.Identifier(table)
            )
        ).fetchall()


def _rejects(run_dir: Path, table: str) -> dict[int, dict[str, Any]]:
    path = run_dir / "rejects" / f"{table}.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return {int(r["key"]["id"]): r for r in records}


def _report(run_dir: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    return report


def test_rejected_rows_exit_1_and_0_with_allow_rejects(
    pg: PgSchema, make_db: MakeDb, tmp_path: Path
) -> None:
    source = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER);",
        ("INSERT INTO t VALUES (?, ?)", [(1, 5), (2, "five"), (3, 7)]),
    )
    first = lite2pg(str(source), *target_args(pg, tmp_path), cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    assert "Traceback" not in first.stderr
    assert _pg_rows(pg, "t") == [(1, 5), (3, 7)]
    assert list(_rejects(tmp_path / "run", "t")) == [2]

    again = lite2pg(
        str(source),
        "--drop",
        "--allow-rejects",
        "--target",
        pg.dsn,
        "--schema",
        pg.schema,
        "--run-dir",
        str(tmp_path / "run2"),
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stderr
    assert _pg_rows(pg, "t") == [(1, 5), (3, 7)]
    assert _report(tmp_path / "run2")["totals"] == {
        "read": 3,
        "loaded": 2,
        "rejected": 1,
        "filtered": 0,
    }


def test_clean_run_exits_0(pg: PgSchema, people_db: Path, tmp_path: Path) -> None:
    result = lite2pg(str(people_db), *target_args(pg, tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert _pg_rows(pg, "t") == [(1, "ada"), (2, "grace"), (3, "edsger")]


# --- flags that touch existing tables -----------------------------------------------------


def test_drop_replaces_an_existing_table(
    occupied: PgSchema, people_db: Path, tmp_path: Path
) -> None:
    result = lite2pg(str(people_db), "--drop", *target_args(occupied, tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    after = state(occupied)
    assert after["t"]["columns"] == [("id", "bigint"), ("name", "text")]
    assert after["t"]["rows"] == [(1, "ada"), (2, "grace"), (3, "edsger")]


@pytest.mark.parametrize(
    "id_column",
    ["id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "id bigserial PRIMARY KEY"],
    ids=["identity", "serial"],
)
def test_data_only_truncate_empties_the_table_and_moves_its_sequence_past_loaded_ids(
    pg: PgSchema, make_db: MakeDb, tmp_path: Path, id_column: str
) -> None:
    pg.execute(
        f"CREATE TABLE t ({id_column}, name text NOT NULL);"
        "INSERT INTO t (name) SELECT 'old ' || g FROM generate_series(1, 20) g;"
    )
    source = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
        ("INSERT INTO t VALUES (?, ?)", [(5, "ada"), (9, "grace")]),
    )
    result = lite2pg(
        str(source), "--data-only", "--truncate", *target_args(pg, tmp_path), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert _pg_rows(pg, "t") == [(5, "ada"), (9, "grace")]
    assert pg.query("INSERT INTO t (name) VALUES ('new') RETURNING id") == [(10,)]


def test_data_only_without_truncate_refuses_a_table_that_has_rows(
    occupied: PgSchema, make_db: MakeDb, tmp_path: Path
) -> None:
    source = make_db("CREATE TABLE t (x TEXT PRIMARY KEY);", ("INSERT INTO t VALUES (?)", [("a",)]))
    before = state(occupied)
    line = known_error(
        lite2pg(str(source), "--data-only", *target_args(occupied, tmp_path), cwd=tmp_path)
    )
    assert "not empty" in line and "--truncate" in line
    assert state(occupied) == before


def test_data_only_with_an_unmatched_column_fails_early_naming_it(
    pg: PgSchema, make_db: MakeDb, tmp_path: Path
) -> None:
    pg.execute("CREATE TABLE t (id bigint PRIMARY KEY, name text); INSERT INTO t VALUES (1, 'x');")
    source = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, nickname TEXT);",
        ("INSERT INTO t VALUES (?, ?, ?)", [(1, "ada", "countess")]),
    )
    before = state(pg)
    line = known_error(
        lite2pg(str(source), "--data-only", "--truncate", *target_args(pg, tmp_path), cwd=tmp_path)
    )
    assert "'nickname'" in line
    assert "target columns: id, name" in line
    assert state(pg) == before


def test_narrow_target_column_rejects_only_the_rows_too_long_for_it(
    pg: PgSchema, make_db: MakeDb, tmp_path: Path
) -> None:
    pg.execute("CREATE TABLE t (id bigint PRIMARY KEY, code varchar(3))")
    rows = [(1, "abc"), (2, "abcd"), (3, "xy"), (4, "toolong"), (5, None), (6, "äöü")]
    source = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, code TEXT);", ("INSERT INTO t VALUES (?, ?)", rows)
    )
    result = lite2pg(str(source), "--data-only", *target_args(pg, tmp_path), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert _pg_rows(pg, "t") == [(1, "abc"), (3, "xy"), (5, None), (6, "äöü")]
    refused = _rejects(tmp_path / "run", "t")
    assert sorted(refused) == [2, 4]
    assert all(r["column"] == "code" and r["reason"].strip() for r in refused.values())
    assert _report(tmp_path / "run")["totals"]["rejected"] == 2


def test_rows_postgres_refuses_are_found_by_careful_replay_and_the_rest_load(
    pg: PgSchema, make_db: MakeDb, tmp_path: Path
) -> None:
    # A CHECK lite2pg cannot know about: only PostgreSQL refuses these rows.
    pg.execute("CREATE TABLE t (id bigint PRIMARY KEY, code text CHECK (code <> 'bad'))")
    rows = [(i, "bad" if i % 17 == 0 else f"ok{i}") for i in range(1, 101)]
    source = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, code TEXT);", ("INSERT INTO t VALUES (?, ?)", rows)
    )
    result = lite2pg(
        str(source), "--data-only", "--batch-size", "7", *target_args(pg, tmp_path), cwd=tmp_path
    )
    assert result.returncode == 1, result.stderr
    assert _pg_rows(pg, "t") == [r for r in rows if r[1] != "bad"]
    refused = _rejects(tmp_path / "run", "t")
    assert sorted(refused) == [17, 34, 51, 68, 85]
    assert all("check" in r["reason"].lower() for r in refused.values())
    table = _report(tmp_path / "run")["tables"][0]
    assert (table["read"], table["loaded"], table["rejected"]) == (100, 95, 5)
    assert table["replayed_carefully"] is True


def test_source_file_is_not_modified_by_a_run(
    pg: PgSchema, people_db: Path, tmp_path: Path
) -> None:
    before = people_db.read_bytes()
    result = lite2pg(str(people_db), *target_args(pg, tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert people_db.read_bytes() == before
    with closing(sqlite3.connect(people_db)) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (3,)
