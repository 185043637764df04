"""What race.py, engines.py and scale.py share: processes measured as a whole, fresh
databases, the SQLite model, and the lite2pg build under test.

Memory is measured the same way everywhere (`TreeSampler`), every 0.1 s:
- client: the summed VmRSS of every process the contender started (the process it runs and
  all its descendants, e.g. lite2pg's workers, the sqlite3 and psql of a pipe);
- server: the summed private memory (RssAnon) of the PostgreSQL backends serving the
  contender's database (pg_stat_activity.datname, parallel workers included).
  shared_buffers is the server's fixed pool, mapped by every backend: it is counted for
  nobody (summing backends' full RSS would count it once per backend).
"all processes" is the largest per-sample sum of both. The client's summed RssAnon
(private memory: not the shared libraries and interpreter pages forked workers share, not
file pages) and the processes with the highest peaks are kept too, for diagnosis.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from lite2pg.schema import map_declared_type
from lite2pg.source import discover

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"  # git-ignored
DB_PREFIX = "hb_"  # the only databases these scripts create and drop
SAMPLE_S = 0.1  # fine enough to catch an index build's peak, cheap on 2 cores
TOP_PROCESSES = 5


# ------------------------------------------------------------------- processes and memory
_children: set[int] = set()  # pids (= process group ids) of children still running


def _parents() -> dict[int, int]:
    parent: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_bytes()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: fields start after the last ')'
        parent[int(d)] = int(stat[stat.rindex(b")") + 2 :].split()[1])
    return parent


def tree_pids(roots: Iterable[int]) -> set[int]:
    """`roots` and all their descendants still alive."""
    kids: dict[int, list[int]] = {}
    for pid, ppid in _parents().items():
        kids.setdefault(ppid, []).append(pid)
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(kids.get(pid, ()))
    return seen


def memory_kb(pid: int) -> tuple[int, int] | None:
    """(VmRSS, RssAnon) of one process in kB; None if it is gone or cannot be read."""
    rss = anon = None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None if rss is None or anon is None else (rss, anon)


def command_of(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    words = [w.decode(errors="replace") for w in raw.split(b"\0") if w]
    return " ".join(Path(w).name if i == 0 or w.startswith("/") else w for i, w in enumerate(words))


@dataclass
class Peaks:
    """Peak memory over a measurement, in MB (see the module docstring)."""

    all_mb: float = 0.0
    client_mb: float = 0.0
    client_private_mb: float = 0.0  # the same sum over RssAnon: what is not shared or file
    server_mb: float | None = None  # None: no backend of the database could be read
    samples: int = 0
    # the processes with the highest peak VmRSS: "pid command" -> MB (diagnosis)
    top: dict[str, float] = field(default_factory=dict)


class TreeSampler:
    """Samples the summed memory of some process trees and of the backends of `databases`."""

    def __init__(self, server: str | None = None, databases: Sequence[str] = ()) -> None:
        self.roots: set[int] = set()
        self._server, self._databases = server, list(databases)
        self._peaks = Peaks()
        self._per_pid: dict[int, int] = {}
        self._commands: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add(self, pid: int) -> None:
        self.roots.add(pid)

    def stop(self) -> Peaks:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
        return self._peaks

    def peaks(self) -> Peaks:
        return self._peaks

    def _backends(self, conn: psycopg.Connection[Any] | None) -> list[int]:
        if conn is None:
            return []
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = ANY(%s) AND pid <> pg_backend_pid()",
            (self._databases,),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def sample(self, conn: psycopg.Connection[Any] | None) -> None:
        client = client_private = 0
        for pid in tree_pids(self.roots) if self.roots else ():
            mem = memory_kb(pid)
            if mem is None:
                continue
            client += mem[0]
            client_private += mem[1]
            if mem[0] > self._per_pid.get(pid, 0):
                self._per_pid[pid] = mem[0]
                if pid not in self._commands:
                    self._commands[pid] = command_of(pid)
        server: int | None = None
        for pid in self._backends(conn):
            mem = memory_kb(pid)
            if mem is not None:
                server = (server or 0) + mem[1]
        p = self._peaks
        p.samples += 1
        p.client_mb = max(p.client_mb, client / 1024)
        p.client_private_mb = max(p.client_private_mb, client_private / 1024)
        if server is not None:
            p.server_mb = max(p.server_mb or 0.0, server / 1024)
        p.all_mb = max(p.all_mb, (client + (server or 0)) / 1024)
        top = sorted(self._per_pid.items(), key=lambda kv: -kv[1])[:TOP_PROCESSES]
        p.top = {f"{pid} {self._commands[pid][:100]}": round(kb / 1024, 1) for pid, kb in top}

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        if self._server and self._databases:
            conn = psycopg.connect(self._server, autocommit=True)
        try:
            while not self._stop.is_set():
                self.sample(conn)
                self._stop.wait(SAMPLE_S)
            self.sample(conn)
        finally:
            if conn is not None:
                conn.close()


@dataclass
class Measured:
    """One process or pipeline: wall time, exit code, the largest process's peak RSS."""

    wall_s: float
    code: int
    max_rss_mb: float  # ru_maxrss from wait4: the child itself, as GNU time -v reports


