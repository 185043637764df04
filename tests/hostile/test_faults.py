"""Faults (issue 7): the server restarts mid-COPY, the connection drops, a timeout hits, and
lite2pg itself is killed at seeded moments of every stage.

Every case checks the same promise: a run that a fault stopped says so in one line with a
hint and exits non-zero, the target holds nothing of it (or the whole earlier run), and
running again the way the hint says completes and verifies with exact counts.

Server restarts and dropped connections happen on a private cluster started for this
module (the shared server other tests use is never restarted); the other cases use the
test server of `tests/conftest.py`.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from lite2pg import embedded

from ..conftest import PgSchema, staging_schema
from .conftest import FaultInjected, RowsLost

LITE2PG = [sys.executable, "-m", "lite2pg"]


# --- a private PostgreSQL cluster that this module may restart ---------------------------


def _bindir() -> Path:
    """initdb and pg_ctl: the system's PostgreSQL, else the embedded one's."""
    system = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    if system:
        return system[0].parent
    return embedded.shipped_majors()[embedded.default_major()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """A PostgreSQL server of our own on 127.0.0.1, started with initdb and pg_ctl."""

    bindir: Path
    root: Path
    port: int
    user: str | None  # the OS user that runs it when we are root (postgres refuses root)

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, *args: str, timeout: float = 60) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=timeout)

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=50"
        )
        self.run(
            "pg_ctl", "-D", str(self.datadir), "-l", str(self.root / "log"), "-w", "-o",
            options, "start",
        )  # fmt: skip

    def restart(self, mode: str = "immediate") -> None:
        self.run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop")
        self.start()

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self.run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop")


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "pgserver"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    pytest.skip("running as root, and no postgres OS user to run a private cluster")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    bindir = _bindir()
    if not (bindir / "initdb").exists():
        pytest.skip(f"no initdb in {bindir}")
    user = _server_user()
    # Under /tmp, not pytest's tmp_path: the server's OS user must be able to reach it.
    root = Path(tempfile.mkdtemp(prefix="lite2pg-faults-"))
    if user:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    c = Cluster(bindir, root, _free_port(), user)
    try:
        c.run(
            "initdb", "-D", str(c.datadir), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync",
        )  # fmt: skip
        c.start()
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def cpg(cluster: Cluster) -> Iterator[PgSchema]:
    """A fresh schema name on the private cluster (created by the run under test)."""
    name = f"f_{uuid.uuid4().hex[:10]}"
    yield PgSchema(cluster.dsn, name)
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        # Our own server: sessions a failed case left behind must not block the cleanup.
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


# --- a TCP proxy on loopback that can cut every connection through it --------------------


@dataclass
class Proxy:
    """Forwards 127.0.0.1:<port> to `upstream`; `cut()` drops every open connection."""

    upstream: tuple[str, int]
    listener: socket.socket = field(init=False)
    open: list[socket.socket] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    connected: threading.Event = field(default_factory=threading.Event)  # a client came

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(self.upstream)
            with self.lock:
                self.open += [client, server]
            self.connected.set()
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := a.recv(65536):
                b.sendall(data)
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        with self.lock:
            for s in (a, b):
                if s in self.open:
                    self.open.remove(s)

    def cut(self) -> int:
        """Drop every open connection: both ends see it closed, mid-message."""
        with self.lock:
            dropped, self.open = self.open, []
        for s in dropped:
            # shutdown, not close: close() neither wakes a recv() blocked in another thread
            # nor tells the peer while that recv() still holds the socket.
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        return len(dropped) // 2

    def close(self) -> None:
        self.listener.close()
        self.cut()


# --- helpers -----------------------------------------------------------------------------


def _quoted_params(dsn: str, **params: str) -> str:
    """The libpq URI with query parameters added (spaces as %20: libpq reads no +)."""
    parts = urlsplit(dsn)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def _orders_db(path: Path, orders: int, customers: int = 1_000) -> dict[str, int]:
    """Two tables with a foreign key, made fast in SQLite itself; the row counts."""
    conn = sqlite3.connect(path)
    conn.executescript(
        f"""
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
        CREATE TABLE orders (
            id INTEGER PRIMARY KEY,
            customer_id INTEGER NOT NULL REFERENCES customers(id),
            amount REAL,
            note TEXT
        );
        CREATE INDEX orders_customer ON orders(customer_id);
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {customers})
        INSERT INTO customers SELECT i, 'customer ' || i FROM n;
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {orders})
        INSERT INTO orders
        SELECT i, 1 + i % {customers}, i * 0.25, printf('order %d, "quoted", line\n two', i)
        FROM n;
        """
    )
    conn.commit()
    conn.close()
    return {"customers": customers, "orders": orders}


def _counts(dsn: str, schema: str) -> dict[str, int]:
    """Rows per table in `schema`."""
    out: dict[str, int] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (schema,)
        ).fetchall()
        for (name,) in tables:
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(name)
                )
            ).fetchone()
            assert row is not None
            out[str(name)] = int(row[0])
    return out


def _staging_left(dsn: str, schema: str) -> bool:
    """The staging schema of `schema` is on the server (by its name written out in
    tests/conftest.py; a kill at a COPY must leave it, which the kill test checks)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (staging_schema(schema),)
        )
        return bool(row.fetchone() == (1,))


