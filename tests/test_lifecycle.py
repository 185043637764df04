"""After the load: export, status, cutover (gated by verify, smoke-tested) and rollback."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import argon2
import pytest

from lite2pg.artifacts import Journal, read_manifest, read_table_csv, verify_file
from lite2pg.demo import make_legacy_helpdesk
from lite2pg.errors import TargetError
from lite2pg.lifecycle import RunStateError, cutover, export, rollback, status
from lite2pg.plan import load_plan
from lite2pg.run import MigrateOptions, migrate, prepare_schema

from .conftest import MakeDb, PgSchema


def _helpdesk_run(tmp_path: Path, pg: PgSchema, *, verify: bool = True) -> Path:
    db = tmp_path / "dev.db"
    make_legacy_helpdesk(db, users=20, tickets=60, audit_logs=120, seed=3)
    plan = load_plan("helpdesk")
    prepare_schema(pg.target, pg.schema, plan)
    run_dir = tmp_path / "run"
    migrate(
        db,
        pg.target,
        MigrateOptions(schema=pg.schema, plan=plan, data_only=True, run_dir=run_dir, verify=verify),
    )
    return run_dir


def test_export_writes_every_table_as_csv_with_checksums_and_owner_only_files(
    make_db: MakeDb, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT, b BLOB);",
        ("INSERT INTO t VALUES (?, ?, ?)", [(1, "", b"\x00"), (2, None, None), (3, "5", b"x")]),
    )
    run_dir = export(db, tmp_path / "run")

    manifest = read_manifest(run_dir)
    assert set(manifest.files) == {"source.snapshot.db", "export/t.csv"}
    assert manifest.files["export/t.csv"].rows == 3
    verify_file(run_dir, "export/t.csv")
    rows = [r for batch in read_table_csv(run_dir / "export" / "t.csv") for r in batch]
    assert rows == [(1, "", b"\x00"), (2, None, None), (3, "5", b"x")]
    assert stat.S_IMODE((run_dir / "export" / "t.csv").stat().st_mode) == 0o600
    (run_dir / "export" / "t.csv").write_text("tampered")
    with pytest.raises(Exception, match="changed since it was written"):
        verify_file(run_dir, "export/t.csv")


def test_status_says_what_a_run_has_done(tmp_path: Path, pg: PgSchema) -> None:
    run_dir = _helpdesk_run(tmp_path, pg)

    steps = dict(status(run_dir).steps)

    assert steps["snapshot"] == "done"
    assert steps["transform"] == "not run (migrate streamed)"
    assert steps["verify"] == "passed"
    assert steps["cutover"] == "not run"


def test_status_follows_the_staged_commands_through_the_journal(
    make_db: MakeDb, tmp_path: Path, pg: PgSchema
) -> None:
    from lite2pg.stages import load, transform

    db = make_db("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (2);")
    run_dir = export(db, tmp_path / "run", MigrateOptions(schema=pg.schema))
    assert dict(status(run_dir).steps)["transform"] == "not run"
    transform(run_dir)
    assert dict(status(run_dir).steps)["transform"] == "done"
    load(run_dir, pg.target)
    steps = dict(status(run_dir).steps)
    assert steps["export"] == "done"
    assert steps["load"].startswith("OK: 2 rows loaded")
    assert steps["verify"] == "passed"


def test_cutover_switches_the_config_after_verify_and_rollback_undoes_it(
    tmp_path: Path, pg: PgSchema
) -> None:
    run_dir = _helpdesk_run(tmp_path, pg)
    env = tmp_path / ".env"
    env.write_text("# app\nDATABASE_URL=sqlite:///dev.db\nDEBUG=1\n")

    result = cutover(run_dir, pg.target, env, smoke=f"{sys.executable} -c 'pass'")

    assert f"DATABASE_URL={pg.dsn}" in env.read_text()
    assert result.logins_checked > 0
    assert json.loads((run_dir / "cutover.json").read_text())["state"] == "done"

    undone = rollback(run_dir, pg.target)

    assert env.read_text() == "# app\nDATABASE_URL=sqlite:///dev.db\nDEBUG=1\n"
    assert undone.config_restored == str(env)
    assert pg.query("SELECT count(*) FROM users") == [(0,)]
    assert pg.query("SELECT count(*) FROM audit_logs") == [(0,)]


def test_cutover_refuses_when_a_sampled_user_cannot_log_in_and_leaves_the_config(
    tmp_path: Path, pg: PgSchema
) -> None:
    run_dir = _helpdesk_run(tmp_path, pg)
    env = tmp_path / ".env"
    env.write_text("DATABASE_URL=sqlite:///dev.db\n")
    # Every stored hash now verifies a password no user has (made by argon2-cffi itself):
    # whichever users the cutover samples, none can log in with their original password.
    foreign = argon2.PasswordHasher(time_cost=1, memory_cost=1024).hash("nobody's password")
    pg.execute(f"""UPDATE users SET "passwordHash" = '{foreign}'""")

    with pytest.raises(TargetError, match="login check failed: users id="):
        cutover(run_dir, pg.target, env, smoke=f"{sys.executable} -c 'pass'")

    assert env.read_text() == "DATABASE_URL=sqlite:///dev.db\n"
    assert not (run_dir / "cutover.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".env")) == [".env"]


def test_cutover_again_is_refused_so_that_rollback_still_puts_sqlite_back(
    tmp_path: Path, pg: PgSchema
) -> None:
    """Found by tests/crash: an operator told "not run" after a crash at the config's
    rename ran cutover again, which backed up the PostgreSQL URL as the value to restore."""
    run_dir = _helpdesk_run(tmp_path, pg)
    env = tmp_path / ".env"
    env.write_text("DATABASE_URL=sqlite:///dev.db\n")
    cutover(run_dir, pg.target, env)

    with pytest.raises(RunStateError, match="already names this target"):
        cutover(run_dir, pg.target, env)
    rollback(run_dir, pg.target)

    assert env.read_text() == "DATABASE_URL=sqlite:///dev.db\n"


def test_a_failing_smoke_command_puts_the_old_config_back(tmp_path: Path, pg: PgSchema) -> None:
    run_dir = _helpdesk_run(tmp_path, pg)
    env = tmp_path / ".env"
    env.write_text("DATABASE_URL=sqlite:///dev.db\n")

    with pytest.raises(Exception, match="smoke"):
        cutover(run_dir, pg.target, env, smoke=f"{sys.executable} -c 'raise SystemExit(3)'")

    assert env.read_text() == "DATABASE_URL=sqlite:///dev.db\n"


def test_cutover_refuses_a_run_that_has_not_passed_verify(tmp_path: Path, pg: PgSchema) -> None:
    run_dir = _helpdesk_run(tmp_path, pg, verify=False)
    env = tmp_path / ".env"
    env.write_text("DATABASE_URL=sqlite:///dev.db\n")

    with pytest.raises(RunStateError, match="not passed verify"):
        cutover(run_dir, pg.target, env)

    assert env.read_text() == "DATABASE_URL=sqlite:///dev.db\n"


def test_rollback_with_reload_loads_the_same_rows_again_from_the_snapshot(
    tmp_path: Path, pg: PgSchema
) -> None:
    run_dir = _helpdesk_run(tmp_path, pg)
    before = pg.query('SELECT id, username, "passwordHash" FROM users ORDER BY id')

    result = rollback(run_dir, pg.target, reload=True)

    assert result.reloaded is not None
    # Hashes come from the run's cache (same row, same plaintext): identical, not re-salted.
    assert pg.query('SELECT id, username, "passwordHash" FROM users ORDER BY id') == before


def test_status_tells_a_killed_stage_from_a_running_one(make_db: MakeDb, tmp_path: Path) -> None:
    db = make_db("CREATE TABLE t (id INTEGER PRIMARY KEY);", ("INSERT INTO t VALUES (?)", [(1,)]))
    run_dir = export(db, tmp_path / "run")
    journal = Journal(run_dir)
    journal.set_stage("transform", "running")  # this process: alive
    assert dict(status(run_dir).steps)["transform"] == "running"

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    data = json.loads((run_dir / "journal.json").read_text())
    data["stages"]["transform"]["pid"] = dead.pid  # as a SIGKILLed run leaves it
    (run_dir / "journal.json").write_text(json.dumps(data))

    assert dict(status(run_dir).steps)["transform"].startswith("interrupted")
