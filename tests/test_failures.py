"""What a migrate that fails or is interrupted leaves behind: it fails before it writes a
file where it can, removes the copies of the data it made when nothing was published, says
what state the target is in, and `status` tells the same story afterwards."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo, sql

from lite2pg.lifecycle import status
from lite2pg.rundir import SNAPSHOT_NAME
from tests._cli import cli, known_error
from tests.conftest import PgSchema

ROWS = 300_000


def _make_db(path: Path, rows: int = 1_000) -> Path:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INT)")
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO items SELECT i, 'item number ' || i || ' ' || hex(randomblob(16)), "
            "i % 97 FROM n",
            (rows,),
        )
        conn.commit()
    return path


def _schemas(dsn: str, name: str) -> list[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname = %s", (name,))
        return [str(r[0]) for r in rows.fetchall()]


def _drop_schema(dsn: str, name: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def _interrupt_at(args: list[str], cwd: Path, line_starts: str) -> tuple[int, str]:
    """Run the CLI; send Ctrl-C to its process group when stderr shows a line starting
    with `line_starts` (a point the run has reached, not a time). Returns (exit code,
    stderr), and fails if the run ended before the signal could land."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lite2pg", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stderr is not None
    seen: list[str] = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith(line_starts):
            os.killpg(proc.pid, signal.SIGINT)
            break
    else:
        proc.stderr.close()
        proc.wait()
        raise AssertionError(f"the run ended before {line_starts!r}:\n{''.join(seen)}")
    rest = proc.stderr.read()
    proc.stderr.close()
    code = proc.wait(timeout=120)
    return code, "".join(seen) + rest


def test_a_target_that_does_not_answer_fails_before_a_file_is_written(
    tmp_path: Path, pg_dsn: str
) -> None:
    db = _make_db(tmp_path / "app.db")
    wrong = conninfo.make_conninfo(pg_dsn, dbname="lite2pg_no_such_database")
    work = tmp_path / "work"
    work.mkdir()
    line = known_error(cli("migrate", str(db), "--target", wrong, cwd=work))
    assert "lite2pg_no_such_database" in line and "does not exist" in line
    assert not (work / ".lite2pg").exists()  # no run directory, no snapshot copy


def test_a_wrong_source_path_starts_no_embedded_server(tmp_path: Path) -> None:
    line = known_error(cli("migrate", "no-such.db", cwd=tmp_path))
    assert "no such file" in line
    assert not (tmp_path / ".lite2pg").exists()


def test_a_table_in_the_way_is_refused_before_the_snapshot(tmp_path: Path, pg: PgSchema) -> None:
    db = _make_db(tmp_path / "app.db")
    pg.execute("CREATE TABLE items (id int)")  # in the way: the run refuses to replace it
    run_dir = tmp_path / "run"
    args = ["migrate", str(db), "--target", pg.dsn, "--schema", pg.schema]
    line = known_error(cli(*args, "--run-dir", str(run_dir), cwd=tmp_path))
    assert "items" in line and "--drop" in line
    assert not run_dir.exists()  # refused before a file was written
    assert pg.query("SELECT count(*) FROM items") == [(0,)]  # left as it was


