"""Rejected rows are kept in PostgreSQL too: one table per run with the raw row as jsonb,
the reason and its category; secrets stay redacted; rollback drops it."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

from lite2pg.lifecycle import rollback
from lite2pg.plan import parse_plan
from lite2pg.quarantine import table_name
from lite2pg.run import MigrateOptions, migrate
from tests.conftest import PgSchema

PLAN = """
[tables.users.columns.password]
transforms = [{ hash_password = { algorithm = "bcrypt", cost = 4, empty = "reject" } }]
[[tables.users.columns.role.transforms]]
[tables.users.columns.role.transforms.map]
values = { admin = "admin", user = "user" }
on_unknown = "reject"
"""


def _make_db(path: Path) -> Path:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, role TEXT, password TEXT)")
        roles = ["admin", "user", "root", "guest"]
        conn.executemany(
            "INSERT INTO users VALUES (?, ?, ?)",
            [(i, roles[i % 4], "" if i % 7 == 0 else f"secret-{i}") for i in range(1, 30)],
        )
        conn.commit()
    return path


def test_rejected_rows_are_queryable_in_postgresql(tmp_path: Path, pg: PgSchema) -> None:
    db = _make_db(tmp_path / "app.db")
    run_dir = tmp_path / "run"
    plan = parse_plan(PLAN)
    report = migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir, plan=plan))
    run_id = json.loads((run_dir / "run.json").read_text())["id"]
    assert report.quarantine == f"lite2pg.{table_name(run_id)}"
    lines = [
        json.loads(line) for line in (run_dir / "rejects" / "users.jsonl").read_text().splitlines()
    ]
    with closing(sqlite3.connect(db)) as conn:
        unknown_roles = conn.execute(
            "SELECT count(*) FROM users WHERE role NOT IN ('admin', 'user')"
        ).fetchone()[0]
    assert report.rows_rejected == len(lines) >= unknown_roles > 0
    table = f'lite2pg."{table_name(run_id)}"'
    held = pg.query(f"SELECT source_table, key, source_column, category, row FROM {table}")
    assert len(held) == len(lines)
    assert {(r[0], r[1]["id"]) for r in held} == {("users", line["key"]["id"]) for line in lines}
    by_category = dict(pg.query(f"SELECT category, count(*) FROM {table} GROUP BY 1"))
    assert by_category["not_mapped"] == unknown_roles
    # No plaintext in PostgreSQL: a rejected row's password is redacted there too.
    assert all(r[4]["password"] in (None, "", "<redacted>") for r in held)
    assert not pg.query(f"SELECT 1 FROM {table} WHERE row::text LIKE '%%secret-%%'")

    rollback(run_dir, pg.target)
    assert pg.query("SELECT to_regclass(%s)", (table,)) == [(None,)]


def test_a_table_whose_name_is_not_a_plain_file_name_verifies_with_its_rejects(
    tmp_path: Path, pg: PgSchema
) -> None:
    db = tmp_path / "app.db"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute('CREATE TABLE "order items" (id INTEGER PRIMARY KEY, role TEXT)')
        conn.executemany(
            'INSERT INTO "order items" VALUES (?, ?)',
            [(i, ["a", "b", "x"][i % 3]) for i in range(30)],
        )
        conn.commit()
    plan = parse_plan(
        '[tables."order items".columns.role]\n'
        'transforms = [{ map = { values = { a = "a", b = "b" }, on_unknown = "reject" } }]\n'
    )
    report = migrate(
        db, pg.target, MigrateOptions(schema=pg.schema, run_dir=tmp_path / "r", plan=plan)
    )
    assert report.rows_rejected == 10
    assert report.verify is not None and report.verify["ok"], report.verify
