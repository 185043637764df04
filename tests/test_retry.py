"""lite2pg retry: a run's rejected rows go in through a fixed plan, in one transaction, and
the run verifies as the new plan's; a fix that would change loaded rows is refused."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from tests._cli import cli, known_error
from tests.conftest import PgSchema

PLAN = """
[[tables.users.columns.role.transforms]]
[tables.users.columns.role.transforms.map]
values = {{ admin = "admin", user = "user"{more} }}
on_unknown = "reject"

[tables.tickets.foreign_keys.user_id]
on_orphan = "reject"
"""


def _make_db(path: Path) -> Path:
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(
            """
            CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, role TEXT);
            CREATE TABLE tickets (id INTEGER PRIMARY KEY AUTOINCREMENT,
                                  user_id INTEGER REFERENCES users(id), title TEXT);
            """
        )
        roles = ["admin", "user", "root", "user", "guest"]
        conn.executemany(
            "INSERT INTO users VALUES (?, ?, ?)",
            [(i, f"u{i}", roles[i % 5]) for i in range(1, 51)],
        )
        conn.executemany(
            "INSERT INTO tickets (user_id, title) VALUES (?, ?)",
            [(1 + i % 50, f"t{i}") for i in range(300)],
        )
        conn.commit()
    return path


def _source(db: Path, query: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return [tuple(r) for r in conn.execute(query).fetchall()]


def _migrate(tmp_path: Path, pg: PgSchema, db: Path) -> Path:
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN.format(more=""))
    run_dir = tmp_path / "run"
    result = cli(
        "migrate", str(db), "--target", pg.dsn, "--schema", pg.schema, "--plan", str(plan),
        "--run-dir", str(run_dir), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr  # rows were rejected
    return run_dir


def test_retry_loads_the_rejected_rows_and_their_orphans_and_the_run_verifies(
    tmp_path: Path, pg: PgSchema
) -> None:
    db = _make_db(tmp_path / "app.db")
    run_dir = _migrate(tmp_path, pg, db)
    unknown = _source(db, "SELECT count(*) FROM users WHERE role IN ('root', 'guest')")[0][0]
    assert pg.query("SELECT count(*) FROM users") == [(50 - unknown,)]
    fix = tmp_path / "fix.toml"
    fix.write_text(PLAN.format(more=', root = "admin", guest = "user"'))
    result = cli("retry", str(run_dir), "--plan", str(fix), "--target", pg.dsn, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK: ") and "none left rejected" in result.stdout
    # Every source row is in, with the new mapping; the old rows are as they were.
    assert pg.query("SELECT count(*) FROM users") == [(50,)]
    assert pg.query("SELECT count(*) FROM tickets") == _source(db, "SELECT count(*) FROM tickets")
    mapped = dict(pg.query("SELECT role, count(*) FROM users GROUP BY 1"))
    expected = dict(
        _source(
            db,
            "SELECT CASE role WHEN 'root' THEN 'admin' WHEN 'guest' THEN 'user' ELSE role END, "
            "count(*) FROM users GROUP BY 1",
        )
    )
    assert mapped == expected
    # The run is the new plan's: its files say so, and an independent verify agrees.
    assert "root" in json.loads((run_dir / "run.json").read_text())["plan"]["text"]
    assert not list((run_dir / "rejects").glob("*.jsonl"))
    report = json.loads((run_dir / "report.json").read_text())
    assert report["totals"]["rejected"] == 0 and report["retries"]
    again = cli("verify", str(run_dir), "--target", pg.dsn, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    # The identity is past every key now in the table.
    pg.execute("INSERT INTO tickets (user_id, title) VALUES (1, 'new')")


def test_retry_refuses_a_fix_that_changes_rows_already_loaded(tmp_path: Path, pg: PgSchema) -> None:
    db = _make_db(tmp_path / "app.db")
    run_dir = _migrate(tmp_path, pg, db)
    before = pg.query("SELECT count(*) FROM users")
    fix = tmp_path / "fix.toml"
    fix.write_text(
        PLAN.format(more=', root = "admin"').replace('admin = "admin"', 'admin = "boss"')
    )
    line = known_error(
        cli("retry", str(run_dir), "--plan", str(fix), "--target", pg.dsn, cwd=tmp_path)
    )
    assert "users.role" in line and "'admin'" in line and "'boss'" in line
    assert pg.query("SELECT count(*) FROM users") == before
    assert list((run_dir / "rejects").glob("*.jsonl"))  # the run's files as they were


def test_retry_refuses_a_fix_that_changes_the_tables(tmp_path: Path, pg: PgSchema) -> None:
    db = _make_db(tmp_path / "app.db")
    run_dir = _migrate(tmp_path, pg, db)
    fix = tmp_path / "fix.toml"
    fix.write_text(PLAN.format(more="") + '\n[tables.users]\ndrop = ["name"]\n')
    line = known_error(
        cli("retry", str(run_dir), "--plan", str(fix), "--target", pg.dsn, cwd=tmp_path)
    )
    assert "changes the tables or columns" in line


def test_a_retry_killed_around_its_commit_is_finished_by_the_next(
    tmp_path: Path, pg: PgSchema
) -> None:
    """SIGKILL once retry.pending.json exists (written just before the commit, removed
    once the files are written): whichever side of the commit the kill landed on, the
    next retry ends with every row in once and a run that verifies."""
    db = _make_db(tmp_path / "app.db")
    run_dir = _migrate(tmp_path, pg, db)
    fix = tmp_path / "fix.toml"
    fix.write_text(PLAN.format(more=', root = "admin", guest = "user"'))
    args = ["retry", str(run_dir), "--plan", str(fix), "--target", pg.dsn, "--no-verify"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "lite2pg", *args], cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    pending = run_dir / "retry.pending.json"
    deadline = time.monotonic() + 60
    while not pending.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.0005)
    landed = pending.exists()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert landed, "the retry ended before its pending record could be seen"
    again = cli("retry", str(run_dir), "--plan", str(fix), "--target", pg.dsn, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert not pending.exists()
    assert pg.query("SELECT count(*) FROM users") == [(50,)]
    assert pg.query("SELECT count(*) FROM tickets") == _source(db, "SELECT count(*) FROM tickets")
