"""Online migration benchmark (issue 6): the write freeze, and no lost write.

python bench/online.py --runs 5 --json bench/out/online.json --markdown

Each run copies a clean ~1M-row helpdesk database (built once under bench/data/) and
starts the app: a writer thread doing inserts, updates and deletes at a steady rate (200
writes/s by default) against SQLite, for the whole run. Then, as subprocesses:

    lite2pg prepare DB
    lite2pg migrate DB --target URL --run-dir RUN --no-keep-artifacts --no-verify
    lite2pg sync RUN --target URL --follow          (for --follow-seconds, then SIGTERM)
    lite2pg cutover RUN --config .env --target URL --online    (verifies after the switch)

The writer reads DATABASE_URL from .env before each write, as an app that reloads its
config would. A write that SQLite refuses with lite2pg's "moved" error is retried on
PostgreSQL. After the cutover the writer goes on for a few seconds on PostgreSQL.

Per run it records the freeze window the cutover reports, the writer's rate, and checks:
- the full verify the cutover ran (PostgreSQL as handed over = transform(final SQLite));
- no write acknowledged by SQLite after the freeze: the change log ends at the sequence
  number the cutover drained;
- every write refused by SQLite during or after the freeze landed on PostgreSQL (retried),
  or failed with an error the app saw; none vanished: each retried insert's row is found.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from build_db import default_path, ensure_db
from lite2pg.capture import MOVED_MESSAGE
from lite2pg.demo import HelpdeskCounts

USERS, TICKETS, AUDIT_LOGS = 4_000, 200_000, 796_000  # 1,000,000 rows
DEFAULT_TARGET = "postgresql://postgres@127.0.0.1:5432/postgres"
OUT = Path(__file__).resolve().parent / "out"
LITE2PG = str(Path(sys.executable).with_name("lite2pg"))
STATUSES = ["open", "in_progress", "pending", "resolved", "closed"]


def with_dbname(url: str, dbname: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{dbname}"


def fresh_database(target: str, dbname: str) -> str:
    with psycopg.connect(target, autocommit=True) as conn:
        name = sql.Identifier(dbname)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
    return with_dbname(target, dbname)


@dataclass
class WriterStats:
    sqlite_acked: int = 0
    pg_acked: int = 0
    retried_on_pg: int = 0  # refused by SQLite (moved), then done on PostgreSQL
    failed: int = 0  # failed with an error the app saw (neither store has it)
    failures: list[str] = field(default_factory=list)
    max_latency_ms: float = 0.0
    seconds: float = 0.0
    retried_inserts: list[tuple[str, int]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return (self.sqlite_acked + self.pg_acked) / self.seconds if self.seconds else 0.0


class App(threading.Thread):
    """The helpdesk app's write path: SQLite until its config says PostgreSQL."""

    def __init__(
        self, db: Path, config: Path, rate: float, seed: int, counts: HelpdeskCounts
    ) -> None:
        super().__init__(daemon=True)
        self.db, self.config, self.rate = db, config, rate
        self.rnd = random.Random(seed)
        self.stop = threading.Event()
        self.stats = WriterStats()
        self.users = counts.users
        self.max_ticket = counts.tickets
        self.max_audit = counts.audit_logs

    def _url(self) -> str:
        for line in self.config.read_text().splitlines():
            if line.startswith("DATABASE_URL="):
                return line.split("=", 1)[1].strip()
        return ""

    def _write(self, conn: Any, pg: bool) -> tuple[str, int]:
        r = self.rnd.random()
        ph = "%s" if pg else "?"
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        if r < 0.3:
            args = ("comment", self.rnd.randint(1, self.users), self.rnd.randint(1, 100), now, "w")
            q = (
                "INSERT INTO audit_logs (action, user_id, ticket_id, timestamp, details) "
                f"VALUES ({ph}, {ph}, {ph}, {ph}, {ph}) RETURNING id"
            )
            new = int(conn.execute(q, args).fetchall()[0][0])  # fetchall: the statement ends
            self.max_audit = max(self.max_audit, new)
            return ("audit_logs", new)
        if r < 0.5:
            args2 = ("new ticket", "written online", "open", "low", 1, 2, now, now)
            q = (
                "INSERT INTO tickets (title, description, status, priority, created_by, "
                "assigned_to, created_at, updated_at) "
                f"VALUES ({', '.join([ph] * 8)}) RETURNING id"
            )
            new = int(conn.execute(q, args2).fetchall()[0][0])
            self.max_ticket = max(self.max_ticket, new)
            return ("tickets", new)
        if r < 0.85:
            tid = self.rnd.randint(1, self.max_ticket)
            conn.execute(
                f"UPDATE tickets SET status = {ph}, updated_at = {ph} WHERE id = {ph}",
                (self.rnd.choice(STATUSES), now, tid),
            )
            return ("", 0)
        if r < 0.95:
            conn.execute(
                f"DELETE FROM audit_logs WHERE id = {ph}", (self.rnd.randint(1, self.max_audit),)
            )
            return ("", 0)
        conn.execute(
            f"UPDATE users SET email = {ph} WHERE id = {ph}",
            (f"moved{self.rnd.randint(0, 10**6)}@example.com", self.rnd.randint(1, self.users)),
        )
        return ("", 0)

    def run(self) -> None:
        lite = sqlite3.connect(self.db, timeout=5, isolation_level=None)
        lite.execute("PRAGMA synchronous = NORMAL")
        pg: psycopg.Connection[Any] | None = None
        interval = 1.0 / self.rate
        started = time.perf_counter()
        next_at = started
        s = self.stats
        while not self.stop.is_set():
            next_at += interval
            t0 = time.perf_counter()
            url = self._url()
            try:
                if url.startswith("postgresql"):
                    if pg is None:
                        pg = psycopg.connect(url, autocommit=True)
                    self._write(pg, True)
                    s.pg_acked += 1
                else:
                    try:
                        self._write(lite, False)
                        s.sqlite_acked += 1
                    except sqlite3.DatabaseError as e:
                        if MOVED_MESSAGE not in str(e):
                            raise
                        # The cutover happened while this write waited: do it on PostgreSQL.
                        url = self._url()
                        if pg is None:
                            pg = psycopg.connect(url, autocommit=True)
                        made = self._write(pg, True)
                        s.retried_on_pg += 1
                        s.pg_acked += 1
                        if made[0]:
                            s.retried_inserts.append(made)
            except Exception as e:  # the app sees it; we count it
                s.failed += 1
                if len(s.failures) < 5:
                    s.failures.append(f"{type(e).__name__}: {e}")
            s.max_latency_ms = max(s.max_latency_ms, (time.perf_counter() - t0) * 1000)
            pause = next_at - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            elif pause < -1.0:  # more than a second behind: do not burst to catch up
                next_at = time.perf_counter()
        s.seconds = time.perf_counter() - started
        lite.close()
        if pg is not None:
            pg.close()


