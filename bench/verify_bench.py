"""Time `lite2pg verify` against the load it checks, in the same run (issue 4).

Each round loads the benchmark database into a fresh PostgreSQL database with
`lite2pg migrate --no-verify --no-keep-artifacts` (the streaming path that
migrate_bench.py times) and then runs `lite2pg verify` on that run directory, back to
back. The issue's target: verify wall / load wall <= 0.5, with memory bounded.

python bench/verify_bench.py                         # 3 rounds on the full-size database
python bench/verify_bench.py --repeat 5 --json bench/out/verify.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from build_db import AUDIT_LOGS, SEED, TICKETS, USERS, default_path, ensure_db
from migrate_bench import DEFAULT_TARGET, OUT_DIR, fresh_database

MAX_RATIO = 0.5  # the target: verify <= 0.5 x the load
DBNAME = "bench_lite2pg_verify"  # recreated each round; not migrate_bench's database


@dataclass
class Round:
    load_avg_before: float  # 1-minute load average before the round (other work on the box)
    migrate_s: float
    migrate_rss_mb: float
    verify_s: float
    verify_rss_mb: float  # the main process; the content jobs run in worker processes
    verified: bool

    @property
    def ratio(self) -> float:
        return self.verify_s / self.migrate_s


def _timed(argv: list[str], log: Path) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB) of the process itself, exit code."""
    with log.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    return wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def one_round(db: Path, target: str, out: Path, k: int) -> Round:
    url = fresh_database(target, DBNAME)
    lite2pg = str(Path(sys.executable).with_name("lite2pg"))
    run_dir = out / f"run-{k}"
    load = os.getloadavg()[0]
    migrate_s, migrate_rss, rc = _timed(
        [
            lite2pg,
            "migrate",
            str(db),
            "--target",
            url,
            "--run-dir",
            str(run_dir),
            "--no-verify",
            "--no-keep-artifacts",
        ],
        out / f"migrate-{k}.log",
    )
    if rc != 0:
        raise SystemExit(f"migrate failed (exit {rc}): see {out / f'migrate-{k}.log'}")
    verify_s, verify_rss, rc = _timed(
        [lite2pg, "verify", str(run_dir), "--target", url], out / f"verify-{k}.log"
    )
    return Round(load, migrate_s, migrate_rss, verify_s, verify_rss, rc == 0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--target", default=DEFAULT_TARGET, help=f"server ({DBNAME} is recreated)")
    ap.add_argument("--db", type=Path, help="SQLite database to load (built if missing)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    ap.add_argument("--json", type=Path, help="write every round and the medians here")
    args = ap.parse_args(argv)
    db = args.db or default_path(USERS, TICKETS, AUDIT_LOGS, SEED)
    ensure_db(db, users=USERS, tickets=TICKETS, audit_logs=AUDIT_LOGS, seed=SEED)
    out = OUT_DIR / ("verify-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    out.mkdir(parents=True)
    rounds: list[Round] = []
    for k in range(args.repeat):
        r = one_round(db, args.target, out, k)
        rounds.append(r)
        print(
            f"round {k + 1}: load avg {r.load_avg_before:.2f}, migrate {r.migrate_s:.2f} s, "
            f"verify {r.verify_s:.2f} s ({'VERIFIED' if r.verified else 'FAILED'}), "
            f"ratio {r.ratio:.2f}",
            flush=True,
        )
    summary: dict[str, Any] = {
        "migrate_s": statistics.median(r.migrate_s for r in rounds),
        "verify_s": statistics.median(r.verify_s for r in rounds),
        "ratio": statistics.median(r.ratio for r in rounds),
        "verify_rss_mb": max(r.verify_rss_mb for r in rounds),
        "load_avg": [r.load_avg_before for r in rounds],
    }
    ok = summary["ratio"] <= MAX_RATIO and all(r.verified for r in rounds)
    print(
        f"median: migrate {summary['migrate_s']:.2f} s, verify {summary['verify_s']:.2f} s, "
        f"verify/migrate {summary['ratio']:.2f} (target <= {MAX_RATIO}) "
        f"{'PASS' if ok else 'FAIL'}; verify peak RSS {summary['verify_rss_mb']:.0f} MB; "
        f"logs and run directories in {out}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        data = {"db": str(db), "rounds": [asdict(r) | {"ratio": r.ratio} for r in rounds]}
        args.json.write_text(json.dumps(data | {"median": summary}, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
