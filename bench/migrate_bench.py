"""Time `lite2pg migrate` against a COPY floor and pgloader on one PostgreSQL (issue 2).

python bench/migrate_bench.py                                   # full size, all three
python bench/migrate_bench.py --users 2000 --tickets 50000 --audit-logs 200000
python bench/migrate_bench.py --skip pgloader --json bench/out/r.json --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, LiteralString
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from build_db import AUDIT_LOGS, SEED, TICKETS, USERS, default_path, ensure_db
from lite2pg.demo import HelpdeskCounts

DEFAULT_TARGET = "postgresql://postgres@127.0.0.1:5432/postgres"
OUT_DIR = Path(__file__).resolve().parent / "out"  # git-ignored: logs, run dirs, load files
TOOLS = ("lite2pg", "floor", "pgloader")
TABLES = ("users", "tickets", "audit_logs")
# The targets.
MAX_FLOOR_RATIO = 1.2
MIN_PGLOADER_RATIO = 3.0
MAX_RSS_MB = 250.0

# lite2pg's type mapping (INTEGER->bigint, TEXT->text, BOOLEAN->boolean,
# DATETIME->timestamptz). NOT NULL stays inline: COPY checks it per row at no real cost,
# and a tool creating tables puts it there too. Keys come after the data.
FLOOR_TABLES: tuple[LiteralString, ...] = (
    "CREATE TABLE users (id bigint NOT NULL, username text NOT NULL, email text,"
    " password text, role text, is_active boolean, created_at timestamptz)",
    "CREATE TABLE tickets (id bigint NOT NULL, title text NOT NULL, description text,"
    " status text, priority text, created_by bigint, assigned_to bigint,"
    " created_at timestamptz, updated_at timestamptz)",
    "CREATE TABLE audit_logs (id bigint NOT NULL, action text NOT NULL, user_id bigint,"
    " ticket_id bigint, timestamp timestamptz, details text)",
)
FLOOR_KEYS: tuple[LiteralString, ...] = (
    "ALTER TABLE users ADD PRIMARY KEY (id)",
    "ALTER TABLE users ADD UNIQUE (username)",
    "ALTER TABLE tickets ADD PRIMARY KEY (id)",
    "ALTER TABLE audit_logs ADD PRIMARY KEY (id)",
    "CREATE INDEX idx_tickets_status ON tickets (status)",
    "CREATE INDEX idx_tickets_created_by ON tickets (created_by)",
    "CREATE INDEX idx_audit_logs_ticket ON audit_logs (ticket_id)",
    "CREATE INDEX idx_audit_logs_user ON audit_logs (user_id)",
    "ALTER TABLE tickets ADD FOREIGN KEY (created_by) REFERENCES users (id)",
    "ALTER TABLE tickets ADD FOREIGN KEY (assigned_to) REFERENCES users (id)",
    "ALTER TABLE audit_logs ADD FOREIGN KEY (user_id) REFERENCES users (id)",
    "ALTER TABLE audit_logs ADD FOREIGN KEY (ticket_id) REFERENCES tickets (id)",
)


@dataclass
class Measure:
    """One process (or pipeline) run: wall time, peak RSS, exit code."""

    wall_s: float
    peak_rss_kb: int
    returncode: int


@dataclass
class ToolResult:
    """What one contender did; `status` is ok, skipped or failed."""

    name: str
    status: str
    wall_s: float | None = None
    peak_rss_mb: float | None = None
    phases: dict[str, float] = field(default_factory=dict)
    note: str = ""
    runs_s: list[float] = field(default_factory=list)


def median_run(runs: Sequence[ToolResult]) -> ToolResult:
    """The run of median wall time (the upper one for an even count); a failure wins."""
    bad = [r for r in runs if r.status != "ok"]
    best = bad[0] if bad else sorted(runs, key=lambda r: r.wall_s or 0.0)[len(runs) // 2]
    best.runs_s = [r.wall_s for r in runs if r.wall_s is not None]
    return best


def _wait(proc: subprocess.Popen[bytes]) -> tuple[int, int]:
    """Reap `proc` with wait4, which gives that child's own peak RSS (as GNU time -v does)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss  # kB on Linux