def lite2pg(*args: str, log: Path) -> subprocess.CompletedProcess[bytes]:
    with log.open("ab") as f:
        f.write(f"$ lite2pg {' '.join(args)}\n".encode())
        f.flush()
        return subprocess.run([LITE2PG, *args], stdout=f, stderr=subprocess.STDOUT, check=False)


def one_run(
    base_db: Path,
    counts: HelpdeskCounts,
    target: str,
    out: Path,
    n: int,
    rate: float,
    follow_seconds: float,
) -> dict[str, Any]:
    work = out / f"run{n}"
    work.mkdir(parents=True)
    db = work / "app.db"
    shutil.copyfile(base_db, db)
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
    url = fresh_database(target, "bench_online")
    config = work / ".env"
    config.write_text("DATABASE_URL=sqlite:///app.db\n")
    log = work / "lite2pg.log"
    app = App(db, config, rate, n, counts)
    app.start()
    steps: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        if lite2pg("prepare", str(db), log=log).returncode:
            raise RuntimeError(f"prepare failed; see {log}")
        steps["prepare"] = time.perf_counter() - t0
        run_dir = work / "run"
        t0 = time.perf_counter()
        done = lite2pg(
            "migrate", str(db), "--target", url, "--run-dir", str(run_dir),
            "--no-keep-artifacts", "--no-verify", "-q", log=log,
        )  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"migrate failed; see {log}")
        steps["bulk copy"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with log.open("ab") as f:
            follower = subprocess.Popen(
                [LITE2PG, "sync", str(run_dir), "--target", url, "--follow"],
                stdout=f,
                stderr=subprocess.STDOUT,
            )
            time.sleep(follow_seconds)
            follower.send_signal(signal.SIGTERM)
            if follower.wait(60):
                raise RuntimeError(f"sync --follow failed; see {log}")
        steps["sync --follow"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        done = lite2pg(
            "cutover", str(run_dir), "--config", str(config), "--target", url, "--online",
            log=log,
        )  # fmt: skip
        steps["cutover --online"] = time.perf_counter() - t0
        time.sleep(3)  # the app goes on, on PostgreSQL
    finally:
        app.stop.set()
        app.join(30)
    # The cutover writes cutover.json once the switch is done, even if what follows fails.
    cut_file = run_dir / "cutover.json"
    cut = json.loads(cut_file.read_text()) if cut_file.exists() else {}
    result = cut.get("result", {})
    final_seq = cut.get("final_seq")
    with closing(sqlite3.connect(db)) as conn:
        (last_seq,) = conn.execute("SELECT max(seq) FROM _lite2pg_changes").fetchone()
    vanished = 0
    with psycopg.connect(url) as pg:
        for table, key in app.stats.retried_inserts:
            found = pg.execute(
                sql.SQL("SELECT 1 FROM {} WHERE id = %s").format(sql.Identifier(table)), (key,)
            ).fetchone()
            vanished += found is None
    s = app.stats
    return {
        "run": n,
        "cutover_exit": done.returncode,
        "freeze_ms": cut.get("freeze_ms"),
        "verify_ok": result.get("verify_ok"),
        "drained_in_freeze": result.get("drained"),
        "catch_up_changes": result.get("catch_up_changes"),
        "final_seq": result.get("final_seq"),
        "sqlite_last_seq": last_seq,
        # Only defined when the cutover switched (else the app is still on SQLite).
        "sqlite_writes_after_freeze": None if final_seq is None else (last_seq or 0) - final_seq,
        "writes_per_s": round(s.rate, 1),
        "writer": {k: v for k, v in asdict(s).items() if k != "retried_inserts"},
        "retried_inserts_vanished": vanished,
        "steps_s": {k: round(v, 2) for k, v in steps.items()},
        "cutover_timings_ms": result.get("timings_ms"),
    }


def markdown(report: dict[str, Any]) -> str:
    runs = report["runs"]
    lines = [
        f"### {report['date']}: online migration, freeze window and lost writes (issue 6)",
        "",
        "```",
        report["command"],
        "```",
        "",
        f"Database: {report['database']}. Writer target rate {report['rate']} writes/s "
        "(inserts, updates, deletes) for the whole run.",
        "",
        "| run | freeze ms | of which counts ms | offline downtime (bulk copy) s | freeze / "
        "offline | drained in freeze | writes/s | SQLite writes after freeze "
        "| refused then done on PG | failed | verify after |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        w = r["writer"]
        copy = r["steps_s"].get("bulk copy")
        ratio = f"{r['freeze_ms'] / 1000 / copy:.3f}" if copy and r["freeze_ms"] else "-"
        counts = (r.get("cutover_timings_ms") or {}).get("counts")
        lines.append(
            f"| {r['run']} | {r['freeze_ms']} | {counts} | {copy} | {ratio} "
            f"| {r['drained_in_freeze']} | {r['writes_per_s']} "
            f"| {r['sqlite_writes_after_freeze']} | {w['retried_on_pg']} | {w['failed']} "
            f"| {'VERIFIED' if r['verify_ok'] else 'FAILED'} |"
        )
    lines += [
        "",
        "The baseline is the downtime an offline migration of the same database needs: the "
        "bulk copy (`migrate --no-verify --no-keep-artifacts`) timed in the same run.",
        "",
        f"Median freeze: **{report['median_freeze_ms']} ms** (target <= 1000 ms). "
        f"Lost writes: **{report['lost_writes']}** (target 0). Every run verified after the "
        f"switch: {'yes' if report['all_verified'] else '**no**'}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", default=DEFAULT_TARGET, help="server URL (maintenance db)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rate", type=float, default=200.0, help="app writes per second")
    parser.add_argument("--follow-seconds", type=float, default=5.0)
    parser.add_argument("--users", type=int, default=USERS)
    parser.add_argument("--tickets", type=int, default=TICKETS)
    parser.add_argument("--audit-logs", type=int, default=AUDIT_LOGS)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    base = default_path(args.users, args.tickets, args.audit_logs)
    counts, _ = ensure_db(base, users=args.users, tickets=args.tickets, audit_logs=args.audit_logs)
    out = OUT / f"online-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    out.mkdir(parents=True)
    runs = []
    for n in range(1, args.runs + 1):
        r = one_run(base, counts, args.target, out, n, args.rate, args.follow_seconds)
        print(json.dumps(r), flush=True)
        runs.append(r)
    freezes = [r["freeze_ms"] for r in runs if r["freeze_ms"] is not None]
    lost = sum((r["sqlite_writes_after_freeze"] or 0) + r["retried_inserts_vanished"] for r in runs)
    switched = all(r["sqlite_writes_after_freeze"] is not None for r in runs)
    verified = all(r["verify_ok"] for r in runs)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python bench/online.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "database": f"{counts} ({base.stat().st_size:,} bytes)",
        "rate": args.rate,
        "runs": runs,
        "median_freeze_ms": statistics.median(freezes) if freezes else None,
        "lost_writes": lost,
        "all_verified": verified,
        "load_average": os.getloadavg(),
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        print(markdown(report))
    ok = switched and len(freezes) == len(runs) and lost == 0 and verified
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
