"""Time `lite2pg verify` against the load it checks, in the same run (issues 4 and 12).

Each round loads a database into a fresh PostgreSQL database with `lite2pg migrate
--no-verify` and then runs `lite2pg verify` on that run directory, back to back. It reports
verify's wall time against migrate's wall time (issue 4: <= 0.5) and against the load time
the migrate summary prints, its "total" line (report.json "seconds"; issue 12: <= 0.3).
With --baseline, the same run directory is also verified by another lite2pg (an older
build), so that both verifies meet the same machine load.

python bench/verify_bench.py                         # 3 rounds on the full-size database
python bench/verify_bench.py --repeat 5 --json bench/out/verify.json
python bench/verify_bench.py --db /tmp/vb/shop.db --plan bench/shop_plan.toml \\
    --keep-artifacts --dbname hv_shop --max-load-ratio 0.3 --baseline OLD/bin/lite2pg
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

MAX_RATIO = 0.5  # issue 4's target: verify <= 0.5 x the load (migrate's wall time)
DBNAME = "bench_lite2pg_verify"  # recreated each round; not migrate_bench's database


@dataclass
class Round:
    load_avg_before: float  # 1-minute load average before the round (other work on the box)
    migrate_s: float
    migrate_rss_mb: float
    load_s: float  # the load time the migrate summary prints (report.json "seconds")
    verify_s: float
    verify_rss_mb: float  # the main process; the content jobs run in worker processes
    verified: bool
    baseline_s: float | None = None  # the same run verified by the --baseline lite2pg

    @property
    def ratio(self) -> float:
        return self.verify_s / self.migrate_s

    @property
    def load_ratio(self) -> float:
        return self.verify_s / self.load_s


def _timed(argv: list[str], log: Path) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB) of the process itself, exit code."""
    with log.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    return wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def one_round(db: Path, target: str, out: Path, k: int, args: argparse.Namespace) -> Round:
    url = fresh_database(target, args.dbname)
    lite2pg = str(Path(sys.executable).with_name("lite2pg"))
    run_dir = out / f"run-{k}"
    load = os.getloadavg()[0]
    migrate = [lite2pg, "migrate", str(db), "--target", url, "--run-dir", str(run_dir)]
    migrate.append("--no-verify")
    migrate.append("--keep-artifacts" if args.keep_artifacts else "--no-keep-artifacts")
    if args.plan:
        migrate += ["--plan", str(args.plan)]
    migrate_s, migrate_rss, rc = _timed(migrate, out / f"migrate-{k}.log")
    if rc not in (0, 1):  # 1: rows were rejected, which verify then checks
        raise SystemExit(f"migrate failed (exit {rc}): see {out / f'migrate-{k}.log'}")
    load_s = float(json.loads((run_dir / "report.json").read_text())["seconds"])
    verify = ["verify", str(run_dir), "--target", url]
    baseline_s = None
    # With a baseline, odd rounds verify with it first: neither build always goes second.
    if args.baseline and k % 2:
        baseline_s, _, _ = _timed([args.baseline, *verify], out / f"baseline-{k}.log")
    verify_s, verify_rss, rc = _timed([lite2pg, *verify], out / f"verify-{k}.log")
    if args.baseline and not k % 2:
        baseline_s, _, _ = _timed([args.baseline, *verify], out / f"baseline-{k}.log")
    return Round(load, migrate_s, migrate_rss, load_s, verify_s, verify_rss, rc == 0, baseline_s)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--target", default=DEFAULT_TARGET, help="server (--dbname is recreated)")
    ap.add_argument("--db", type=Path, help="SQLite database to load (built if missing)")
    ap.add_argument("--plan", type=Path, help="plan for migrate")
    ap.add_argument("--keep-artifacts", action="store_true", help="migrate with its CSV files")
    ap.add_argument("--dbname", default=DBNAME, help=f"database to recreate (default {DBNAME})")
    ap.add_argument("--baseline", help="another lite2pg script to verify each run as well")
    ap.add_argument("--max-ratio", type=float, default=MAX_RATIO, help="verify / migrate target")
    ap.add_argument("--max-load-ratio", type=float, help="verify / load target (issue 12: 0.3)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    ap.add_argument("--json", type=Path, help="write every round and the medians here")
    args = ap.parse_args(argv)
    db = args.db or default_path(USERS, TICKETS, AUDIT_LOGS, SEED)
    if not args.db or not db.exists():
        ensure_db(db, users=USERS, tickets=TICKETS, audit_logs=AUDIT_LOGS, seed=SEED)
    out = OUT_DIR / ("verify-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    out.mkdir(parents=True)
    rounds: list[Round] = []
    for k in range(args.repeat):
        r = one_round(db, args.target, out, k, args)
        rounds.append(r)
        baseline = f", baseline verify {r.baseline_s:.2f} s" if r.baseline_s is not None else ""
        print(
            f"round {k + 1}: load avg {r.load_avg_before:.2f}, migrate {r.migrate_s:.2f} s "
            f"(load {r.load_s:.2f} s), verify {r.verify_s:.2f} s "
            f"({'VERIFIED' if r.verified else 'FAILED'}){baseline}, "
            f"verify/migrate {r.ratio:.2f}, verify/load {r.load_ratio:.2f}",
            flush=True,
        )
    summary: dict[str, Any] = {
        "migrate_s": statistics.median(r.migrate_s for r in rounds),
        "load_s": statistics.median(r.load_s for r in rounds),
        "verify_s": statistics.median(r.verify_s for r in rounds),
        "ratio": statistics.median(r.ratio for r in rounds),
        "load_ratio": statistics.median(r.load_ratio for r in rounds),
        "verify_rss_mb": max(r.verify_rss_mb for r in rounds),
        "load_avg": [r.load_avg_before for r in rounds],
    }
    if args.baseline:
        summary["baseline_s"] = statistics.median(r.baseline_s or 0.0 for r in rounds)
    ok = summary["ratio"] <= args.max_ratio and all(r.verified for r in rounds)
    if args.max_load_ratio is not None:
        ok = ok and summary["load_ratio"] <= args.max_load_ratio
    load_target = f" (target <= {args.max_load_ratio})" if args.max_load_ratio else ""
    print(
        f"median: migrate {summary['migrate_s']:.2f} s (load {summary['load_s']:.2f} s), "
        f"verify {summary['verify_s']:.2f} s, verify/migrate {summary['ratio']:.2f} "
        f"(target <= {args.max_ratio}), verify/load {summary['load_ratio']:.2f}{load_target} "
        f"{'PASS' if ok else 'FAIL'}; verify peak RSS {summary['verify_rss_mb']:.0f} MB; "
        f"logs and run directories in {out}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        rows = [asdict(r) | {"ratio": r.ratio, "load_ratio": r.load_ratio} for r in rounds]
        data = {"db": str(db), "rounds": rows}
        args.json.write_text(json.dumps(data | {"median": summary}, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
