"""CPU-seconds of the command a user types, all processes: for A/B on a shared machine.

    python bench/cpu_migrate.py DB --build A=OLD/.venv/bin/lite2pg --build B=.venv/bin/lite2pg \
        [--rounds 3] [--flags "--no-keep-artifacts --no-verify"]

Wall time on a machine other work shares says little; CPU time says what a build costs.
Client: lite2pg and every process it started (the forkserver, its workers, the export),
found as descendants of lite2pg. Server: the PostgreSQL backends serving the run's
database. Each process's own user + system time is sampled every 20 ms from
/proc/<pid>/stat and its last sample counted (a process's final 20 ms may be missed). Rounds are
interleaved: A, B, A, B, ...; each build's package is byte-compiled first, as pip install
does (harness.compile_package).
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from psycopg import sql

from harness import resolve_lite2pg, tree_pids

DBNAME = "hb_cpu_ab"
TICK = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def run_once(exe: str, db: str, server: str, flags: list[str]) -> tuple[float, float, float, float]:
    """(wall s, client CPU s, server CPU s, client peak RSS MB of the largest process)."""
    with psycopg.connect(f"{server}/postgres", autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(DBNAME)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DBNAME)))
    seen: dict[int, float] = {}
    mine: dict[int, float] = {}
    stop = threading.Event()
    root: list[int] = []

    def sample() -> None:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as c:
            while not stop.is_set():
                for (pid,) in c.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s", (DBNAME,)
                ).fetchall():
                    cpu = _cpu_of(pid)
                    if cpu is not None:
                        seen[pid] = max(seen.get(pid, 0.0), cpu)
                for pid in tree_pids(root):
                    cpu = _cpu_of(pid)
                    if cpu is not None:
                        mine[pid] = max(mine.get(pid, 0.0), cpu)
                stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [exe, "migrate", db, "--target", f"{server}/{DBNAME}", "--run-dir", f"{tmp}/run",
             "-q", *flags],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        root.append(proc.pid)
        sampler.start()
        _, err = proc.communicate()
        wall = time.perf_counter() - started
        stop.set()
        sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{exe} failed: {err.decode()[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, sum(mine.values()), sum(seen.values()), peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("--build", action="append", required=True, help="NAME=path/to/lite2pg")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--flags", default="")
    ap.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432")
    args = ap.parse_args()
    builds = [b.split("=", 1) for b in args.build]
    for _, exe in builds:
        print(resolve_lite2pg(exe).source)  # byte-compiles it, as pip install does
    flags = shlex.split(args.flags)
    got: dict[str, list[tuple[float, float, float, float]]] = {n: [] for n, _ in builds}
    for r in range(args.rounds):
        for name, exe in builds:
            m = run_once(exe, args.db, args.server, flags)
            got[name].append(m)
            print(
                f"{name} round {r + 1}: wall {m[0]:.2f} s, client CPU {m[1]:.2f} s, "
                f"server CPU {m[2]:.2f} s, total CPU {m[1] + m[2]:.2f} s",
                flush=True,
            )
    for name, ms in got.items():
        med = [statistics.median(m[i] for m in ms) for i in range(3)]
        tot = statistics.median(m[1] + m[2] for m in ms)
        print(
            f"{name} median: wall {med[0]:.2f} s, client CPU {med[1]:.2f} s, "
            f"server CPU {med[2]:.2f} s, total CPU {tot:.2f} s"
        )
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(DBNAME)))


if __name__ == "__main__":
    main()