def _lost(expected: dict[str, int], found: dict[str, int]) -> int:
    return sum(max(n - found.get(t, 0), 0) for t, n in expected.items())


def _start(*args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    """lite2pg in a session of its own, so that its worker processes can be killed too."""
    return subprocess.Popen(
        [*LITE2PG, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=cwd or tempfile.gettempdir(),  # never the checkout: every path given is absolute
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Wait for a run; one that hangs fails the case (and is killed with its workers)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"lite2pg hung for {timeout}s: {err[-2000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _lite2pg(
    *args: str, timeout: float = 300, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return _finish(_start(*args, cwd=cwd), timeout)


def _assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """A failed command: its exit code and exactly one line on stderr, with a hint."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("lite2pg: error: "), lines[0]
    assert "(hint: " in lines[0], lines[0]
    return lines[0]


def _wait_for_copy(
    dsn: str, proc: subprocess.Popen[str], *, app: str | None = None, timeout: float = 60
) -> int:
    """Poll until a COPY into the target (of sessions named `app`) has rows in."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT max(c.tuples_processed) FROM pg_stat_progress_copy c "
                "JOIN pg_stat_activity a ON a.pid = c.pid "
                "WHERE c.command = 'COPY FROM' AND (%s::text IS NULL OR a.application_name = %s)",
                (app, app),
            ).fetchone()
            if row and row[0]:
                return int(row[0])
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"the run ended before any COPY was seen: {out}{err}")
            time.sleep(0.005)
    pytest.fail("no COPY seen in time")


def _wait_backends_gone(dsn: str, app: str, timeout: float = 20) -> None:
    """The server noticed that the killed run's sessions are gone (its locks with them)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)
            ).fetchone()
            if row and row[0] == 0:
                return
            time.sleep(0.02)
    pytest.fail(f"sessions of a killed run still open after {timeout}s")


def _verified(run_dir: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((run_dir / "report.json").read_text())
    assert report["verify"] is not None and report["verify"]["ok"], report["verify"]
    return report


# --- 1. PostgreSQL restarted in the middle of a COPY ------------------------------------


@pytest.mark.parametrize(
    ("command", "mode"),
    [("migrate", "immediate"), ("load", "fast")],
    ids=["migrate-parallel-immediate", "load-fast"],
)
def test_server_restarted_mid_copy_fails_in_one_line_then_the_same_command_finishes(
    tmp_path: Path,
    cluster: Cluster,
    cpg: PgSchema,
    rows_lost: RowsLost,
    fault_injected: FaultInjected,
    command: str,
    mode: str,
) -> None:
    """`pg_ctl restart` while rows stream in: `-m immediate` (a crash, then recovery) under
    migrate's parallel workers; `-m fast` under load's single COPY from the CSVs."""
    db = tmp_path / "big.db"
    # migrate loads tables side by side in worker processes from 200,000 rows up.
    expected = _orders_db(db, orders=210_000 if command == "migrate" else 100_000)
    run_dir = tmp_path / "run"
    if command == "migrate":
        args = [
            "migrate", str(db), "--target", cpg.dsn, "--schema", cpg.schema, "--run-dir",
            str(run_dir), "--no-keep-artifacts", "-q",
        ]  # fmt: skip
    else:
        exported = _lite2pg("export", str(db), "--run-dir", str(run_dir), "--schema", cpg.schema)
        assert exported.returncode == 0, exported.stderr
        assert _lite2pg("transform", str(run_dir)).returncode == 0
        args = ["load", str(run_dir), "--target", cpg.dsn]

    proc = _start(*args)
    _wait_for_copy(cluster.dsn, proc)
    cluster.restart(mode)
    failed = _finish(proc)

    fault_injected(failed.returncode != 0)  # the restart hit the run, not the time after it
    line = _assert_one_line_error(failed)
    # Other workers may be building a small table's keys, or connecting, at that moment.
    assert "lost the connection while " in line or "cannot connect" in line, line
    if "lost the connection" in line:
        assert "run the same command again" in line, line
    assert _counts(cpg.dsn, cpg.schema) == {}  # the target is as it was: nothing

    again = _lite2pg(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    found = _counts(cpg.dsn, cpg.schema)
    rows_lost(_lost(expected, found))
    assert found == expected
    _verified(run_dir)
    assert not _staging_left(cpg.dsn, cpg.schema)


# --- 2. the connection dropped: a proxy on loopback cuts it ------------------------------


@pytest.fixture
def proxy(cluster: Cluster) -> Iterator[Proxy]:
    p = Proxy(("127.0.0.1", cluster.port))
    yield p
    p.close()


def test_connection_cut_mid_copy_fails_in_one_line_then_a_run_through_a_working_path_finishes(
    tmp_path: Path,
    cluster: Cluster,
    cpg: PgSchema,
    proxy: Proxy,
    rows_lost: RowsLost,
    fault_injected: FaultInjected,
) -> None:
    db = tmp_path / "big.db"
    expected = _orders_db(db, orders=250_000)
    through = f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres"
    args = ["migrate", str(db), "--schema", cpg.schema, "--no-keep-artifacts", "-q"]

    proc = _start(*args, "--target", through, "--run-dir", str(tmp_path / "cut"))
    _wait_for_copy(cluster.dsn, proc)
    cut = proxy.cut()
    done = _finish(proc)
    fault_injected(cut > 0 and done.returncode != 0)
    assert cut > 0
    line = _assert_one_line_error(done)
    # Other workers may be building a small table's keys, or connecting, at that moment.
    assert "lost the connection while " in line or "cannot connect" in line, line
    assert _counts(cluster.dsn, cpg.schema) == {}

    run_dir = tmp_path / "again"
    again = _lite2pg(*args, "--target", through, "--run-dir", str(run_dir))
    assert again.returncode == 0, again.stdout + again.stderr
    found = _counts(cluster.dsn, cpg.schema)
    rows_lost(_lost(expected, found))
    assert found == expected
    _verified(run_dir)
    assert not _staging_left(cluster.dsn, cpg.schema)


# Where a cut lands: the SQL a session of the run last sent, its transaction still open
# (pg_stat_activity, seen on the cluster itself, not through the proxy).
CUT_POINTS = {
    "copying": "SELECT count(*) FROM pg_stat_progress_copy c JOIN pg_stat_activity a USING (pid)"
    " WHERE a.application_name = %s AND c.tuples_processed > 0",
    "building-keys": "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
    " AND xact_start IS NOT NULL AND query ILIKE '%%ADD CONSTRAINT%%PRIMARY KEY%%'",
    "adding-foreign-keys": "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
    " AND xact_start IS NOT NULL AND query ILIKE '%%FOREIGN KEY%%'",
    "publishing": "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
    " AND xact_start IS NOT NULL AND query ILIKE '%%SET SCHEMA%%'",
}


def _cut_at(proxy: Proxy, dsn: str, app: str, args: list[str], point: str) -> tuple[bool, Any]:
    """Run lite2pg through the proxy; when the point is seen, freeze lite2pg (SIGSTOP),
    check the point again, cut every connection, and let lite2pg go on. Whether the cut
    landed at the point, and the finished command."""
    proc = _start(*args)
    landed = False
    with psycopg.connect(dsn, autocommit=True) as conn:
        while proc.poll() is None:
            if conn.execute(CUT_POINTS[point], (app,)).fetchone() != (0,):
                os.killpg(proc.pid, signal.SIGSTOP)
                landed = conn.execute(CUT_POINTS[point], (app,)).fetchone() != (0,)
                if landed:
                    landed = proxy.cut() > 0
                os.killpg(proc.pid, signal.SIGCONT)
                break
    return landed, _finish(proc)


@pytest.mark.parametrize("point", list(CUT_POINTS))
def test_connection_cut_at_each_phase_leaves_all_or_nothing_and_the_run_again_finishes(
    tmp_path: Path,
    cluster: Cluster,
    cpg: PgSchema,
    proxy: Proxy,
    rows_lost: RowsLost,
    fault_injected: FaultInjected,
    point: str,
) -> None:
    """Cuts land in each phase of a load: COPY, keys, foreign keys, publish."""
    db = tmp_path / "small.db"
    expected = _orders_db(db, orders=20_000, customers=500)
    app = f"lite2pg-cut-{uuid.uuid4().hex[:8]}"
    through = f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres?application_name={app}"
    run_dir = tmp_path / "run"
    args = [
        "migrate", str(db), "--target", through, "--schema", cpg.schema, "--drop",
        "--no-keep-artifacts", "-q", "--no-verify", "--run-dir", str(run_dir),
    ]  # fmt: skip
    first = _lite2pg(*args)  # a whole run first: a cut one must leave it as it was
    assert first.returncode == 0, first.stdout + first.stderr
    for _attempt in range(3):  # a short phase may end before lite2pg is frozen
        landed, done = _cut_at(proxy, cluster.dsn, app, args, point)
        if landed:
            break
        assert done.returncode == 0, done.stdout + done.stderr
    fault_injected(landed)
    assert landed, f"no cut landed at {point} in three runs"
    _assert_one_line_error(done)
    # The earlier run whole: never a mix, never a part.
    assert _counts(cluster.dsn, cpg.schema) == expected
    _wait_backends_gone(cluster.dsn, app)

    again = _lite2pg(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    found = _counts(cluster.dsn, cpg.schema)
    rows_lost(_lost(expected, found))
    assert found == expected
    assert not _staging_left(cluster.dsn, cpg.schema)
    proof = _lite2pg("verify", str(run_dir), "--target", cluster.dsn)
    assert proof.returncode == 0, proof.stdout + proof.stderr


def test_connection_cut_during_verify_fails_in_one_line_then_verify_again_passes(
    tmp_path: Path, cluster: Cluster, cpg: PgSchema, proxy: Proxy, fault_injected: FaultInjected
) -> None:
    db = tmp_path / "db.sqlite"
    _orders_db(db, orders=60_000, customers=500)
    run_dir = tmp_path / "run"
    loaded = _lite2pg(
        "migrate", str(db), "--target", cluster.dsn, "--schema", cpg.schema, "--no-verify",
        "--no-keep-artifacts", "-q", "--run-dir", str(run_dir),
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    through = f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres"
    proc = _start("verify", str(run_dir), "--target", through)
    _wait_for_verify(cluster.dsn, proc)
    proxy.cut()
    done = _finish(proc)

    fault_injected(done.returncode != 0)
    assert done.returncode != 0, "the cut came after verify ended"
    assert "lost the connection while verifying" in _assert_one_line_error(done)
    again = _lite2pg("verify", str(run_dir), "--target", through)
    assert again.returncode == 0, again.stdout + again.stderr


def _wait_for_verify(dsn: str, proc: subprocess.Popen[str]) -> None:
    """Poll until verify has shared its database snapshot (it reads on it from then on)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            seen = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_export_snapshot()'"
            ).fetchone()
            if seen and seen[0]:
                return


