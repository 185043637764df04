"""A migrate run reopened for verify: its options, the SQLite snapshot and a PostgreSQL
connection on one shared transaction snapshot."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from lite2pg import source
from lite2pg.errors import TargetError
from lite2pg.existing import existing_maps
from lite2pg.layout import Layout, create_maps
from lite2pg.rows import safe_filename
from lite2pg.rundir import SNAPSHOT_NAME, MigrateOptions, read_run_file
from lite2pg.schema import TableMap
from lite2pg.target import Target, connect
from lite2pg.verify._report import VerifyError


@dataclass
class _Run:
    run_dir: Path
    opts: MigrateOptions
    src: sqlite3.Connection
    pg: psycopg.Connection[Any]
    schema: source.SourceSchema
    layout: Layout
    maps: list[TableMap]
    # Source tables report.json says lost no row (none rejected, none filtered), read once.
    whole: frozenset[str] = frozenset()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.src.close()
        with contextlib.suppress(Exception):
            self.pg.close()


def _connect_snapshot(target: Target, pg_snapshot: str | None) -> psycopg.Connection[Any]:
    """A read-only REPEATABLE READ connection, on `pg_snapshot` when given, so that every
    process of one verify sees the same database state."""
    conn = connect(target)
    # Verify runs a process per core already: parallel plans would only oversubscribe.
    conn.execute("SET max_parallel_workers_per_gather = 0")
    # Rows come ORDER BY the primary key: walk its index. Without statistics (a table
    # just loaded, not yet analyzed) the planner prefers a scan and an on-disk sort, 3x
    # slower; sorts that remain (no such index) get memory enough to stay off disk.
    conn.execute("SET enable_sort = off")
    conn.execute("SET work_mem = '64MB'")
    # Canonical text of dates and times is ISO (the fast path compares it byte for byte);
    # JIT compiling the chunk queries costs more than it saves at this size.
    conn.execute("SET DateStyle = 'ISO, YMD'")
    # Doubles as their shortest exact text (the default from PostgreSQL 12, but a server
    # may set 0, which rounds to 15 digits): the fast path compares that text.
    conn.execute("SET extra_float_digits = 1")
    # A table scan returns rows in stored order, from the first page on, not joining a
    # scan already under way (the fast path for tables without a key compares that order).
    conn.execute("SET synchronize_seqscans = off")
    conn.execute("SET jit = off")
    conn.commit()
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    if pg_snapshot:
        try:
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(pg_snapshot)))
        except psycopg.errors.InvalidParameterValue:
            # The session that exported the snapshot is gone (its connection was lost).
            conn.close()
            raise TargetError(
                "lost the connection while verifying: its shared snapshot is gone",
                "nothing was changed; run lite2pg verify RUN again",
            ) from None
    return conn


def _open_run(run_dir: Path, target: Target, pg_snapshot: str | None) -> _Run:
    _, opts = read_run_file(run_dir)
    snap = run_dir / SNAPSHOT_NAME
    if not snap.is_file():
        raise VerifyError(str(run_dir), f"no {SNAPSHOT_NAME}", "verify a complete migrate run")
    src = source.open_readonly(snap)
    pg: psycopg.Connection[Any] | None = None
    try:
        pg = _connect_snapshot(target, pg_snapshot)
        schema = source.discover(src)
        layout = opts.layout(schema)
        if opts.data_only:
            maps = existing_maps(pg, opts.schema, opts.plan, layout.tables, layout.casts)
        else:
            maps, _ = create_maps(layout, opts.plan)
    except BaseException:
        src.close()
        if pg is not None:
            pg.close()
        raise
    return _Run(run_dir, opts, src, pg, schema, layout, maps, _taken_whole(run_dir))


def _key_columns(tm: TableMap) -> list[str]:
    if tm.source.primary_key and all(tm.has(c) for c in tm.source.primary_key):
        return [tm.target_of(c) for c in tm.source.primary_key]
    return []


def _safe(name: str) -> str:
    """The file name the run gave a table's rejects (rows.RejectSink)."""
    return safe_filename(name)


def _taken_whole(run_dir: Path) -> frozenset[str]:
    """Source tables report.json says lost no row (none rejected, none filtered)."""
    try:
        report = json.loads((run_dir / "report.json").read_text())
    except (OSError, ValueError):
        return frozenset()
    return frozenset(
        str(t["source"])
        for t in report.get("tables") or []
        if isinstance(t, dict) and not t.get("rejected") and not t.get("filtered")
    )