def run_measured(argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> Measure:
    """Run one command, output to `log`; measure wall time and peak RSS."""
    with log.open("ab") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        code, rss = _wait(proc)
        return Measure(time.perf_counter() - started, rss, code)


def pipe_measured(
    producer: Sequence[str], consumer: Sequence[str], log: Path, env: Mapping[str, str]
) -> Measure:
    """Run `producer | consumer`; wall time until both end, peak RSS of the larger one."""
    with log.open("ab") as out:
        started = time.perf_counter()
        first = subprocess.Popen(producer, stdout=subprocess.PIPE, stderr=out, env=env)
        assert first.stdout is not None
        second = subprocess.Popen(consumer, stdin=first.stdout, stdout=out, stderr=out, env=env)
        first.stdout.close()  # so the producer gets SIGPIPE if the consumer dies
        code2, rss2 = _wait(second)
        code1, rss1 = _wait(first)
        return Measure(time.perf_counter() - started, max(rss1, rss2), code1 or code2)


def with_dbname(url: str, dbname: str) -> str:
    """The same server URL with another database."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise SystemExit(f"--target must be a postgresql:// URL, got {url!r}")
    return urlunsplit(parts._replace(path="/" + dbname))


def fresh_database(target: str, dbname: str) -> str:
    """Drop and create `dbname` on the target's server, checkpoint, return its URL."""
    with psycopg.connect(target, autocommit=True) as conn:
        name = sql.Identifier(dbname)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
        # Flush earlier runs' dirty buffers now, not during the next measurement.
        conn.execute("CHECKPOINT")
    return with_dbname(target, dbname)


def check_rows(url: str, expected: HelpdeskCounts) -> str:
    """'' when every table holds the expected row count, else what differs."""
    problems = []
    with psycopg.connect(url, autocommit=True) as conn:
        for table, want in expected.as_dict().items():
            try:
                query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
                row = conn.execute(query).fetchone()
                got = row[0] if row else None
            except psycopg.Error as e:
                got = f"error: {e.sqlstate}"
            if got != want:
                problems.append(f"{table}: {got} rows, expected {want}")
    return "; ".join(problems)


def _tail(log: Path, lines: int = 5) -> str:
    text = log.read_text(errors="replace").strip().splitlines()
    return " | ".join(line.strip() for line in text[-lines:])


def bench_lite2pg(db: Path, target: str, expected: HelpdeskCounts, out: Path) -> ToolResult:
    """(a) `lite2pg migrate` as a subprocess, into bench_lite2pg."""
    exe = Path(sys.executable).parent / "lite2pg"
    if not exe.exists():
        return ToolResult("lite2pg", "skipped", note=f"no lite2pg script next to {sys.executable}")
    probe = subprocess.run([str(exe), "migrate", "--help"], capture_output=True, check=False)
    if probe.returncode != 0:
        return ToolResult(
            "lite2pg", "skipped", note="`lite2pg migrate` is not available yet (--help failed)"
        )
    url = fresh_database(target, "bench_lite2pg")
    run_dir = tempfile.mkdtemp(prefix="lite2pg-run-", dir=out)
    log = out / "lite2pg.log"
    # --no-verify: the floor and pgloader check nothing after loading; verification is
    # timed on its own (issue 4). --no-keep-artifacts: they write no CSV copies either.
    m = run_measured(
        [str(exe), "migrate", str(db), "--target", url, "--run-dir", run_dir, "--no-verify",
         "--no-keep-artifacts"],
        log,
    )  # fmt: skip
    result = ToolResult("lite2pg", "ok", m.wall_s, m.peak_rss_kb / 1024)
    if m.returncode != 0:
        result.status, result.note = "failed", f"exit {m.returncode}: {_tail(log)}"
    elif problem := check_rows(url, expected):
        result.status, result.note = "failed", problem
    return result


def bench_floor(db: Path, target: str, expected: HelpdeskCounts, out: Path) -> ToolResult:
    """(b) sqlite3 -csv | psql \\copy into bare tables, then the same keys and indexes."""
    missing = [tool for tool in ("sqlite3", "psql") if not shutil.which(tool)]
    if missing:
        return ToolResult("floor", "skipped", note=f"not on PATH: {', '.join(missing)}")
    url = fresh_database(target, "bench_floor")
    with psycopg.connect(url, autocommit=True) as conn:
        for ddl in FLOOR_TABLES:
            conn.execute(ddl)
    env = {**os.environ, "PGTZ": "UTC"}
    log = out / "floor.log"
    psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c"]
    data_s, rss_kb = 0.0, 0
    for table in TABLES:
        m = pipe_measured(
            ["sqlite3", "-csv", str(db), f"SELECT * FROM {table}"],
            [*psql, f"\\copy {table} from stdin csv"],
            log,
            env,
        )
        if m.returncode != 0:
            return ToolResult("floor", "failed", note=f"{table}: exit {m.returncode}: {_tail(log)}")
        data_s += m.wall_s
        rss_kb = max(rss_kb, m.peak_rss_kb)
    # Keys are built by the server; the client only waits, so time them here.
    keys_started = time.perf_counter()
    with psycopg.connect(url, autocommit=True, options="-c TimeZone=UTC") as conn:
        for ddl in FLOOR_KEYS:
            conn.execute(ddl)
    keys_s = time.perf_counter() - keys_started
    result = ToolResult(
        "floor", "ok", data_s + keys_s, rss_kb / 1024, {"data_s": data_s, "keys_s": keys_s}
    )
    if problem := check_rows(url, expected):
        result.status, result.note = "failed", problem
    return result


def _apt_install(package: str, log: Path) -> bool:
    """apt-get install `package` (root only); False when that is not possible."""
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return False
    with log.open("ab") as out:
        for argv in (["apt-get", "update"], ["apt-get", "install", "-y", package]):
            if subprocess.run(argv, stdout=out, stderr=out, check=False).returncode != 0:
                return False
    return True


def bench_pgloader(
    db: Path, target: str, expected: HelpdeskCounts, out: Path, install: bool
) -> ToolResult:
    """(c) pgloader with drop, create tables, create indexes, reset sequences."""
    log = out / "pgloader.log"
    if not shutil.which("pgloader") and not (install and _apt_install("pgloader", log)):
        return ToolResult("pgloader", "skipped", note="pgloader not available")
    url = fresh_database(target, "bench_pgloader")
    load = out / "bench.load"
    load.write_text(
        f"LOAD DATABASE\n  FROM sqlite://{db.resolve()}\n  INTO {url}\n"
        "  WITH include drop, create tables, create indexes, reset sequences;\n"
    )
    m = run_measured(["pgloader", str(load)], log)
    result = ToolResult("pgloader", "ok", m.wall_s, m.peak_rss_kb / 1024)
    if m.returncode != 0:
        result.status, result.note = "failed", f"exit {m.returncode}: {_tail(log)}"
    elif problem := check_rows(url, expected):
        # pgloader exits 0 after rejecting rows; its summary says which.
        result.status, result.note = "failed", f"{problem} (see {log})"
    return result


def machine_info(target: str) -> dict[str, Any]:
    """What the figures depend on: cores, memory, server version and settings."""
    meminfo = Path("/proc/meminfo")
    mem_kb = int(meminfo.read_text().split()[1]) if meminfo.exists() else 0
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024**2, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    with psycopg.connect(target, autocommit=True) as conn:
        for setting in (
            "server_version",
            "shared_buffers",
            "maintenance_work_mem",
            "max_wal_size",
            "synchronous_commit",
            "max_parallel_maintenance_workers",
        ):
            row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(setting))).fetchone()
            info[setting] = row[0] if row else None
    return info