def spawn(
    argv: Sequence[str],
    *,
    stdin: IO[bytes] | int | None = None,
    stdout: IO[bytes] | int | None = None,
    stderr: IO[bytes] | int | None = None,
    env: Mapping[str, str] | None = None,
    sampler: TreeSampler | None = None,
) -> subprocess.Popen[bytes]:
    """Start a child in its own session (so Ctrl-C reaches the harness only; the harness
    then stops the child's whole group), registered for `kill_children`."""
    proc = subprocess.Popen(
        list(argv), stdin=stdin, stdout=stdout, stderr=stderr, env=env, start_new_session=True
    )
    _children.add(proc.pid)
    if sampler is not None:
        sampler.add(proc.pid)
    return proc


def reap(proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    """Wait for `proc`; its exit code and peak RSS in MB (ru_maxrss of that very child)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    _children.discard(proc.pid)
    return proc.returncode, usage.ru_maxrss / 1024


def kill_children() -> None:
    """SIGKILL the process group of every child still running, and reap it."""
    for pid in list(_children):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        _children.discard(pid)


def run_measured(
    argv: Sequence[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    sampler: TreeSampler | None = None,
) -> Measured:
    """Run one command with its output appended to `log`."""
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        started = time.perf_counter()
        proc = spawn(argv, stdout=out, stderr=subprocess.STDOUT, env=env, sampler=sampler)
        code, rss = reap(proc)
        return Measured(time.perf_counter() - started, code, rss)


def pipe_measured(
    producer: Sequence[str],
    consumer: Sequence[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    sampler: TreeSampler | None = None,
) -> Measured:
    """Run `producer | consumer`; wall time until both end, the larger peak RSS."""
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(producer)} | {' '.join(consumer)}\n".encode())
        out.flush()
        started = time.perf_counter()
        first = spawn(producer, stdout=subprocess.PIPE, stderr=out, env=env, sampler=sampler)
        assert first.stdout is not None
        second = spawn(
            consumer, stdin=first.stdout, stdout=out, stderr=out, env=env, sampler=sampler
        )
        first.stdout.close()  # the producer gets SIGPIPE if the consumer dies
        code2, rss2 = reap(second)
        code1, rss1 = reap(first)
        return Measured(time.perf_counter() - started, code1 or code2, max(rss1, rss2))


def tail(log: Path, lines: int = 3) -> str:
    """The last non-empty lines of a log, on one line."""
    text = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return " | ".join(text[-lines:])[:300]


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def on_signals_interrupt() -> None:
    """SIGTERM and SIGHUP stop the harness as Ctrl-C does (children killed, databases
    dropped by the caller's finally)."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)


# ------------------------------------------------------------------------------ databases
def with_dbname(url: str, dbname: str) -> str:
    """The same server URL with another database."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise SystemExit(f"--server must be a postgresql:// URL, got {url!r}")
    return urlunsplit(parts._replace(path="/" + dbname))


def _own(dbname: str) -> sql.Identifier:
    if not re.fullmatch(DB_PREFIX + r"[a-z0-9_]+", dbname):
        raise ValueError(f"refusing to touch database {dbname!r}: not one of ours ({DB_PREFIX}*)")
    return sql.Identifier(dbname)


def fresh_database(server: str, dbname: str) -> str:
    """Drop and create `dbname`, CHECKPOINT (so earlier runs' dirty pages are not flushed
    during the next measurement), return its URL."""
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(_own(dbname)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(_own(dbname)))
        conn.execute("CHECKPOINT")
    return with_dbname(server, dbname)


def drop_databases(server: str, names: Iterable[str]) -> None:
    """Drop our databases; report (not raise) what could not be dropped."""
    try:
        with psycopg.connect(server, autocommit=True) as conn:
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(_own(name)))
    except psycopg.Error as e:
        print(f"could not drop {', '.join(names)}: {e}", flush=True)


def server_settings(server: str) -> dict[str, str]:
    """The PostgreSQL settings the figures depend on."""
    out: dict[str, str] = {}
    with psycopg.connect(server, autocommit=True) as conn:
        for name in (
            "server_version",
            "shared_buffers",
            "maintenance_work_mem",
            "max_wal_size",
            "synchronous_commit",
            "max_parallel_maintenance_workers",
        ):
            row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            out[name] = str(row[0]) if row else "?"
    return out


# ----------------------------------------------------------------------------- SQLite side
@dataclass
class TableModel:
    """One SQLite table as the harness needs it: columns with lite2pg's types, keys, rows."""

    name: str
    columns: list[tuple[str, str, str, bool]]  # name, declared type, lite2pg's PG type, NOT NULL
    pk: list[str]
    rowid_pk: bool
    autoincrement: int | None
    unique: list[list[str]] = field(default_factory=list)
    indexes: list[tuple[list[str], bool]] = field(default_factory=list)  # columns, unique
    fks: list[tuple[list[str], str, list[str]]] = field(default_factory=list)  # from, ref, to
    rows: int = 0


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sqlite_model(db: Path) -> dict[str, TableModel]:
    """Tables of the SQLite file, in creation order, with the PostgreSQL types lite2pg's
    mapping gives their columns (`map_declared_type`, values scanned where it needs them)."""
    with closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)) as con:
        schema = discover(con)
        pg_types = {
            t.name: {c.name: map_declared_type(c.declared_type, c.stored).sql for c in t.columns}
            for t in schema.tables
        }
        names = [
            r[0]
            for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
            )
        ]
        has_seq = con.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")
        seq_table = has_seq.fetchone() is not None
        model: dict[str, TableModel] = {}
        for t in names:
            if t not in pg_types:
                continue  # virtual, shadow: lite2pg skips them too
            cols = con.execute(f"PRAGMA table_info({_q(t)})").fetchall()
            pk = [c[1] for c in sorted((c for c in cols if c[5]), key=lambda c: c[5])]
            rowid_pk = len(pk) == 1 and any(
                c[1] == pk[0] and (c[2] or "").upper() == "INTEGER" for c in cols
            )
            seq = None
            if seq_table:
                row = con.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (t,)).fetchone()
                seq = int(row[0]) if row else None
            m = TableModel(
                name=t,
                columns=[(c[1], c[2] or "", pg_types[t][c[1]], bool(c[3])) for c in cols],
                pk=pk,
                rowid_pk=rowid_pk,
                autoincrement=seq,
                rows=con.execute(f"SELECT count(*) FROM {_q(t)}").fetchone()[0],
            )
            for _, iname, unique, origin, partial in con.execute(f"PRAGMA index_list({_q(t)})"):
                if origin == "pk":
                    continue
                icols = [r[2] for r in con.execute(f"PRAGMA index_info({_q(iname)})")]
                if partial or None in icols:
                    continue  # partial and expression indexes: not reproduced by the top-up
                if origin == "u":
                    m.unique.append(icols)
                else:
                    m.indexes.append((icols, bool(unique)))
            fks: dict[int, tuple[list[str], str, list[str]]] = {}
            for fid, _seq, ref, frm, to, *_ in con.execute(f"PRAGMA foreign_key_list({_q(t)})"):
                f = fks.setdefault(fid, ([], ref, []))
                f[0].append(frm)
                f[2].append(to)
            m.fks = list(fks.values())
            model[t] = m
    return model