def test_connection_cut_in_migrates_own_verify_exits_1_in_one_line_and_verify_finishes_it(
    tmp_path: Path,
    cluster: Cluster,
    cpg: PgSchema,
    proxy: Proxy,
    rows_lost: RowsLost,
    fault_injected: FaultInjected,
) -> None:
    """The load is committed when verify starts: the error says so (exit 1, not 2) and
    names the command that finishes the proof."""
    db = tmp_path / "db.sqlite"
    expected = _orders_db(db, orders=60_000, customers=500)
    run_dir = tmp_path / "run"
    through = f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres"
    proc = _start(
        "migrate", str(db), "--target", through, "--schema", cpg.schema,
        "--no-keep-artifacts", "-q", "--run-dir", str(run_dir),
    )  # fmt: skip
    _wait_for_verify(cluster.dsn, proc)
    proxy.cut()
    done = _finish(proc)

    fault_injected(done.returncode == 1)
    line = _assert_one_line_error(done, code=1)
    assert "lost the connection while verifying" in line, line
    assert f"run lite2pg verify {run_dir}" in line, line
    found = _counts(cluster.dsn, cpg.schema)
    rows_lost(_lost(expected, found))
    assert found == expected
    again = _lite2pg("verify", str(run_dir), "--target", cluster.dsn)
    assert again.returncode == 0, again.stdout + again.stderr


