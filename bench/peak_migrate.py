"""Which processes make the peak memory of one `lite2pg migrate` (diagnosis for race.py's
"peak MB, all processes"):

    python bench/peak_migrate.py .venv/bin/lite2pg DB [migrate flags...]

Every 0.1 s, as harness.TreeSampler does: the VmRSS of lite2pg and all its descendants plus
the RssAnon of the backends serving the run's database. Prints the largest sample's
processes, then each second's largest sum (MB, processes, each one's MB).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

import psycopg
from psycopg import sql

from harness import command_of, memory_kb, resolve_lite2pg, tree_pids

SERVER = "postgresql://postgres@127.0.0.1:5432"
DBNAME = "hb_peak"


def main() -> None:
    exe, db, *flags = sys.argv[1:]
    print(resolve_lite2pg(exe).source)  # byte-compiles it, as pip install does
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(DBNAME)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DBNAME)))
    mon = psycopg.connect(f"{SERVER}/postgres", autocommit=True)
    best: tuple[int, float, list[tuple[int, str, int, str]]] = (0, 0.0, [])
    series: dict[int, tuple[int, list[int]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        argv = [exe, "migrate", db, "--target", f"{SERVER}/{DBNAME}", "--run-dir", f"{tmp}/run"]
        proc = subprocess.Popen([*argv, "-q", *flags], stdout=subprocess.DEVNULL)
        started = time.time()
        while proc.poll() is None:
            procs: list[tuple[int, str, int, str]] = []
            for pid in tree_pids([proc.pid]):
                mem = memory_kb(pid)
                if mem:
                    procs.append((mem[0] // 1024, "client", pid, command_of(pid)[:70]))
            backends = mon.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (DBNAME,)
            ).fetchall()
            for (pid,) in backends:
                mem = memory_kb(pid)
                if mem:
                    procs.append((mem[1] // 1024, "server", pid, "backend"))
            total = sum(p[0] for p in procs)
            at = time.time() - started
            if total > best[0]:
                best = (total, at, sorted(procs, reverse=True))
            if total > series.get(int(at), (0, []))[0]:
                series[int(at)] = (total, sorted((p[0] for p in procs), reverse=True))
            time.sleep(0.1)
    mon.close()
    print(f"peak {best[0]} MB at {best[1]:.1f} s of {time.time() - started:.1f} s")
    for p in best[2]:
        print(f"  {p[0]:4d} MB {p[1]} {p[2]} {p[3]}")
    for second in sorted(series):
        print(second, *series[second])


if __name__ == "__main__":
    main()