def create_tables(conn: psycopg.Connection[Any], model: Mapping[str, TableModel]) -> None:
    """Bare tables with lite2pg's types, NOT NULL inline, no keys (the floor's tables)."""
    for m in model.values():
        cols = sql.SQL(", ").join(
            sql.SQL("{} {}{}").format(
                sql.Identifier(name),
                sql.SQL(pg_type),  # from lite2pg's own mapping, not user text
                sql.SQL(" NOT NULL" if not_null else ""),
            )
            for name, _decl, pg_type, not_null in m.columns
        )
        conn.execute(sql.SQL("CREATE TABLE public.{} ({})").format(sql.Identifier(m.name), cols))


# ----------------------------------------------------------------------- the build under test
@dataclass
class Lite2pgBuild:
    """The lite2pg executable a run uses, and what identifies its build."""

    path: str
    version: str
    source: str  # the package's directory, with its git commit when it is a checkout


def resolve_lite2pg(given: str | None) -> Lite2pgBuild:
    """`given`, else the lite2pg on PATH; exits with a hint when there is none."""
    path = shutil.which(given or "lite2pg")
    if path is None:
        raise SystemExit(
            f"no lite2pg executable {'at ' + given if given else 'on PATH'}: "
            "pass --lite2pg .venv/bin/lite2pg (or activate the venv)"
        )
    version = subprocess.run(
        [path, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    source = "?"
    first = Path(path).read_bytes()[:200].split(b"\n")[0]
    if first.startswith(b"#!"):  # the console script's interpreter knows where the package is
        python = first[2:].decode().strip()
        found = subprocess.run(
            [python, "-c", "import lite2pg, os; print(os.path.dirname(lite2pg.__file__))"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if found:
            compile_package(python, found)
            commit = subprocess.run(
                ["git", "-C", found, "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            dirty = subprocess.run(
                ["git", "-C", found, "status", "--porcelain", "--untracked-files=no", "."],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            source = found + (f" at {commit}{' (modified)' if dirty else ''}" if commit else "")
    return Lite2pgBuild(os.path.abspath(path), version, source)


def compile_package(python: str, package_dir: str) -> None:
    """Byte-compile a build's package, as `pip install` of a wheel does.

    An editable install (a checkout's .venv) has no .pyc files until a run writes them, and
    with PYTHONDONTWRITEBYTECODE set no run ever does: each run then compiled lite2pg from
    source in its main process and in its forkserver, about 1.2 CPU-seconds of the command a
    user types (measured 2026-12-03), which an installed lite2pg never pays. Its
    dependencies were installed by pip, compiled. The .pyc files go to __pycache__/
    (git-ignored)."""
    subprocess.run([python, "-m", "compileall", "-q", package_dir], check=False)


# ---------------------------------------------------------------------------------- figures
def median(xs: Iterable[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if vals else None


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def chunks(it: Iterable[Any], n: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for x in it:
        batch.append(x)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch
