"""A Prisma app's SQLite data loads into the schema its PostgreSQL migrations make.

Prisma's engines cannot be installed here: the schemas are the migration SQL a public
Prisma app (spliit) ships for both providers (tests/orm/prisma_spliit/SOURCE.md), and the
rows are written as Prisma's SQLite connector stores them (tests/orm/_prisma.py).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from .._cli import cli
from ..conftest import PgSchema
from ._prisma import (
    app_rows,
    as_app_value,
    build_pg,
    build_sqlite,
    expected_app_value,
)

pytestmark = pytest.mark.orm

# Every Prisma DateTime column of the app (epoch milliseconds in SQLite).
DATETIME_COLUMNS = {
    ("Group", "createdAt"),
    ("Expense", "expenseDate"),
    ("Expense", "createdAt"),
    ("RecurringExpenseLink", "nextExpenseDate"),
    ("Activity", "time"),
    ("Receipt", "scannedAt"),
}


def _table_counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(db)
    try:
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names
                if n != "sqlite_sequence"}  # fmt: skip
    finally:
        conn.close()


def _key(table: str, row: Mapping[str, Any]) -> tuple[Any, ...]:
    if table == "ExpensePaidFor":
        return (row["expenseId"], row["participantId"])
    return (row["id"],)


def _loaded(pg: PgSchema, table: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The table's rows on PostgreSQL by primary key, as column -> value."""
    names = [n for (n,) in pg.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema ="
        " current_schema() AND table_name = %s ORDER BY ordinal_position",
        (table,),
    )]  # fmt: skip
    query = sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)).as_string()
    rows = [dict(zip(names, r, strict=True)) for r in pg.query(query)]
    return {_key(table, r): r for r in rows}


def test_prisma_data_loads_data_only_into_the_schema_of_its_postgresql_migrations(
    pg: PgSchema, tmp_path: Path
) -> None:
    db = tmp_path / "dev.db"
    rows = app_rows(expenses=60)
    build_sqlite(db, rows, bookkeeping=True)
    pg_history = build_pg(pg)

    # The app's migrations seed "Category" on both sides; lite2pg refuses to load into a
    # table that holds rows and says to add --truncate (which leaves _prisma_migrations).
    result = cli(
        "migrate", str(db), "--target", pg.dsn, "--schema", pg.schema, "--data-only",
        "--truncate", "--run-dir", str(tmp_path / "run"), cwd=tmp_path,
    )  # fmt: skip

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "verified" in output
    # Every row of the app's tables landed (Category: the 44 rows both migrations seed).
    for table, count in _table_counts(db).items():
        if table == "_prisma_migrations":
            continue
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)).as_string()
        assert pg.query(query) == [(count,)], table
    # ... with the values the app wrote.
    for table, table_rows in rows.items():
        loaded = _loaded(pg, table)
        assert len(loaded) == len(table_rows), table
        for want in table_rows:
            got = loaded[_key(table, want)]
            for column, value in want.items():
                assert as_app_value(got[column]) == expected_app_value(value), (table, column, want)
    # Prisma's own bookkeeping on PostgreSQL is its PostgreSQL history, not SQLite's.
    names = [n for (n,) in pg.query('SELECT migration_name FROM "_prisma_migrations"')]
    assert sorted(names) == sorted(pg_history)
    assert "_prisma_migrations" in output


def test_check_groups_prisma_millisecond_datetimes_by_column_and_names_the_fix(
    tmp_path: Path,
) -> None:
    # `prisma db push` leaves no _prisma_migrations table: nothing names the ORM.
    db = tmp_path / "pushed.db"
    expenses = 200
    build_sqlite(db, app_rows(expenses=expenses), bookkeeping=False)

    found = cli("check", str(db), "--json", cwd=tmp_path)
    shown = cli("check", str(db), cwd=tmp_path, env={"COLUMNS": "400"})

    assert found.returncode == 1, found.stderr
    assert shown.returncode == 1, shown.stderr
    every = json.loads(found.stdout)["rejects"]
    # Rows whose parent is rejected (orphans by the default policy) follow their parent's
    # fix; they get no plan line of their own.
    follows = [g for g in every if g["follows"] is not None]
    assert all(g["category"] == "ORPHAN" and g["fix"] is None for g in follows), follows
    groups = [g for g in every if g["follows"] is None]
    # One group per column and reason, not one per value (the values are all distinct).
    assert sorted((g["table"], g["column"]) for g in groups) == sorted(DATETIME_COLUMNS)
    by_column = {(g["table"], g["column"]): g for g in groups}
    createdAt = by_column[("Expense", "createdAt")]
    assert createdAt["distinct_values"] == expenses
    assert createdAt["count"] + createdAt["also"] == expenses
    headers = [
        line for line in shown.stdout.splitlines()
        if "Expense.createdAt" in line and createdAt["reason"] in line
    ]  # fmt: skip
    assert len(headers) == 1, shown.stdout
    assert len(shown.stdout.splitlines()) < 80, shown.stdout
    # Each names the plan lines (or the profile) that fix it, and they do.
    plan = tmp_path / "fix.toml"
    fixes = []
    for g in groups:
        fix = g["fix"]
        assert fix is not None, g
        lines = "\n".join(fix["lines"])
        assert all(line in shown.stdout for line in fix["lines"]), (fix, shown.stdout)
        assert f"tables.{g['table']}.columns.{g['column']}" in lines or "profile" in str(
            fix["source"]
        )
        fixes.append(lines)
    plan.write_text("\n\n".join(fixes) + "\n")
    fixed = cli("check", str(db), "--plan", str(plan), cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    # The ORM is named too, and its profile alone reads every one of those columns.
    assert all("--profile prisma" in g["fix"]["why"] for g in groups), groups
    named = cli("check", str(db), "--profile", "prisma", cwd=tmp_path)
    assert named.returncode == 0, named.stdout + named.stderr


def test_check_of_a_prisma_database_applies_the_prisma_profile_and_finds_nothing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "dev.db"
    build_sqlite(db, app_rows(expenses=30), bookkeeping=True)

    result = cli("check", str(db), cwd=tmp_path, env={"COLUMNS": "400"})

    assert result.returncode == 0, result.stdout + result.stderr
    assert "prisma" in result.stdout.lower()


def test_the_two_migration_histories_make_the_same_tables_and_columns(
    pg: PgSchema, tmp_path: Path
) -> None:
    # What the data-only proof rests on: spliit's SQLite and PostgreSQL histories describe
    # one app schema.
    db = tmp_path / "empty.db"
    build_sqlite(db, {}, bookkeeping=True)
    build_pg(pg)
    conn = sqlite3.connect(db)
    try:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                  if t != "sqlite_sequence"]  # fmt: skip
        on_sqlite = {t: {c[1] for c in conn.execute(f'PRAGMA table_info("{t}")')} for t in tables}
    finally:
        conn.close()
    on_pg: dict[str, set[str]] = {}
    for table, column in pg.query(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema()"
    ):
        on_pg.setdefault(str(table), set()).add(str(column))
    assert on_pg == on_sqlite