# --- 3. timeouts: a statement timeout in the DSN; a lock another session holds -----------


def test_a_statement_timeout_in_the_target_dsn_does_not_cut_a_long_copy(
    tmp_path: Path, pg: PgSchema, rows_lost: RowsLost, fault_injected: FaultInjected
) -> None:
    """lite2pg sets statement_timeout = 0 in its sessions: a COPY of a big table takes as
    long as it takes, whatever the DSN, role or database default says."""
    db = tmp_path / "big.db"
    expected = _orders_db(db, orders=100_000)
    # 1 ms: no COPY of 100,000 rows (nor the keys built after it) is done that fast.
    target = _quoted_params(pg.dsn, options="-c statement_timeout=1")
    with psycopg.connect(target) as conn, pytest.raises(psycopg.errors.QueryCanceled):
        conn.execute("SELECT pg_sleep(0.5)")  # the setting works: it would cut the COPY
    fault_injected(True)
    run_dir = tmp_path / "run"
    done = _lite2pg(
        "migrate", str(db), "--target", target, "--schema", pg.schema, "--run-dir",
        str(run_dir), "--no-keep-artifacts", "-q",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    found = _counts(pg.dsn, pg.schema)
    rows_lost(_lost(expected, found))
    assert found == expected
    _verified(run_dir)


@pytest.mark.parametrize("bound", ["dsn", "env"])
@pytest.mark.parametrize("mode", ["drop", "data-only"])
def test_a_lock_held_by_another_session_times_out_in_one_line_and_leaves_the_target_as_it_was(
    tmp_path: Path,
    pg: PgSchema,
    rows_lost: RowsLost,
    fault_injected: FaultInjected,
    mode: str,
    bound: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The wait is bounded by the DSN's own lock_timeout, or else by LITE2PG_LOCK_TIMEOUT
    # (60 s by default), never unbounded.
    db = tmp_path / "db.sqlite"
    expected = _orders_db(db, orders=5_000, customers=100)
    base = ["migrate", str(db), "--schema", pg.schema, "--no-keep-artifacts", "-q"]
    first = _lite2pg(*base, "--target", pg.dsn, "--run-dir", str(tmp_path / "first"))
    assert first.returncode == 0, first.stderr
    with psycopg.connect(pg.dsn) as conn:
        conn.execute(
            sql.SQL("DELETE FROM {}.orders WHERE id > 4000").format(sql.Identifier(pg.schema))
        )
    before = _counts(pg.dsn, pg.schema)
    flags = ["--drop"] if mode == "drop" else ["--data-only", "--truncate"]
    if bound == "dsn":
        target = _quoted_params(pg.dsn, options="-c lock_timeout=300")
    else:
        target = pg.dsn
        monkeypatch.setenv("LITE2PG_LOCK_TIMEOUT", "0.5")
    run_dir = tmp_path / "run"
    args = [*base, *flags, "--target", target, "--run-dir", str(run_dir)]

    app = psycopg.connect(pg.dsn)  # an app session reading the table, transaction open
    try:
        app.execute(sql.SQL("SELECT count(*) FROM {}.orders").format(sql.Identifier(pg.schema)))
        failed = _lite2pg(*args)
    finally:
        app.close()

    line = _assert_one_line_error(failed)
    assert "lock" in line, line
    fault_injected(True)  # the app's lock stopped the run
    assert "lost the connection" not in line, line
    assert _counts(pg.dsn, pg.schema) == before
    assert not _staging_left(pg.dsn, pg.schema)  # the failed run dropped its own

    again = _lite2pg(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    found = _counts(pg.dsn, pg.schema)
    rows_lost(_lost(expected, found))
    assert found == expected
    _verified(run_dir)


@pytest.mark.parametrize("how", ["cancel", "terminate"])
def test_a_dba_cancelling_the_copy_fails_in_one_line_then_the_same_command_finishes(
    tmp_path: Path, pg: PgSchema, rows_lost: RowsLost, fault_injected: FaultInjected, how: str
) -> None:
    db = tmp_path / "big.db"
    expected = _orders_db(db, orders=100_000)
    app = f"lite2pg-fault-{uuid.uuid4().hex[:8]}"
    run_dir = tmp_path / "run"
    args = [
        "migrate", str(db), "--target", _quoted_params(pg.dsn, application_name=app),
        "--schema", pg.schema, "--run-dir", str(run_dir), "--no-keep-artifacts", "-q",
    ]  # fmt: skip
    proc = _start(*args)
    # As a DBA would: the moment a COPY of the run has rows in, cancel or end its session
    # (seen and hit in one statement, so the COPY cannot finish in between).
    deadline = time.monotonic() + 60
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        while True:
            hit = conn.execute(
                f"SELECT pg_{how}_backend(a.pid) FROM pg_stat_activity a "
                "JOIN pg_stat_progress_copy c ON c.pid = a.pid "
                "WHERE a.application_name = %s AND c.command = 'COPY FROM' "
                "AND c.tuples_processed > 0",
                (app,),
            ).fetchall()
            if any(r[0] for r in hit):
                fault_injected(True)  # a COPY of the run, rows in, was cancelled or ended
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                out, err = proc.communicate()
                pytest.fail(f"no COPY of the run was caught while it ran: {out}{err}")
            time.sleep(0.002)
    line = _assert_one_line_error(_finish(proc))
    assert ("cancel" in line) if how == "cancel" else ("connection" in line), line
    assert _counts(pg.dsn, pg.schema) == {}
    _wait_backends_gone(pg.dsn, app)

    again = _lite2pg(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    found = _counts(pg.dsn, pg.schema)
    rows_lost(_lost(expected, found))
    assert found == expected
    _verified(run_dir)


# --- 4. lite2pg itself killed (SIGKILL, workers too) at points of every stage ----------
#
# Each point is a moment defined by what lite2pg has done, read from outside it: its
# journal, the files in its run directory, the server's COPY progress and sessions. The
# test polls for it, freezes lite2pg and its workers (SIGSTOP), checks again that the
# point holds (so the kill lands exactly there, not after lite2pg moved on), then SIGKILLs.


@dataclass
class Seen:
    """What a running lite2pg has done, as seen from outside."""

    conn: psycopg.Connection[Any]
    cwd: Path
    app: str
    schema: str
    run: Path | None  # the run directory; None: the new one under cwd/.lite2pg/runs
    before: set[Path] = field(default_factory=set)

    def run_dir(self) -> Path | None:
        if self.run is not None:
            return self.run
        runs = self.cwd / ".lite2pg" / "runs"
        new = sorted(set(runs.iterdir()) - self.before) if runs.is_dir() else []
        return new[-1] if new else None

    def stage(self, name: str, sub: str = "") -> str | None:
        """The journal's state of a stage (of the newest reload/ run with sub="reload")."""
        run = self.run_dir()
        if run is not None and sub:
            nested = sorted((run / sub).iterdir()) if (run / sub).is_dir() else []
            run = nested[-1] if nested else None
        if run is None:
            return None
        try:
            stages = json.loads((run / "journal.json").read_text())["stages"]
        except (OSError, ValueError, KeyError):
            return None
        state = stages.get(name, {}).get("state")
        return None if state is None else str(state)

    def writing(self, folder: str) -> bool:
        """A file of `folder` is being written (its temporary sibling exists)."""
        run = self.run_dir()
        return run is not None and any((run / folder).glob(".*.tmp"))

    def has(self, name: str) -> bool:
        run = self.run_dir()
        return run is not None and (run / name).exists()

    def verify_pending(self) -> bool:
        """report.json is written and has no verify result yet."""
        run = self.run_dir()
        try:
            report = json.loads((run / "report.json").read_text()) if run else None
        except (OSError, ValueError):
            return False
        return report is not None and report.get("verify") is None

    def _count(self, query: str, *params: object) -> int:
        """count(*) of `query`, whose first parameter is the run's application_name."""
        row = self.conn.execute(query, (self.app, *params)).fetchone()
        return int(row[0]) if row else 0

    def copying(self) -> bool:
        """A COPY of the run has rows in, on the server."""
        return (
            self._count(
                "SELECT count(*) FROM pg_stat_progress_copy c JOIN pg_stat_activity a USING (pid) "
                "WHERE a.application_name = %s AND c.tuples_processed > 0"
            )
            > 0
        )

    def sessions(self, state: str | None = None) -> int:
        return self._count(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
            "AND (%s::text IS NULL OR state = %s)",
            state,
            state,
        )

    def exported_snapshot(self) -> bool:
        return (
            self._count(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                "AND query = 'SELECT pg_export_snapshot()' AND xact_start IS NOT NULL"
            )
            > 0
        )

    def counts(self) -> dict[str, int]:
        return _counts(self.conn.info.dsn, self.schema)


Point = Callable[[Seen], bool]

# stage -> point -> the moment, as lite2pg's own records and the server show it.
KILL_POINTS: dict[str, dict[str, Point]] = {
    "migrate-streaming": {
        "snapshot-taken": lambda s: s.has("source.snapshot.db") and s.stage("load") == "running",
        "copying": lambda s: s.stage("load") == "running" and s.copying(),
        "verifying": lambda s: s.stage("load") == "done" and s.verify_pending(),
    },
    "migrate-artifacts": {
        "exporting": lambda s: s.stage("export") == "running" and s.writing("export"),
        "transforming": lambda s: s.stage("transform") == "running",
        "copying": lambda s: s.stage("load") == "running" and s.copying(),
    },
    "export": {
        "started": lambda s: s.stage("export") == "running",
        "writing-csv": lambda s: s.stage("export") == "running" and s.writing("export"),
    },
    "transform": {
        "started": lambda s: s.stage("transform") == "running",
        "writing": lambda s: s.stage("transform") == "running" and s.writing("transformed"),
    },
    "load": {
        "started": lambda s: s.stage("load") == "running",
        "copying": lambda s: s.stage("load") == "running" and s.copying(),
    },
    "verify": {
        "connected": lambda s: s.sessions() > 0 and s.verify_pending(),
        # verify reads on the snapshot it exported, in that session, until it is done
        "reading": lambda s: s.exported_snapshot() and s.verify_pending(),
    },
    "rollback-reload": {
        "emptied": lambda s: set(s.counts().values()) == {0},
        "reloading": lambda s: s.stage("load", "reload") == "running",
        "reload-copying": lambda s: s.stage("load", "reload") == "running" and s.copying(),
    },
}
CASES = [(stage, point) for stage, points in KILL_POINTS.items() for point in points]


def _kill_when(args: list[str], seen: Seen, point: Point) -> bool:
    """Run lite2pg; when `point` holds, freeze it and its workers, check the point again and
    SIGKILL them all. True if the kill landed at the point; False if lite2pg had moved on in
    between (it is killed all the same), or ended before the point was seen."""
    if seen.run is None:
        runs = seen.cwd / ".lite2pg" / "runs"
        seen.before = set(runs.iterdir()) if runs.is_dir() else set()
    proc = _start(*args, cwd=seen.cwd)
    deadline = time.monotonic() + 120
    try:
        while not point(seen):
            if proc.poll() is not None:
                return False  # it ended first (a short point on a fast machine)
            if time.monotonic() > deadline:
                pytest.fail("lite2pg ran for 120 s without reaching the point")
        os.killpg(proc.pid, signal.SIGSTOP)
        landed = point(seen)  # nothing of lite2pg moves now: this is where it dies
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    return landed


def _manifest_rows(run_dir: Path, folder: str) -> dict[str, int]:
    """Rows of each CSV in `folder` by the manifest, after checking every file's SHA-256."""
    from lite2pg.artifacts import read_manifest, verify_file

    manifest = read_manifest(run_dir)
    for name in manifest.files:
        verify_file(run_dir, name, manifest=manifest)
    return {
        Path(name).stem: f.rows
        for name, f in manifest.files.items()
        if name.startswith(folder + "/")
    }


@pytest.mark.parametrize(("stage", "point"), CASES, ids=[f"{s}:{p}" for s, p in CASES])
def test_lite2pg_killed_at_a_point_of_its_work_then_the_command_again_finishes_with_exact_counts(
    tmp_path: Path,
    pg: PgSchema,
    rows_lost: RowsLost,
    fault_injected: FaultInjected,
    stage: str,
    point: str,
) -> None:
    from lite2pg.demo import make_legacy_helpdesk

    db = tmp_path / "clean.db"
    made = make_legacy_helpdesk(db, users=100, tickets=1_000, audit_logs=3_000, messy=False)
    expected = {"users": made.users, "tickets": made.tickets, "audit_logs": made.audit_logs}
    empty = dict.fromkeys(expected, 0)
    app = f"lite2pg-kill-{uuid.uuid4().hex[:8]}"
    target = _quoted_params(pg.dsn, application_name=app)
    run = tmp_path / "run"
    to = ["--target", target]
    streaming = ["migrate", str(db), *to, "--schema", pg.schema, "--no-keep-artifacts", "-q"]

    def ok(*args: str) -> None:
        done = _lite2pg(*args, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr

    # What is run and killed, what the target may hold after the kill, and the run dir.
    in_run: Path | None = run
    if stage == "migrate-streaming":
        cmd = [*streaming, "--drop"]
        ok(*cmd)  # a whole run first: a killed one must leave it as it was
        allowed, in_run = [expected], None
    elif stage == "migrate-artifacts":
        cmd = ["migrate", str(db), *to, "--schema", pg.schema, "--drop", "--keep-artifacts", "-q"]
        allowed, in_run = [{}], None
    elif stage == "export":
        cmd = ["export", str(db), "--run-dir", str(run), "--schema", pg.schema]
        allowed = [{}]
    elif stage == "transform":
        ok("export", str(db), "--run-dir", str(run), "--schema", pg.schema)
        cmd = ["transform", str(run)]
        allowed = [{}]
    elif stage == "load":
        ok("export", str(db), "--run-dir", str(run), "--schema", pg.schema)
        ok("transform", str(run))
        cmd = ["load", str(run), *to, "--drop"]
        allowed = [{}]
    elif stage == "verify":
        ok(*streaming, "--run-dir", str(run), "--no-verify")
        cmd = ["verify", str(run), *to]
        allowed = [expected]
    else:
        ok(*streaming, "--run-dir", str(run))
        cmd = ["rollback", str(run), *to, "--reload"]
        allowed = [empty, expected]  # emptied (committed), or emptied and loaded again

    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        seen = Seen(conn, tmp_path, app, pg.schema, in_run)
        for _attempt in range(3):  # lite2pg may move past a short point before it freezes
            if landed := _kill_when(cmd, seen, KILL_POINTS[stage][point]):
                break
            _wait_backends_gone(pg.dsn, app)
            ok(*cmd)
            if stage != "rollback-reload":  # a kill from here on must leave this whole run
                allowed = [_counts(pg.dsn, pg.schema)]
    fault_injected(landed)
    assert landed, f"lite2pg moved past {point} before it could be frozen, three times"
    _wait_backends_gone(pg.dsn, app)
    assert _counts(pg.dsn, pg.schema) in allowed
    if point == "copying":  # its staging schema is left behind, as a kill leaves it
        assert _staging_left(pg.dsn, pg.schema)

    ok(*cmd)  # the same command again finishes the job
    if stage in ("export", "transform"):
        folder = "export" if stage == "export" else "transformed"
        assert _manifest_rows(run, folder) == expected
        if stage == "export":
            ok("transform", str(run))
        ok("load", str(run), *to, "--drop")
    found = _counts(pg.dsn, pg.schema)
    rows_lost(_lost(expected, found))
    assert found == expected
    assert not _staging_left(pg.dsn, pg.schema)

    # The re-run's result is proven row by row.
    if stage == "rollback-reload":
        _verified(sorted((run / "reload").iterdir())[-1])
    elif in_run is None:
        _verified(sorted((tmp_path / ".lite2pg" / "runs").iterdir())[-1])
    else:
        _verified(run)