def ratios(results: Mapping[str, ToolResult]) -> dict[str, float | None]:
    """The issue's three figures; None where a contender did not finish."""

    def wall(name: str) -> float | None:
        r = results.get(name)
        return r.wall_s if r and r.status == "ok" else None

    lite, floor, pgl = wall("lite2pg"), wall("floor"), wall("pgloader")
    rss = results["lite2pg"].peak_rss_mb if lite is not None else None
    return {
        "lite2pg_over_floor": lite / floor if lite and floor else None,
        "pgloader_over_lite2pg": pgl / lite if lite and pgl else None,
        "lite2pg_peak_rss_mb": rss,
    }


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def _verdict(value: float | None, ok: bool) -> str:
    return "n/a" if value is None else ("PASS" if ok else "FAIL")


def table_rows(results: Mapping[str, ToolResult]) -> list[tuple[str, str, str, str]]:
    """(what, wall s, peak RSS MB, status/note) lines for text and markdown output."""
    lines = []
    for r in results.values():
        status = r.status + (f": {r.note}" if r.note else "")
        if r.name == "floor" and r.phases:
            lines.append(("floor: COPY data", _fmt(r.phases["data_s"]), _fmt(r.peak_rss_mb), ""))
            lines.append(("floor: keys/indexes", _fmt(r.phases["keys_s"]), "(server)", ""))
            lines.append(("floor: total", _fmt(r.wall_s), _fmt(r.peak_rss_mb), status))
        else:
            name = {"lite2pg": "lite2pg migrate"}.get(r.name, r.name)
            lines.append((name, _fmt(r.wall_s), _fmt(r.peak_rss_mb), status))
    return lines


