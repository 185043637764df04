"""The run's ledger: what the plan drops and rewrites is counted from the source, shown
and kept in the report, and a plan that would let deactivated accounts log in stops."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from lite2pg.errors import PlanError
from lite2pg.plan import parse_plan
from lite2pg.run import MigrateOptions, migrate
from tests._cli import cli, known_error
from tests.conftest import PgSchema

STATUS_MAP = {"open": "open", "OPEN": "open", "wip": "in_progress", "done": "closed"}


def _make_db(path: Path) -> Path:
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(
            """
            CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT, email TEXT,
                                   password TEXT, is_active BOOLEAN);
            CREATE TABLE tasks (id INTEGER PRIMARY KEY, status TEXT, note TEXT);
            """
        )
        conn.executemany(
            "INSERT INTO accounts VALUES (?, ?, ?, ?, ?)",
            [
                (i, f"user{i}", f"u{i}@example.com" if i % 3 else None, f"pw{i}", i % 4 != 0)
                for i in range(1, 41)
            ],
        )
        statuses = ["open", "OPEN", "wip", "done", None]
        conn.executemany(
            "INSERT INTO tasks VALUES (?, ?, ?)",
            [(i, statuses[i % 5], "n" if i % 2 else None) for i in range(1, 101)],
        )
        conn.commit()
    return path


PLAN = """
[tables.accounts]
drop = ["email", "is_active"]
{extra}
[tables.tasks]
drop = ["note"]
[[tables.tasks.columns.status.transforms]]
[tables.tasks.columns.status.transforms.map]
values = {{ open = "open", OPEN = "open", wip = "in_progress", done = "closed" }}
[[tables.tasks.columns.status.transforms]]
default = "open"
"""


def _source_count(db: Path, sql: str) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return int(conn.execute(sql).fetchone()[0])


def test_dropped_columns_and_rewritten_values_are_counted_in_the_report(
    tmp_path: Path, pg: PgSchema
) -> None:
    db = _make_db(tmp_path / "app.db")
    plan = parse_plan(PLAN.format(extra='deactivated = "may-log-in"'))
    opts = MigrateOptions(schema=pg.schema, run_dir=tmp_path / "run", plan=plan)
    migrate(db, pg.target, opts)
    data = json.loads((tmp_path / "run" / "report.json").read_text())
    by_table = {e["table"]: e for e in data["ledger"]}
    assert by_table["accounts"]["dropped"] == {
        "email": _source_count(db, "SELECT count(*) FROM accounts WHERE email IS NOT NULL"),
        "is_active": 40,
    }
    assert by_table["accounts"]["deactivated_may_log_in"] == {
        "is_active": _source_count(db, "SELECT count(*) FROM accounts WHERE NOT is_active")
    }
    assert by_table["tasks"]["dropped"] == {"note": 50}
    (rewrite,) = by_table["tasks"]["rewrites"]
    # Changed: every value the map gives another value for, and every NULL defaulted.
    changed = _source_count(
        db, "SELECT count(*) FROM tasks WHERE status IN ('OPEN', 'wip', 'done') OR status IS NULL"
    )
    assert rewrite["changed"] == changed and rewrite["rejected"] == 0
    assert {(e["before"], e["after"]) for e in rewrite["examples"]} == {
        ("'OPEN'", "'open'"), ("'wip'", "'in_progress'"), ("'done'", "'closed'"),
        ("NULL", "'open'"),
    }  # fmt: skip
    # What PostgreSQL holds agrees with the ledger's count of changed values.
    kept = pg.query("SELECT count(*) FROM tasks WHERE status = 'open'")[0][0]
    assert kept == _source_count(
        db, "SELECT count(*) FROM tasks WHERE status IN ('open', 'OPEN') OR status IS NULL"
    )
    html = (tmp_path / "run" / "report.html").read_text()
    assert "What the plan drops and changes" in html and "accounts.email" in html


def test_the_summary_names_every_dropped_column(tmp_path: Path, pg: PgSchema) -> None:
    db = _make_db(tmp_path / "app.db")
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN.format(extra='deactivated = "may-log-in"'))
    result = cli(
        "migrate", str(db), "--target", pg.dsn, "--schema", pg.schema, "--plan", str(plan),
        "--run-dir", str(tmp_path / "run"), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())  # the console wraps long lines
    emails = _source_count(db, "SELECT count(email) FROM accounts")
    assert f"dropped: accounts.email ({emails} non-NULL value(s) not migrated)" in out
    assert "dropped: tasks.note (50 non-NULL value(s) not migrated)" in out
    assert "deactivated: accounts: 10 account(s) marked by is_active can log in" in out


def test_a_plan_that_lets_deactivated_accounts_log_in_is_refused(
    tmp_path: Path, pg: PgSchema
) -> None:
    db = _make_db(tmp_path / "app.db")
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN.format(extra=""))
    result = cli(
        "migrate", str(db), "--target", pg.dsn, "--schema", pg.schema, "--plan", str(plan),
        "--run-dir", str(tmp_path / "run"), cwd=tmp_path,
    )  # fmt: skip
    line = known_error(result)
    assert "is_active" in line and "10 account(s)" in line and "may-log-in" in line
    assert pg.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
    ) == [(0,)]


def test_deactivated_takes_one_value() -> None:
    with pytest.raises(PlanError, match="may-log-in"):
        parse_plan('[tables.accounts]\ndeactivated = "yes"\n')


def test_check_lists_the_ledger_and_the_refusal(tmp_path: Path) -> None:
    db = _make_db(tmp_path / "app.db")
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN.format(extra=""))
    result = cli("check", str(db), "--plan", str(plan), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    out = " ".join(result.stdout.split())
    assert "ATTENTION: a run refuses this plan" in out and "is_active" in out
    plan.write_text(PLAN.format(extra='deactivated = "may-log-in"'))
    result = cli("check", str(db), "--plan", str(plan), cwd=tmp_path)
    out = " ".join(result.stdout.split())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dropped: tasks.note (50 non-NULL value(s) not migrated)" in out
