"""Cost of the JSON inference scan (issue 11): `source.discover` on a Django-style table of
300k JSON documents (a tenth of them with a \\u escape), against one plain read of the
same table and against discovery without the scan.

    python bench/json_scan.py [--db PATH] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from lite2pg import source

DDL = (
    'CREATE TABLE item (id integer PRIMARY KEY, data text NOT NULL CHECK ((JSON_VALID("data")'
    ' OR "data" IS NULL)), note text)'
)


def build(db: Path, rows: int) -> None:
    rnd = random.Random(1)
    with sqlite3.connect(db) as conn:
        conn.execute(DDL)
        conn.executemany(
            "INSERT INTO item VALUES (?, ?, ?)",
            (
                (
                    i,
                    json.dumps(
                        {
                            "name": f"item {i}",
                            "tags": ["a", "b", "é" if i % 10 == 0 else "c"],
                            "price": rnd.random() * 100,
                            "n": i,
                        }
                    ),
                    "x" * 50,
                )
                for i in range(rows)
            ),
        )
    conn.close()


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", type=Path, default=Path("/tmp/lite2pg-json-scan.db"))
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not args.db.exists():
        build(args.db, args.rows)
    conn = source.open_readonly(args.db)
    scan = median_seconds(lambda: source.discover(conn), args.repeat)
    bare = median_seconds(lambda: source.discover(conn, values=False), args.repeat)
    read = median_seconds(lambda: conn.execute("SELECT * FROM item").fetchall(), args.repeat)
    print(f"discover with the JSON scan: {scan:.3f} s")
    print(f"discover without values:     {bare:.3f} s")
    print(f"one plain read of the table: {read:.3f} s")
    print(source.discover(conn).tables[0].column("data").stored)
    conn.close()


if __name__ == "__main__":
    main()
