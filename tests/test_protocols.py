"""Every multi-step protocol (publish, offline cutover, rollback, online cutover) killed
with SIGKILL at each of its renames, by strace (`inject=rename:signal=KILL:when=N`: the
process dies as it enters its N-th rename, so renames 1..N-1 happened and nothing after).
After every kill, `status` finishes what was interrupted, and the state is the old one or
the new one: config, cutover.json, SQLite's write block and PostgreSQL agree.

The PostgreSQL COMMIT of publish and rollback lies between two renames, so the sweep
kills on both sides of it. No sleeps: each kill point is a syscall count.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing, suppress
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from lite2pg import capture
from lite2pg.lifecycle import cutover
from lite2pg.run import MigrateOptions, migrate

from .conftest import MakeDb, PgSchema, sqlite_refuses_writes

STRACE = shutil.which("strace")
pytestmark = pytest.mark.skipif(STRACE is None, reason="strace is not installed")
RENAMES = "rename,renameat,renameat2"
# pid, then the new name: rename("old", "new"), renameat2(AT_FDCWD, "old", AT_FDCWD, "new", 0)
_RENAME = re.compile(r'^(\d+)\s+(rename(?:at2?)?)\((?:[^"]*)"[^"]*", (?:[^"]*)"([^"]*)"')
_FSYNC = re.compile(r"^(\d+)\s+fsync\((\d+)")
_EXEC = re.compile(r"^(\d+)\s+execve\(")
SQLITE_URL = "sqlite:///app.db"
ROWS = 40


def _env() -> dict[str, str]:
    # No .pyc writes: they are renames too, and would shift the kill points between runs.
    base = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    return {**base, "PYTHONDONTWRITEBYTECODE": "1"}


def _run(args: list[str], cwd: Path, *, kill_at: int | None = None, log: Path | None = None,
         calls: str = RENAMES) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """`python -m lite2pg ARGS`, under strace when `log` is given (killed as it enters its
    `kill_at`-th call of `calls`, if given)."""
    cmd = [sys.executable, "-m", "lite2pg", *args]
    if log is not None:
        assert STRACE is not None
        trace = [STRACE, "-f", "-qq", "-o", str(log), "-e", f"trace={calls},execve"]
        if kill_at is not None:
            trace += ["-e", f"inject={calls}:signal=KILL:when={kill_at}"]
        cmd = [*trace, *cmd]
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=180)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # a worker the kill orphaned, if any
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _main_calls(log: Path) -> list[tuple[str, str]]:
    """The main process's traced calls, in order: (syscall, the renamed file or "")."""
    main: str | None = None
    out: list[tuple[str, str]] = []
    for line in log.read_text().splitlines():
        if main is None and (m := _EXEC.match(line)):
            main = m.group(1)
        if (m := _RENAME.match(line)) and m.group(1) == main:
            out.append((m.group(2), m.group(3)))
        elif (m := _FSYNC.match(line)) and m.group(1) == main:
            out.append(("fsync", ""))
    return out


def _kill_points(calls: list[tuple[str, str]], record: str) -> list[tuple[str, int, str]]:
    """From the first write of the intent `record` to its done record: each call as
    (syscall, its number among that syscall's calls, what it names). strace counts
    `when=N` per syscall and process."""
    at = [i for i, (_, name) in enumerate(calls) if name.endswith(record)]
    points = []
    for i in range(at[0], at[-1] + 1):
        call, name = calls[i]
        nth = sum(1 for c, _ in calls[: i + 1] if c == call)
        renamed = [Path(n).name for _, n in calls[:i] if n]
        points.append((call, nth, Path(name).name if name else f"(after {renamed[-1]})"))
    return points


def _killed(args: list[str], cwd: Path, call: str, n: int, log: Path) -> None:
    done = _run(args, cwd, kill_at=n, log=log, calls=call)
    assert done.returncode != 0, f"not killed at {call} {n}: {done.stdout}{done.stderr}"


def _line(out: str, step: str) -> str:
    found = [x for x in out.splitlines() if x.startswith(step + " ")]
    assert len(found) == 1, out
    return found[0]


def _status(run_dir: Path) -> str:
    done = _run(["status", str(run_dir)], run_dir.parent)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    for record in run_dir.glob("*-intent.json"):  # finished once, for good
        assert json.loads(record.read_text())["state"] != "started", done.stdout
    return done.stdout


def _db(make_db: MakeDb) -> Path:
    return make_db(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
        ("INSERT INTO notes (body) VALUES (?)", [(f"n{i}",) for i in range(ROWS)]),
    )


