"""Does `lite2pg migrate` stay linear in time and flat in memory as the source grows?

python bench/scale.py --sizes 50,150,500                  # the harness check (small sizes)
python bench/scale.py --sizes 500,1500,5000 --json bench/out/scale.json
python bench/scale.py --sizes 5000 --build-only           # just build the 5 GB source
python bench/scale.py --sizes 500 --flags="--no-keep-artifacts --no-verify"

Sources (built once, cached as bench/data/scale-<MB>mb-s<seed>.db, git-ignored) come from a
seeded generator that streams rows into SQLite in chunks, never holding a table in
memory: `accounts` and `notes` (about 5% of the file each) and `events`, which fills the
file up to the size asked for (about 90%, its index included). Each size then gets, for
each round, a fresh database hb_scale (CHECKPOINT first) and

    lite2pg migrate SOURCE --target URI --run-dir DIR -q [--flags]

(the command a user types: artifacts and verify, unless --flags says otherwise). Measured:
wall time, rows checked against SQLite, and peak memory of all processes together as in
race.py (harness.py: lite2pg's process tree plus the private memory of the PostgreSQL
backends serving hb_scale, sampled every 0.1 s). The run directory (a snapshot of the
source and, by default, two CSV copies of it) goes under --work and is removed after
each run: leave room for about 4x the largest source there.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from harness import (
    BENCH,
    DEFAULT_SERVER,
    OUT,
    TreeSampler,
    drop_databases,
    fmt,
    fresh_database,
    kill_children,
    median,
    on_signals_interrupt,
    resolve_lite2pg,
    run_measured,
    server_settings,
    tail,
)

DATA = BENCH / "data"  # git-ignored
DBNAME = "hb_scale"
MB = 1024 * 1024
# Rows per executemany and size check: under a MB of Python objects, and fine enough to
# stop within a few hundred kB of each table's share even for a 5 MB source.
CHUNK = 2_000
SMALL_SHARE = 0.05  # of the file, for accounts and for notes each; events fill the rest
EPOCH = datetime(2015, 1, 1)

SCHEMA = """
CREATE TABLE accounts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  email TEXT,
  plan TEXT,
  active BOOLEAN,
  created_at DATETIME
);
CREATE TABLE notes (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  account_id INTEGER REFERENCES accounts(id),
  body TEXT,
  created_at DATETIME
);
CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  account_id INTEGER NOT NULL REFERENCES accounts(id),
  kind TEXT NOT NULL,
  amount REAL,
  payload TEXT,
  created_at DATETIME NOT NULL
);
CREATE INDEX idx_events_account ON events(account_id);
"""

WORDS = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
    "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo",
    "sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "invoice",
    "order", "refund", "shipment", "login", "logout", "upgrade", "downgrade", "ticket",
)  # fmt: skip
KINDS = ("page_view", "click", "purchase", "refund", "login", "logout", "signup", "error")
PLANS = ("free", "pro", "team", "enterprise")


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choices(WORDS, k=words))


def _when(rng: random.Random) -> str:
    return (EPOCH + timedelta(seconds=rng.randrange(10 * 365 * 86400))).isoformat(" ")


def accounts(rng: random.Random, start: int) -> Iterator[tuple[Any, ...]]:
    i = start
    while True:
        i += 1
        name = f"{rng.choice(WORDS)}.{rng.choice(WORDS)}.{i}"
        yield (i, name, f"{name}@example.org", rng.choice(PLANS), rng.random() < 0.9, _when(rng))


def notes(rng: random.Random, n_accounts: int) -> Iterator[tuple[Any, ...]]:
    while True:
        yield (rng.randint(1, n_accounts), _text(rng, rng.randint(5, 40)), _when(rng))


def events(rng: random.Random, n_accounts: int) -> Iterator[tuple[Any, ...]]:
    while True:
        yield (
            rng.randint(1, n_accounts),
            rng.choice(KINDS),
            round(rng.uniform(-500, 5000), 2) if rng.random() < 0.7 else None,
            f'{{"ref": "{_text(rng, rng.randint(3, 25))}", "n": {rng.randrange(999)}}}',
            _when(rng),
        )


def _size(con: sqlite3.Connection) -> int:
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    return int(pages) * int(con.execute("PRAGMA page_size").fetchone()[0])


def _fill(
    con: sqlite3.Connection, insert: str, rows: Iterator[tuple[Any, ...]], until_bytes: int
) -> int:
    """Insert chunks of `rows` until the file reaches `until_bytes`; rows inserted."""
    n = 0
    while _size(con) < until_bytes:
        chunk = [next(rows) for _ in range(CHUNK)]
        con.executemany(insert, chunk)
        con.commit()
        n += len(chunk)
    return n


def source_path(size_mb: int, seed: int) -> Path:
    return DATA / f"scale-{size_mb}mb-s{seed}.db"


def build(size_mb: int, seed: int) -> Path:
    """Build (or reuse) the source of about `size_mb` MB; print its shares."""
    path = source_path(size_mb, seed)
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(DATA).free
    if free < size_mb * MB * 1.2:
        raise SystemExit(f"{DATA}: {free // MB:,} MB free, not enough for a {size_mb} MB source")
    partial = path.with_name(path.name + ".partial")  # never mistaken for a finished build
    partial.unlink(missing_ok=True)
    started = time.perf_counter()
    target = size_mb * MB
    rng = random.Random(seed)
    with closing(sqlite3.connect(partial)) as con:
        con.execute("PRAGMA journal_mode = OFF")
        con.execute("PRAGMA synchronous = OFF")
        con.executescript(SCHEMA)
        n_acc = _fill(
            con,
            "INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?)",
            accounts(rng, 0),
            int(target * SMALL_SHARE),
        )
        after_accounts = _size(con)
        n_notes = _fill(
            con,
            "INSERT INTO notes (account_id, body, created_at) VALUES (?, ?, ?)",
            notes(rng, n_acc),
            int(target * SMALL_SHARE * 2),
        )
        after_notes = _size(con)
        n_events = _fill(
            con,
            "INSERT INTO events (account_id, kind, amount, payload, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            events(rng, n_acc),
            target,
        )
        total = _size(con)
    partial.rename(path)
    print(
        f"built {path.name} in {time.perf_counter() - started:.0f} s: {total:,} bytes;"
        f" accounts {n_acc:,} rows ({after_accounts / total:.0%}), notes {n_notes:,} rows"
        f" ({(after_notes - after_accounts) / total:.0%}), events {n_events:,} rows"
        f" ({(total - after_notes) / total:.0%}, index included)",
        flush=True,
    )
    return path


def sqlite_counts(path: Path) -> dict[str, int]:
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as con:
        return {
            t: int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
            for t in ("accounts", "notes", "events")
        }


@dataclass
class Run:
    size_mb: int
    bytes: int
    rows: int
    round: int
    status: str = "ok"
    wall_s: float | None = None
    all_mb: float | None = None
    client_mb: float | None = None
    client_private_mb: float | None = None
    server_mb: float | None = None
    largest_mb: float | None = None
    top: dict[str, float] = field(default_factory=dict)
    note: str = ""


def run_one(
    lite2pg: str,
    path: Path,
    counts: dict[str, int],
    flags: list[str],
    server: str,
    work: Path,
    size_mb: int,
    rnd: int,
) -> Run:
    """One migrate of `path` into a fresh hb_scale."""
    r = Run(size_mb, path.stat().st_size, sum(counts.values()), rnd)
    url = fresh_database(server, DBNAME)
    run_dir = work / f"run-{size_mb}mb-r{rnd}"
    shutil.rmtree(run_dir, ignore_errors=True)
    log = work / "migrate.log"
    argv = [lite2pg, "migrate", str(path), "--target", url, "--run-dir", str(run_dir), "-q", *flags]
    try:
        with TreeSampler(server, [DBNAME]) as sampler:
            m = run_measured(argv, log, sampler=sampler)
        peaks = sampler.peaks()
        r.wall_s, r.largest_mb = m.wall_s, m.max_rss_mb
        r.client_mb = max(peaks.client_mb, m.max_rss_mb)
        r.all_mb = max(peaks.all_mb, r.client_mb)
        r.server_mb = peaks.server_mb
        r.client_private_mb, r.top = peaks.client_private_mb, peaks.top
        if m.code:
            r.status, r.note = "failed", f"exit {m.code}: {tail(log)}"
            return r
        with psycopg.connect(url, autocommit=True) as conn:
            for t, want in counts.items():
                row = conn.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", t))
                ).fetchone()
                if not row or row[0] != want:
                    r.status = "failed"
                    r.note += f"{t}: {row[0] if row else '?'}/{want} rows; "
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)  # a snapshot and CSV copies of the source
    return r


def fit(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares (intercept s, slope s per GB) of wall time against size."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    return my - slope * mx, slope


@dataclass
class SizeResult:
    """Medians of one source size's runs."""

    size_mb: int
    bytes: int
    rows: int
    wall_s: float | None
    s_per_gb: float | None
    all_mb: float | None
    client_mb: float | None
    client_private_mb: float | None
    server_mb: float | None
    largest_mb: float | None
    status: str
    top: dict[str, float]  # the processes of the median run with the highest peak RSS