def ratio_lines(rat: Mapping[str, float | None]) -> list[str]:
    """The three targets with their verdicts."""
    over_floor, pgl, rss = (
        rat["lite2pg_over_floor"],
        rat["pgloader_over_lite2pg"],
        rat["lite2pg_peak_rss_mb"],
    )
    return [
        f"lite2pg / floor    = {_fmt(over_floor, '.2f')} (target <= {MAX_FLOOR_RATIO}) "
        f"{_verdict(over_floor, over_floor is not None and over_floor <= MAX_FLOOR_RATIO)}",
        f"pgloader / lite2pg = {_fmt(pgl, '.2f')} (target >= {MIN_PGLOADER_RATIO}) "
        f"{_verdict(pgl, pgl is not None and pgl >= MIN_PGLOADER_RATIO)}",
        f"lite2pg peak RSS   = {_fmt(rss, '.0f')} MB (target <= {MAX_RSS_MB:.0f} MB) "
        f"{_verdict(rss, rss is not None and rss <= MAX_RSS_MB)}",
    ]


def markdown(report: Mapping[str, Any], results: Mapping[str, ToolResult]) -> str:
    """A block to paste into bench/RESULTS.md."""
    m, d = report["machine"], report["database"]
    rows = "\n".join(f"| {a} | {b} | {c} | {e} |" for a, b, c, e in table_rows(results))
    ratios_md = "\n".join(f"- {line}" for line in ratio_lines(report["ratios"]))
    return f"""\
### {report["date"]}

```
{report["command"]}
```

Machine: {m["nproc"]} cores, {m["memory_gib"]} GiB, PostgreSQL {m["server_version"]}
(shared_buffers {m["shared_buffers"]}, maintenance_work_mem {m["maintenance_work_mem"]},
max_wal_size {m["max_wal_size"]}), SQLite {m["sqlite"]}, Python {m["python"]}.
Database: {d["rows"]}, {d["bytes"]:,} bytes.

Median of {report["repeat"]} run(s) each; all runs' wall times are in the JSON.

| step | wall s | peak RSS MB | status |
| --- | ---: | ---: | --- |
{rows}

{ratios_md}
"""


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a table and the issue's ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", default=DEFAULT_TARGET, help="server URL (maintenance db)")
    parser.add_argument("--users", type=int, default=USERS)
    parser.add_argument("--tickets", type=int, default=TICKETS)
    parser.add_argument("--audit-logs", type=int, default=AUDIT_LOGS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--db", type=Path, help="SQLite file to load (built there if missing)")
    parser.add_argument("--skip", action="append", choices=TOOLS, default=[])
    parser.add_argument("--repeat", type=int, default=1, help="runs each; the median is kept")
    parser.add_argument("--no-install", action="store_true", help="never apt-get pgloader")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--markdown", action="store_true", help="print a RESULTS.md block")
    args = parser.parse_args(argv)

    db = args.db or default_path(args.users, args.tickets, args.audit_logs, args.seed)
    counts, built_s = ensure_db(
        db, users=args.users, tickets=args.tickets, audit_logs=args.audit_logs, seed=args.seed
    )
    size = db.stat().st_size
    how = "reused" if built_s is None else f"built in {built_s:.1f} s"
    print(f"database: {db} ({counts}, {size:,} bytes, {how})", flush=True)

    out = OUT_DIR / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True)
    results: dict[str, ToolResult] = {}
    runs: dict[str, list[ToolResult]] = {t: [] for t in TOOLS if t not in args.skip}
    # Rounds interleave the contenders so that drift (other load, WAL recycling) is shared.
    for round_no in range(1, args.repeat + 1):
        for tool, done in runs.items():
            if done and done[-1].status == "skipped":
                continue
            print(f"running {tool} ({round_no}/{args.repeat}) ...", flush=True)
            if tool == "lite2pg":
                r = bench_lite2pg(db, args.target, counts, out)
            elif tool == "floor":
                r = bench_floor(db, args.target, counts, out)
            else:
                r = bench_pgloader(db, args.target, counts, out, not args.no_install)
            done.append(r)
            print(f"  {tool}: {r.status} {_fmt(r.wall_s)} s {r.note}", flush=True)
    results = {
        t: median_run(runs[t]) if t in runs else ToolResult(t, "skipped", note="--skip")
        for t in TOOLS
    }

    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": shlex.join(sys.orig_argv),
        "repeat": args.repeat,
        "machine": machine_info(args.target),
        "database": {"path": str(db), "bytes": size, "rows": str(counts), **counts.as_dict()},
        "results": {name: asdict(r) for name, r in results.items()},
        "ratios": ratios(results),
        "logs": str(out),
    }
    print()
    width = max(len(a) for a, *_ in table_rows(results))
    print(f"{'step':<{width}}  {'wall s':>8}  {'peak RSS MB':>11}  status")
    for a, b, c, e in table_rows(results):
        print(f"{a:<{width}}  {b:>8}  {c:>11}  {e}")
    print()
    print("\n".join(ratio_lines(report["ratios"])))
    print(f"logs: {out}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        print()
        print(markdown(report, results))
    failed = [n for n in ("lite2pg", "floor") if results[n].status == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
