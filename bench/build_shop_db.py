"""Build the shop database that times verify on the column kinds the helpdesk lacks (issue 12).

Django-style fractional timestamps ('YYYY-MM-DD HH:MM:SS.ffffff', no fraction on whole
seconds, many ending in zeros), DECIMAL(p,s) columns (SQLite keeps them as REAL, or
INTEGER when whole), a REAL column, a table without a primary key, and columns the plan
`bench/shop_plan.toml` transforms (two `map`s, a `default`, epoch seconds through
`timestamp`, a `strip`). About 500k rows:

python bench/build_shop_db.py --out /tmp/vb/shop.db
lite2pg migrate /tmp/vb/shop.db --plan bench/shop_plan.toml --target URL --no-verify
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

CUSTOMERS = 20_000
ORDERS = 180_000
ITEMS = 300_000
SEED = 1
PLAN = Path(__file__).resolve().parent / "shop_plan.toml"

SCHEMA = """
CREATE TABLE customers (
  id INTEGER PRIMARY KEY,
  email TEXT NOT NULL,
  name TEXT,
  tier TEXT,                  -- plan: map, then default
  created_at DATETIME,        -- Django-style fractional timestamps
  last_login INTEGER,         -- epoch seconds; plan: timestamp
  balance DECIMAL(12,2)
);
CREATE TABLE orders (
  id INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customers(id),
  status TEXT,                -- plan: map (ignore_case, trim)
  total DECIMAL(10,2),
  placed_at DATETIME,
  shipped_at DATETIME,
  weight_kg REAL,
  note TEXT                   -- plan: strip
);
CREATE TABLE order_items (    -- no primary key
  order_id INTEGER NOT NULL REFERENCES orders(id),
  sku TEXT NOT NULL,
  qty INTEGER NOT NULL,
  unit_price DECIMAL(10,2) NOT NULL,
  added_at DATETIME NOT NULL
);
"""

_START = dt.datetime(2019, 1, 1)
_STATUSES = ["new", "New ", "paid", "PAID", "shipped", " shipped", "delivered", "cancelled"]
_TIERS = ["gold", "Gold", "silver", "bronze", None]


def _stamp(rng: random.Random) -> str:
    """What Django writes: microseconds in 6 digits, none at all on a whole second."""
    t = _START + dt.timedelta(seconds=rng.randrange(5 * 365 * 86400))
    kind = rng.random()
    if kind < 0.2:
        return t.isoformat(" ")  # a whole second
    micro = rng.randrange(1_000_000)
    if kind < 0.5:
        micro -= micro % 1000  # milliseconds: '.123000'
    return (t + dt.timedelta(microseconds=micro)).isoformat(" ")


def _money(rng: random.Random, hi: float) -> float:
    return round(rng.uniform(0.5, hi), 2)  # REAL in SQLite, INTEGER when whole


def _customers(rng: random.Random, n: int) -> Iterator[tuple[object, ...]]:
    for i in range(1, n + 1):
        yield (
            i,
            f"user{i}@example.org",
            f"Customer {i}",
            rng.choice(_TIERS),
            _stamp(rng),
            1_600_000_000 + rng.randrange(100_000_000) if rng.random() < 0.9 else None,
            _money(rng, 5000),
        )


def _orders(rng: random.Random, n: int, customers: int) -> Iterator[tuple[object, ...]]:
    for i in range(1, n + 1):
        shipped = _stamp(rng) if rng.random() < 0.7 else None
        note = rng.choice([None, "", "leave at door ", " gift", "call first"])
        yield (
            i,
            rng.randrange(1, customers + 1),
            rng.choice(_STATUSES),
            _money(rng, 900),
            _stamp(rng),
            shipped,
            round(rng.uniform(0.05, 40), 3),
            note,
        )


def _items(rng: random.Random, n: int, orders: int) -> Iterator[tuple[object, ...]]:
    for _ in range(n):
        yield (
            rng.randrange(1, orders + 1),
            f"SKU-{rng.randrange(5000):05d}",
            rng.randrange(1, 6),
            _money(rng, 200),
            _stamp(rng),
        )


def build(path: Path, customers: int, orders: int, items: int, seed: int) -> None:
    """Write the shop database at `path` (replaced if it exists)."""
    rng = random.Random(seed)
    path.unlink(missing_ok=True)
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(SCHEMA)
        conn.executemany("INSERT INTO customers VALUES (?,?,?,?,?,?,?)", _customers(rng, customers))
        conn.executemany(
            "INSERT INTO orders VALUES (?,?,?,?,?,?,?,?)", _orders(rng, orders, customers)
        )
        conn.executemany("INSERT INTO order_items VALUES (?,?,?,?,?)", _items(rng, items, orders))
        conn.commit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=CUSTOMERS)
    parser.add_argument("--orders", type=int, default=ORDERS)
    parser.add_argument("--items", type=int, default=ITEMS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, required=True, help="database path")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    build(args.out, args.customers, args.orders, args.items, args.seed)
    rows = args.customers + args.orders + args.items
    print(
        f"{args.out}: {rows:,} rows, {args.out.stat().st_size:,} bytes, built in "
        f"{time.perf_counter() - started:.1f} s; load it with --plan {PLAN}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