def _count(pg: PgSchema, schema: str | None = None) -> int | None:
    """Rows in notes, or None when there is no such table."""
    schema = schema or pg.schema
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        found = conn.execute("SELECT to_regclass(%s)", (f'"{schema}".notes',)).fetchone()
        if not found or found[0] is None:
            return None
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.notes").format(sql.Identifier(schema))
        ).fetchone()
        return int(row[0]) if row else 0


def _sweep(
    tmp_path: Path,
    args: Callable[[Path], list[str]],
    setup: Callable[[Path], Path],
    record: str,
    check: Callable[[Path, str], str],
    calls: str = RENAMES,
) -> list[tuple[str, str, str]]:
    """Run the command once in full under strace to list its `calls`, then once per call
    from the intent `record`'s first write to its done record, killed entering it;
    `check` asserts the recovered state and says which it is ('old' or 'new'). Returns
    (call number, its file or "fsync", outcome)."""
    base = setup(tmp_path / "p0")
    log = tmp_path / "p0.strace"
    done = _run(args(base), base.parent, log=log, calls=calls)
    assert done.returncode == 0, done.stdout + done.stderr
    points = _kill_points(_main_calls(log), record)
    assert len(points) >= 3, points
    table = []
    for i, (call, n, what) in enumerate(points, 1):
        run_dir = setup(tmp_path / f"p{i}")
        _killed(args(run_dir), run_dir.parent, call, n, tmp_path / f"p{i}.strace")
        out = _status(run_dir)
        table.append((f"{call} #{n}", what, check(run_dir, out)))
    outcomes = {o for _, _, o in table}
    assert outcomes <= {"old", "new"}, table
    return table


def _print(name: str, table: list[tuple[str, str, str]]) -> None:
    print(f"\n{name}: killed entering the call (N-th of its kind in the main process)")
    for call, what, outcome in table:
        print(f"  {call:<10} {what:<44} -> {outcome}")


# --- offline cutover --------------------------------------------------------------------


def _verified_run(make_db: MakeDb, pg: PgSchema, where: Path, schema: str) -> Path:
    where.mkdir()
    run_dir = where / "run"
    migrate(_db(make_db), pg.target, MigrateOptions(schema=schema, run_dir=run_dir, drop=True))
    (where / ".env").write_text(f"DATABASE_URL={SQLITE_URL}\n")
    return run_dir


