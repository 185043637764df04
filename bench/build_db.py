"""Build, or reuse, the clean helpdesk SQLite database the benchmark loads.

python bench/build_db.py                      # 20k users, 500k tickets, 2M audit rows
python bench/build_db.py --tickets 50000 --audit-logs 200000 --users 2000
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path

from lite2pg.demo import HelpdeskCounts, make_legacy_helpdesk

# The issue-2 target: about 340 MB of SQLite with realistic row widths.
USERS = 20_000
TICKETS = 500_000
AUDIT_LOGS = 2_000_000
SEED = 1
DATA_DIR = Path(__file__).resolve().parent / "data"  # git-ignored


def default_path(users: int, tickets: int, audit_logs: int, seed: int = SEED) -> Path:
    """Where a database of these counts is cached."""
    return DATA_DIR / f"helpdesk-u{users}-t{tickets}-a{audit_logs}-s{seed}.db"


def count_rows(path: Path) -> HelpdeskCounts:
    """Rows per table of an existing helpdesk database."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        users, tickets, audit_logs = (
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("users", "tickets", "audit_logs")
        )
    return HelpdeskCounts(users=users, tickets=tickets, audit_logs=audit_logs)


def ensure_db(
    path: Path, *, users: int, tickets: int, audit_logs: int, seed: int = SEED
) -> tuple[HelpdeskCounts, float | None]:
    """Build a clean database at `path` unless one is there; return its counts and build time.

    The build time is None when an existing file was reused.
    """
    if path.exists():
        return count_rows(path), None
    path.parent.mkdir(parents=True, exist_ok=True)
    # Build under a temporary name so an interrupted build is never mistaken for a cache hit.
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    started = time.perf_counter()
    counts = make_legacy_helpdesk(
        partial, users=users, tickets=tickets, audit_logs=audit_logs, seed=seed, messy=False
    )
    elapsed = time.perf_counter() - started
    partial.rename(path)
    return counts, elapsed


def main(argv: list[str] | None = None) -> int:
    """Build the bench database and print its path, counts, size and build time."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=USERS)
    parser.add_argument("--tickets", type=int, default=TICKETS)
    parser.add_argument("--audit-logs", type=int, default=AUDIT_LOGS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, help="database path (default: under bench/data/)")
    args = parser.parse_args(argv)
    path = args.out or default_path(args.users, args.tickets, args.audit_logs, args.seed)
    counts, elapsed = ensure_db(
        path, users=args.users, tickets=args.tickets, audit_logs=args.audit_logs, seed=args.seed
    )
    how = "reused" if elapsed is None else f"built in {elapsed:.1f} s"
    print(f"{path}: {counts}, {path.stat().st_size:,} bytes, {how}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
