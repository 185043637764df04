"""An online cutover killed at the moment the app's config holds the PostgreSQL URL (issue 15):
SQLite already refuses writes, `status` tells the state and finishes the cutover."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import psycopg.conninfo
import pytest
from click.testing import CliRunner

from lite2pg import capture, cutover_intent
from lite2pg.cli import main
from lite2pg.lifecycle import status
from lite2pg.run import MigrateOptions, migrate

from .conftest import MakeDb, PgSchema, sqlite_refuses_writes

LITE2PG = [sys.executable, "-m", "lite2pg"]
# Each rename returns this late (strace delays it), so the kill lands right after the
# config's rename, before anything after it runs.
RENAME_DELAY_US = 400_000


def _strace_prefix(log: Path) -> list[str] | None:
    """strace with every rename delayed, where strace can trace here; else None."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    renames = "rename,renameat,renameat2"
    cmd = [strace, "-f", "-o", str(log), "-e", f"trace={renames}",
           "-e", f"inject={renames}:delay_exit={RENAME_DELAY_US}"]  # fmt: skip
    probe = subprocess.run([*cmd, "true"], capture_output=True, timeout=30)
    return cmd if probe.returncode == 0 else None


def test_online_cutover_killed_after_the_config_moved_leaves_sqlite_blocked_and_status_finishes(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
        ("INSERT INTO notes (body) VALUES (?)", [(f"n{i}",) for i in range(200)]),
    )
    capture.prepare(db)
    run_dir = tmp_path / "run"
    migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir, verify=False))
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE notes SET body = 'changed' WHERE id = 7")  # a change to drain
    config = tmp_path / ".env"
    config.write_text("DATABASE_URL=sqlite:///app.db\n")
    prefix = _strace_prefix(tmp_path / "strace.log") or []
    cmd = [*prefix, *LITE2PG, "cutover", str(run_dir), "--config", str(config),
           "--target", pg.dsn, "--online", "--no-verify"]  # fmt: skip

    out = tmp_path / "cutover.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    killed = False
    deadline = time.monotonic() + 60
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if pg.dsn in config.read_text():
                os.killpg(proc.pid, signal.SIGKILL)  # lite2pg and strace with it
                killed = True
                break
            time.sleep(0.001)
    finally:
        if proc.poll() is None and not killed:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    if not killed:
        tail = out.read_text()[-300:]
        pytest.skip(f"the cutover ended before the kill landed (no strace?): {tail}")

    # The config says PostgreSQL: SQLite must refuse the app's writes (no split).
    assert pg.dsn in config.read_text()
    assert sqlite_refuses_writes(db)
    intent = (run_dir / "cutover-intent.json").read_text()
    assert '"state": "started"' in intent and "password" not in intent

    status = subprocess.run(
        [*LITE2PG, "status", str(run_dir)],
        capture_output=True, text=True, timeout=60, cwd=run_dir.parent,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    first = [x for x in status.stdout.splitlines() if x.startswith("cutover")]
    assert first and "not run" not in first[0], status.stdout
    line = [x for x in status.stdout.splitlines() if x.startswith("recovered")]
    assert line, status.stdout
    assert "config holds PostgreSQL" in line[0] and "write block installed" in line[0]
    assert "finished it forwards" in line[0]
    again = subprocess.run(
        [*LITE2PG, "status", str(run_dir)],
        capture_output=True, text=True, timeout=60, cwd=run_dir.parent,
    )  # fmt: skip
    cutover_line = [x for x in again.stdout.splitlines() if x.startswith("cutover")]
    assert cutover_line and "done (online" in cutover_line[0], again.stdout
    assert "recovered" not in again.stdout  # finished once
    assert pg.dsn in config.read_text() and sqlite_refuses_writes(db)


def _interrupted_between_block_and_switch(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, dsn: str
) -> tuple[Path, Path, Path]:
    """A run whose cutover died after SQLite committed the block, before the config moved."""
    db = make_db("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    capture.prepare(db)
    run_dir = tmp_path / "run"
    migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir, verify=False))
    config = tmp_path / ".env"
    config.write_text("DATABASE_URL=sqlite:///app.db\n")
    cutover_intent.begin(run_dir, config, None, db, ["notes"], dsn)
    with closing(sqlite3.connect(db)) as conn, conn:
        for stmt in capture.block_sql("notes"):
            conn.execute(stmt)
    return db, run_dir, config


def test_status_finishes_a_cutover_killed_before_the_switch_backwards(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db, run_dir, config = _interrupted_between_block_and_switch(make_db, pg, tmp_path, pg.dsn)
    assert "write block installed" in str(cutover_intent.describe(run_dir))

    shown = str(status(run_dir))

    assert "config still holds SQLite" in shown and "finished it backwards" in shown
    assert "finished backwards" in shown.splitlines()[-1]
    assert config.read_text() == "DATABASE_URL=sqlite:///app.db\n"
    assert not sqlite_refuses_writes(db)  # the app writes to SQLite again


def test_cutover_again_finishes_a_cutover_killed_before_the_switch_forwards(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    dsn = psycopg.conninfo.make_conninfo(pg.dsn, password="s3cret-pw")  # trust auth ignores it
    db, run_dir, config = _interrupted_between_block_and_switch(make_db, pg, tmp_path, dsn)

    args = ["cutover", str(run_dir), "--config", str(config), "--target", dsn, "--online"]
    done = CliRunner().invoke(main, args)

    assert done.exit_code == 0, done.output
    assert "write block installed" in done.output and "finished it forwards" in done.output
    assert "s3cret-pw" not in done.output + (run_dir / "cutover-intent.json").read_text()
    assert "s3cret-pw" not in (run_dir / "cutover.json").read_text()
    assert "s3cret-pw" in config.read_text() and sqlite_refuses_writes(db)
    [backup] = tmp_path.glob(".env.lite2pg-backup-*")
    assert backup.read_text() == "DATABASE_URL=sqlite:///app.db\n"
    assert "done (online" in str(status(run_dir)).splitlines()[-1]
    assert cutover_intent.recover(run_dir, dsn) is None  # finished once


HOT_JOURNAL = r"""
import os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA cache_size = 1")  # dirty pages spill: the journal is synced, the file written
conn.execute("BEGIN IMMEDIATE")
conn.executemany("INSERT INTO notes (body) VALUES (?)", [("x" * 500,) for _ in range(400)])
os._exit(9)  # killed inside the transaction: a hot journal is left for the next writer
"""


def test_status_finishes_a_cutover_killed_inside_sqlites_commit_over_a_hot_journal(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    """Found by tests/crash (--all-points): a cutover killed while SQLite wrote the write
    block left a hot journal, which status's read-only look at the triggers could not roll
    back ("attempt to write a readonly database", a traceback)."""
    db, run_dir, config = _interrupted_between_block_and_switch(make_db, pg, tmp_path, pg.dsn)
    with closing(sqlite3.connect(db)) as conn, conn:
        for stmt in capture.unblock_sql("notes"):
            conn.execute(stmt)  # the block's transaction is the one that dies below
    died = subprocess.run([sys.executable, "-c", HOT_JOURNAL, str(db)], timeout=60)
    assert died.returncode == 9 and Path(f"{db}-journal").stat().st_size > 0

    shown = str(status(run_dir))

    assert "finished it backwards" in shown, shown
    assert not Path(f"{db}-journal").exists()  # rolled back, as the app's next write would
    assert not sqlite_refuses_writes(db)  # the app writes to SQLite again
    assert config.read_text() == "DATABASE_URL=sqlite:///app.db\n"