def summarize(size_mb: int, mine: list[Run]) -> SizeResult:
    ok = [r for r in mine if r.status == "ok"]
    wall = median(r.wall_s for r in ok)
    return SizeResult(
        size_mb=size_mb,
        bytes=mine[0].bytes,
        rows=mine[0].rows,
        wall_s=wall,
        s_per_gb=wall / (mine[0].bytes / 1024**3) if wall else None,
        all_mb=median(r.all_mb for r in ok),
        client_mb=median(r.client_mb for r in ok),
        client_private_mb=median(r.client_private_mb for r in ok),
        server_mb=median(r.server_mb for r in ok),
        largest_mb=median(r.largest_mb for r in ok),
        status=f"{len(ok)}/{len(mine)} ok" + (f": {mine[0].note}" if mine[0].note else ""),
        top=sorted(ok, key=lambda r: r.wall_s or 0.0)[len(ok) // 2].top if ok else {},
    )


def judge(done: list[SizeResult]) -> tuple[str, tuple[float, float] | None]:
    """A sentence on linearity and flatness, and the fitted line (intercept, s per GB)."""
    line = fit([(s.bytes / 1024**3, s.wall_s or 0.0) for s in done])
    if line is None:
        return "Not enough sizes finished to judge.", None
    spg = [s.s_per_gb or 0.0 for s in done]
    mem = [s.all_mb or 0.0 for s in done]
    grew = done[-1].bytes / done[0].bytes
    return (
        f"Time: {line[1]:.1f} s per GB (least squares, intercept {line[0]:.1f} s); seconds"
        f" per GB from {min(spg):.1f} to {max(spg):.1f} (largest / smallest source:"
        f" {spg[-1] / spg[0]:.2f}). Memory: peak of all processes {min(mem):.0f} to"
        f" {max(mem):.0f} MB while the source grew {grew:.1f}x (largest / smallest source:"
        f" {mem[-1] / mem[0]:.2f})."
    ), line


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"### {report['date']}: time and memory against source size (bench/scale.py)",
        "",
        "```",
        report["command"],
        "```",
        "",
        f"lite2pg: {report['lite2pg']['path']} ({report['lite2pg']['source']}); flags:"
        f" `{' '.join(report['flags']) or '(none: artifacts and verify)'}`. Machine:"
        f" {report['machine']['cores']} cores, load average {report['machine']['load_start']:.2f}"
        f" at the start; PostgreSQL {report['postgres']['server_version']}. Median of"
        f" {report['rounds']} round(s) per size.",
        "",
        "| source | rows | wall s | s per GB | peak MB, all processes"
        " | client (private) / server MB | largest process MB | status |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in report["sizes"]:
        lines.append(
            f"| {s['bytes'] / MB:,.0f} MB | {s['rows']:,} | {fmt(s['wall_s'])}"
            f" | {fmt(s['s_per_gb'], '.1f')} | {fmt(s['all_mb'], '.0f')}"
            f" | {fmt(s['client_mb'], '.0f')} ({fmt(s['client_private_mb'], '.0f')})"
            f" / {fmt(s['server_mb'], '.0f')}"
            f" | {fmt(s['largest_mb'], '.0f')} | {s['status']} |"
        )
    lines += ["", report["verdict"]]
    if report["sizes"] and report["sizes"][-1]["top"]:
        last = report["sizes"][-1]
        lines += [
            "",
            f"Largest processes at {last['bytes'] / MB:,.0f} MB (peak VmRSS): "
            + "; ".join(f"`{k}` {v:.0f} MB" for k, v in last["top"].items())
            + ".",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    doc = __doc__ or ""
    ap = argparse.ArgumentParser(
        description=doc.splitlines()[0],
        epilog=doc.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--sizes", default="500,1500,5000", help="source sizes in MB, comma-separated")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=1, help="migrates per size (median kept)")
    ap.add_argument("--flags", default="", help="extra migrate flags, e.g. '--no-verify'")
    ap.add_argument("--lite2pg", help="lite2pg executable (default: the one on PATH)")
    ap.add_argument("--server", default=DEFAULT_SERVER, help="server URL (maintenance database)")
    ap.add_argument("--work", type=Path, help="run directories and log (default bench/out/...)")
    ap.add_argument("--build-only", action="store_true", help="build the sources, run nothing")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    sizes = sorted(int(s) for s in a.sizes.split(","))
    flags = shlex.split(a.flags)
    on_signals_interrupt()
    try:
        paths = {size: build(size, a.seed) for size in sizes}
    except KeyboardInterrupt:
        return 130
    if a.build_only:
        for p in paths.values():
            print(p)
        return 0
    lite2pg = resolve_lite2pg(a.lite2pg)
    work = a.work or OUT / f"scale-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    work.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()[0]
    pg = server_settings(a.server)
    print(f"lite2pg: {lite2pg.path} ({lite2pg.source}); logs: {work}", flush=True)
    runs: list[Run] = []
    try:
        for rnd in range(1, a.rounds + 1):
            for size in sizes:
                path = paths[size]
                r = run_one(
                    lite2pg.path, path, sqlite_counts(path), flags, a.server, work, size, rnd
                )
                runs.append(r)
                print(
                    f"round {rnd} {size:>6} MB ({r.bytes:,} bytes, {r.rows:,} rows) {r.status}"
                    f" wall {fmt(r.wall_s)} s peak {fmt(r.all_mb, '.0f')} MB (client"
                    f" {fmt(r.client_mb, '.0f')} + server {fmt(r.server_mb, '.0f')}; largest"
                    f" {fmt(r.largest_mb, '.0f')}) load {os.getloadavg()[0]:.2f}"
                    + (f"  {r.note}" if r.note else ""),
                    flush=True,
                )
    except KeyboardInterrupt as e:
        print(f"\ninterrupted ({e}): stopping lite2pg, dropping {DBNAME}", file=sys.stderr)
        kill_children()
        return 130
    finally:
        kill_children()
        drop_databases(a.server, [DBNAME])

    per_size = [summarize(size, [r for r in runs if r.size_mb == size]) for size in sizes]
    verdict, line = judge([s for s in per_size if s.wall_s is not None and s.all_mb is not None])
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": shlex.join(sys.orig_argv),
        "lite2pg": asdict(lite2pg),
        "flags": flags,
        "postgres": pg,
        "machine": {
            "cores": os.cpu_count(),
            "load_start": load_start,
            "load_end": os.getloadavg()[0],
        },
        "rounds": a.rounds,
        "sizes": [asdict(s) for s in per_size],
        "fit": {"intercept_s": line[0], "s_per_gb": line[1]} if line else None,
        "verdict": verdict,
        "runs": [asdict(r) for r in runs],
    }
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(report, indent=1) + "\n")
    print("\n" + markdown(report))
    return 0 if all(r.status == "ok" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