def test_offline_cutover_killed_at_each_rename_is_old_or_new_and_status_agrees_with_config(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    def setup(where: Path) -> Path:
        return _verified_run(make_db, pg, where, pg.schema)

    def args(run_dir: Path) -> list[str]:
        return ["cutover", str(run_dir), "--config", str(run_dir.parent / ".env"),
                "--target", pg.dsn]  # fmt: skip

    def check(run_dir: Path, out: str) -> str:
        config = (run_dir.parent / ".env").read_text()
        line = _line(out, "cutover")
        if config == f"DATABASE_URL={SQLITE_URL}\n":
            assert "not run" in line or "config holds SQLite" in line, out
            return "old"
        assert config == f"DATABASE_URL={pg.dsn}\n"
        assert line.startswith("cutover   done:") or "done:" in line, out
        assert "config holds PostgreSQL" in line, out
        return "new"

    table = _sweep(tmp_path, args, setup, "config-intent.json", check)
    _print("cutover (offline)", table)
    assert {o for _, _, o in table} == {"old", "new"}


def test_cutover_run_again_after_a_kill_past_the_switch_finishes_it_instead_of_switching_twice(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = _verified_run(make_db, pg, tmp_path / "w", pg.schema)
    config = run_dir.parent / ".env"
    args = ["cutover", str(run_dir), "--config", str(config), "--target", pg.dsn]
    # Renames: intent, backup, config, cutover.json: killed entering the fourth.
    _killed(args, run_dir.parent, "rename", 4, tmp_path / "kill.strace")
    assert config.read_text() == f"DATABASE_URL={pg.dsn}\n"
    assert not (run_dir / "cutover.json").exists()
    again = _run(args, run_dir.parent)
    assert again.returncode == 0, again.stderr
    assert "interrupted cutover was found; finished it forwards" in again.stdout
    assert "cutover done" not in again.stdout  # no second switch over the first
    assert len(list(config.parent.glob(".env.lite2pg-backup-*"))) == 1
    assert json.loads((run_dir / "cutover.json").read_text())["state"] == "done"
    assert "config holds PostgreSQL" in _line(_status(run_dir), "cutover")


# --- rollback ---------------------------------------------------------------------------


def test_rollback_killed_at_each_rename_empties_the_tables_and_restores_the_config_or_neither(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    def setup(where: Path) -> Path:
        run_dir = _verified_run(make_db, pg, where, pg.schema)
        cutover(run_dir, pg.target, where / ".env", sample=0)
        return run_dir

    def args(run_dir: Path) -> list[str]:
        return ["rollback", str(run_dir), "--target", pg.dsn]

    def check(run_dir: Path, out: str) -> str:
        config = (run_dir.parent / ".env").read_text()
        rows = _count(pg)
        line = _line(out, "cutover")
        if rows == ROWS:
            assert config == f"DATABASE_URL={pg.dsn}\n", out
            assert "config holds PostgreSQL" in line, out
            return "old"
        assert rows == 0, (rows, out)
        assert config == f"DATABASE_URL={SQLITE_URL}\n", out
        assert "restored by rollback" in line and "config holds SQLite" in line, out
        return "new"

    # fsyncs too: the config's rename and COMMIT are a directory fsync apart.
    table = _sweep(tmp_path, args, setup, "rollback-intent.json", check, RENAMES + ",fsync")
    _print("rollback", table)
    assert {o for _, _, o in table} == {"old", "new"}


# --- publish ----------------------------------------------------------------------------


def test_migrate_killed_at_each_rename_of_publish_leaves_tables_published_or_not_and_says_which(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = _db(make_db)

    def setup(where: Path) -> Path:
        where.mkdir()
        pg.execute("DROP TABLE IF EXISTS notes CASCADE")
        return where / "run"

    def args(run_dir: Path) -> list[str]:
        return ["migrate", str(db), "--target", pg.dsn, "--schema", pg.schema,
                "--run-dir", str(run_dir), "--no-verify"]  # fmt: skip

    def check(run_dir: Path, out: str) -> str:
        rows = _count(pg)
        load = _line(out, "load")
        if rows is None:
            if (run_dir / "publish-intent.json").exists():
                assert "nothing was published" in load, out
            else:  # killed before the intent: the load never reached its publish
                assert "interrupted" in load, out
            return "old"
        assert rows == ROWS, out
        assert "nothing was published" not in load and "interrupted" not in load, out
        return "new"

    # fsyncs too: COMMIT comes after the intent that records the transaction's id.
    table = _sweep(tmp_path, args, setup, "publish-intent.json", check, RENAMES + ",fsync")
    _print("migrate (publish)", table)
    assert {o for _, _, o in table} == {"old", "new"}


# --- online cutover ---------------------------------------------------------------------


def _captured_run(
    make_db: MakeDb, pg: PgSchema, where: Path, schemas: list[str]
) -> tuple[Path, Path]:
    """A source prepared for sync and migrated into a schema of its own (added to
    `schemas` for `_drop_runs`): the source and the run directory."""
    where.mkdir()
    db = _db(make_db)
    capture.prepare(db)
    schemas.append(f"{pg.schema}_{len(schemas)}")
    run_dir = where / "run"
    migrate(db, pg.target, MigrateOptions(schema=schemas[-1], run_dir=run_dir, verify=False))
    return db, run_dir


def _drop_runs(pg: PgSchema, schemas: list[str], runs: list[str]) -> None:
    """The runs' schemas, and their rows in lite2pg's own sync tables."""
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))  # fmt: skip
        found = conn.execute("SELECT to_regclass('lite2pg.sync_state')").fetchone()
        if found and found[0] is not None:
            for name in ("sync_state", "sync_rejected"):
                conn.execute(
                    sql.SQL("DELETE FROM lite2pg.{} WHERE run = ANY(%s)").format(
                        sql.Identifier(name)
                    ),
                    (runs,),
                )


def test_online_cutover_killed_at_each_rename_leaves_config_and_write_block_agreeing(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    schemas: list[str] = []
    dbs: dict[Path, Path] = {}

    def setup(where: Path) -> Path:
        db, run_dir = _captured_run(make_db, pg, where, schemas)
        with closing(sqlite3.connect(db)) as conn, conn:
            conn.execute("UPDATE notes SET body = 'changed' WHERE id = 7")  # a change to drain
        (where / ".env").write_text(f"DATABASE_URL={SQLITE_URL}\n")
        dbs[run_dir] = db
        return run_dir

    def args(run_dir: Path) -> list[str]:
        return ["cutover", str(run_dir), "--config", str(run_dir.parent / ".env"),
                "--target", pg.dsn, "--online", "--no-verify"]  # fmt: skip

    def check(run_dir: Path, out: str) -> str:
        config = (run_dir.parent / ".env").read_text()
        blocked = sqlite_refuses_writes(dbs[run_dir])
        line = _line(out, "cutover")
        sync = _run(["sync", str(run_dir), "--target", pg.dsn], run_dir.parent)
        if config == f"DATABASE_URL={SQLITE_URL}\n":
            assert not blocked, out  # the app writes to SQLite, and sync carries it on
            assert "done" not in line or "failed" in line or "backwards" in line, out
            assert sync.returncode == 0, sync.stderr
            return "old"
        assert config == f"DATABASE_URL={pg.dsn}\n"
        assert blocked, out  # no split: SQLite refuses what the config no longer sends it
        assert "done (online" in line and "SQLite refuses writes" in line, out
        assert "config holds PostgreSQL" in line, out
        assert sync.returncode != 0 and "cut over already" in sync.stderr, sync.stderr
        return "new"

    try:
        table = _sweep(tmp_path, args, setup, "cutover-intent.json", check)
    finally:
        _drop_runs(pg, schemas, [json.loads((r / "run.json").read_text())["id"] for r in dbs])
    _print("cutover --online", table)
    assert {o for _, _, o in table} == {"old", "new"}


# --- sync's position --------------------------------------------------------------------

_SENDTO = re.compile(r"^(\d+)\s+sendto\(")


def test_sync_killed_at_its_postgresql_sends_never_applies_a_change_twice_or_skips_one(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    """Sync's rows and its position are one transaction: killed at any message it sends
    PostgreSQL (COMMIT among them), the next sync ends with PostgreSQL equal to SQLite and
    the position at the last change, each change counted once."""
    schemas: list[str] = []
    runs: list[str] = []

    def setup(where: Path) -> tuple[Path, Path, str]:
        db, run_dir = _captured_run(make_db, pg, where, schemas)
        runs.append(json.loads((run_dir / "run.json").read_text())["id"])
        with closing(sqlite3.connect(db)) as conn, conn:
            conn.execute("UPDATE notes SET body = body || '!' WHERE id % 3 = 0")
            conn.executemany("INSERT INTO notes (body) VALUES (?)", [("new",)] * 7)
            conn.execute("DELETE FROM notes WHERE id % 5 = 0")
        return db, run_dir, schemas[-1]

    def rows(db: Path, schema: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        with closing(sqlite3.connect(db)) as conn:
            want = conn.execute("SELECT id, body FROM notes ORDER BY id").fetchall()
        got = pg.query(f'SELECT id, body FROM "{schema}".notes ORDER BY id')
        return want, got

    def position(run: str) -> tuple[int, int] | None:
        found = pg.query("SELECT applied, changes FROM lite2pg.sync_state WHERE run = %s", (run,))
        return (int(found[0][0]), int(found[0][1])) if found else None

    try:
        db, run_dir, schema = setup(tmp_path / "p0")
        log = tmp_path / "p0.strace"
        args = ["sync", str(run_dir), "--target", pg.dsn]
        done = _run(args, run_dir.parent, log=log, calls="sendto")
        assert done.returncode == 0, done.stderr
        want, got = rows(db, schema)
        assert want == got
        full = position(runs[0])
        text = log.read_text().splitlines()
        main = next(m.group(1) for line in text if (m := _EXEC.match(line)))
        sends = sum(1 for line in text if (m := _SENDTO.match(line)) and m.group(1) == main)
        assert sends >= 4, sends
        # The last sends (the round's writes, its position, COMMIT) and a few before.
        points = sorted(
            {*range(max(1, sends - 5), sends + 1), *range(1, sends, max(1, sends // 4))}
        )
        table = []
        for n in points:
            db, run_dir, schema = setup(tmp_path / f"s{n}")
            args = ["sync", str(run_dir), "--target", pg.dsn]
            _killed(args, run_dir.parent, "sendto", n, tmp_path / f"s{n}.strace")
            killed_at = position(runs[-1])
            outcome = "new" if killed_at == full else "old"
            if outcome == "old":  # nothing of the round is in PostgreSQL
                assert killed_at is None or killed_at[1] == 0, killed_at
            again = _run(args, run_dir.parent)
            assert again.returncode == 0, again.stderr
            want, got = rows(db, schema)
            assert want == got, n
            assert position(runs[-1]) == full, n  # each change applied and counted once
            table.append((f"sendto #{n}", f"of {sends}", outcome))
        _print("sync", table)
    finally:
        _drop_runs(pg, schemas, runs)