def test_a_run_that_fails_before_publishing_removes_its_copies(
    tmp_path: Path, pg: PgSchema
) -> None:
    # A plan a run refuses once it has read the snapshot: it drops the flag that marks
    # accounts deactivated while their passwords go on.
    db = tmp_path / "accounts.db"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, password TEXT, active INT)")
        conn.executemany("INSERT INTO accounts VALUES (?, ?, ?)", [(1, "x", 1), (2, "y", 0)])
        conn.commit()
    plan = tmp_path / "plan.toml"
    plan.write_text('[tables.accounts]\ndrop = ["active"]\n')
    run_dir = tmp_path / "run"
    args = ["migrate", str(db), "--target", pg.dsn, "--schema", pg.schema, "--plan", str(plan)]
    line = known_error(cli(*args, "--run-dir", str(run_dir), cwd=tmp_path))
    assert "active" in line and "may-log-in" in line
    assert not (run_dir / SNAPSHOT_NAME).exists()
    assert not (run_dir / "export").exists() and not (run_dir / "transformed").exists()
    steps = dict(status(run_dir).steps)
    assert steps["snapshot"].startswith("removed")
    assert steps["load"].startswith("failed: ") and "active" in steps["load"]
    assert pg.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
    ) == [(0,)]

    kept = tmp_path / "kept"
    known_error(cli(*args, "--run-dir", str(kept), "--keep-failed", cwd=tmp_path))
    assert (kept / SNAPSHOT_NAME).exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_forkserver_ignores_ctrl_c_while_it_is_still_importing() -> None:
    # The run starts the server early and loads while it imports lite2pg; a Ctrl-C then
    # must reach the run alone, not kill the server with a traceback of its own.
    code = (
        "import multiprocessing.forkserver as fs, signal\n"
        "from lite2pg import workers\n"
        "workers.start_early()\n"
        "pid = fs._forkserver._forkserver_pid\n"
        "status = open(f'/proc/{pid}/status').read()\n"
        "ignored = int(status.split('SigIgn:')[1].split()[0], 16)\n"
        "print(bool(ignored & (1 << (signal.SIGINT - 1))))\n"
        "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n"
        "print(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    # The server ignores it; this process has its own handler back, and nothing blocked.
    assert out == ["True", "True", "False"]


def test_ctrl_c_during_the_load_publishes_nothing_and_exits_130(
    tmp_path: Path, pg_dsn: str
) -> None:
    db = _make_db(tmp_path / "big.db", ROWS)
    schema = f"t_int_{os.getpid()}"
    _drop_schema(pg_dsn, schema)
    run_dir = tmp_path / "run"
    try:
        code, err = _interrupt_at(
            ["migrate", str(db), "--target", pg_dsn, "--schema", schema,
             "--run-dir", str(run_dir)],
            tmp_path,
            "loading items",
        )  # fmt: skip
        assert code == 130, err
        assert "Traceback" not in err and "Aborted" not in err, err
        assert err.splitlines()[-1].startswith(
            "lite2pg: interrupted: nothing was published; PostgreSQL is as it was"
        ), err
        assert _schemas(pg_dsn, schema) == []  # the schema the run made is gone again
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            staging = conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (f"%{schema}%",)
            ).fetchall()
        assert staging == []
        journal = json.loads((run_dir / "journal.json").read_text())
        assert journal["stages"]["load"]["state"] == "failed"
        assert "interrupted" in journal["stages"]["load"]["reason"]
        assert dict(status(run_dir).steps)["load"].startswith("failed: interrupted")
        assert not (run_dir / SNAPSHOT_NAME).exists()
    finally:
        _drop_schema(pg_dsn, schema)


def test_ctrl_c_during_verify_says_the_load_is_committed(tmp_path: Path, pg: PgSchema) -> None:
    db = _make_db(tmp_path / "big.db", ROWS)
    run_dir = tmp_path / "run"
    code, err = _interrupt_at(
        ["migrate", str(db), "--target", pg.dsn, "--schema", pg.schema, "--run-dir",
         str(run_dir)],
        tmp_path,
        "verify ...",
    )  # fmt: skip
    assert code == 130, err
    assert "Traceback" not in err, err
    last = err.splitlines()[-1]
    assert last.startswith(
        f"lite2pg: interrupted: the load is committed and published ({ROWS} rows); "
        "verify did not finish"
    ), err
    assert f"lite2pg verify {run_dir}" in last
    assert pg.query("SELECT count(*) FROM items") == [(ROWS,)]
    steps = dict(status(run_dir).steps)
    assert steps["load"].startswith("OK") and steps["verify"] == "not run"
