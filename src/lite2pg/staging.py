"""Load tables side by side into a staging schema, then publish them in one transaction.

Each table is loaded by a worker process of its own (COPY FREEZE into a table created in the
same transaction), which then builds that table's keys and indexes while other workers are
still loading. Foreign keys follow once every table is in. Publishing moves every table into
the target schema with `ALTER TABLE ... SET SCHEMA` in one transaction: until then nothing
is visible in the target, and a failed run drops the staging schema and leaves the target
exactly as it was.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from lite2pg import intent, keys, source
from lite2pg.artifacts import FileInfo
from lite2pg.coerce import CITEXT
from lite2pg.errors import TargetError
from lite2pg.layout import Layout, create_maps, select_tables, table_plan
from lite2pg.load import PhaseResult, TableResult, load_table
from lite2pg.plan import Plan, orphan_named, orphan_policy, parse_plan
from lite2pg.rows import (
    GoneRows,
    RejectSink,
    RowStream,
    build_pipeline,
    gather_rejects,
    safe_filename,
)
from lite2pg.schema import TableMap, create_table_sql
from lite2pg.sinks import CopyFileSink, concatenate, copy_path
from lite2pg.target import Target, connect, lock_wait
from lite2pg.workers import context as forkserver_context
from lite2pg.workers import deferred_interrupts, ignore_interrupts, kill_pool

# Below this many rows in all, starting worker processes costs more than it saves.
PARALLEL_MIN_ROWS = 200_000

_WORKER_QUEUE: Any = None


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs to load one table (picklable: no open handles)."""

    snapshot: str
    dsn: str
    stage: str
    table: str
    wanted: tuple[str, ...] | None
    casts: dict[str, str]
    plan_text: str | None
    plan_origin: str
    batch_size: int
    run_dir: str
    gone: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    # A big table is loaded in parts by several workers: each part streams the rows its
    # `scope` selects into a table created beforehand; a last job builds the keys.
    part: int = -1
    scope: str | None = None
    keys_only: bool = False
    taken: tuple[str, ...] = ()  # relation names the target schema holds (see taken_names)
    names: str = "fold"  # Layout.names
    citext: str | None = CITEXT.sql  # Layout.citext
    artifacts: bool = False  # keep what COPY sent as transformed/<table>.copy (sinks.py)
    # False: the FKs the plan does not name are checked after the load, in PostgreSQL
    # (run_staged), not row by row here.
    unnamed_orphans: bool = True


@dataclass
class JobOutcome:
    """What a worker did: the load, the keys it built, and the keys of rows it rejected."""

    result: TableResult | None
    phases: list[PhaseResult]
    gone: dict[str, list[tuple[Any, ...]]]
    copy_file: FileInfo | None = None  # the COPY data kept (JobSpec.artifacts)


def stage_name(schema: str) -> str:
    """The staging schema of a target schema (one at a time, under the advisory lock)."""
    return "lite2pg_stage_" + hashlib.sha256(schema.encode()).hexdigest()[:12]


def _init_worker(q: Any) -> None:
    global _WORKER_QUEUE
    ignore_interrupts()
    _WORKER_QUEUE = q


def table_job(spec: JobSpec, progress: Any = None) -> JobOutcome:
    """Load one table into the staging schema and build its keys (runs in a worker)."""
    q = progress if progress is not None else _WORKER_QUEUE
    plan = parse_plan(spec.plan_text, origin=spec.plan_origin) if spec.plan_text else None
    src = source.open_readonly(Path(spec.snapshot))
    conn = connect(Target(spec.dsn, "--target"))
    suffix = f".part{spec.part}" if spec.part >= 0 else ""
    rejects = RejectSink(Path(spec.run_dir) / "rejects", suffix)
    try:
        schema = source.discover(src)
        layout = select_tables(
            schema, spec.wanted, plan, spec.casts, names=spec.names, citext=spec.citext
        )
        maps, names = create_maps(layout, plan, spec.taken)
        tm = next(m for m in maps if m.source.name == spec.table)
        if spec.keys_only:
            conn.autocommit = True
            phases = keys.finish_table(conn, spec.stage, tm, names)
            return JobOutcome(None, phases, {})
        gone = GoneRows(src, layout.tables)
        gone.load(spec.gone)
        for t in layout.skipped:
            gone.record_where_not(t, None)
        for t in layout.tables:
            tp_parent = table_plan(plan, t.name)
            if t.name != spec.table and tp_parent is not None and tp_parent.where:
                gone.record_where_not(t, tp_parent.where)
        tp = table_plan(plan, tm.source.name)
        pipeline = build_pipeline(tm, tp, gone, unnamed_orphans=spec.unnamed_orphans)

        def report(table: str, done: int) -> None:
            if q is not None:
                q.put((table, spec.part, done))

        def stream(careful: bool) -> RowStream:
            return RowStream(
                src,
                pipeline,
                rejects,
                run_dir=Path(spec.run_dir),
                progress=report,
                batch_size=spec.batch_size,
                gone=gone,
                careful=careful,
                scope=spec.scope,
            )

        def create(cur: psycopg.Cursor[Any]) -> bool:
            if spec.part >= 0:
                return False  # created beforehand, shared with the other parts
            cur.execute(create_table_sql(tm, spec.stage))
            return True  # created in this subtransaction: COPY FREEZE is allowed

        tee = (
            CopyFileSink(copy_path(Path(spec.run_dir), spec.table, spec.part))
            if spec.artifacts
            else None
        )
        try:
            with conn.transaction():
                result = load_table(conn, tm, spec.stage, rejects, stream, prepare=create, tee=tee)
        except BaseException:
            if tee is not None:
                tee.abort()
            raise
        kept = tee.close() if tee is not None else None
        if spec.part >= 0:
            return JobOutcome(result, [], dict(gone.recorded), kept)
        conn.autocommit = True
        phases = keys.finish_table(conn, spec.stage, tm, names)
        return JobOutcome(result, phases, dict(gone.recorded), kept)
    finally:
        rejects.close()
        conn.close()
        src.close()


def run_staged(
    conn: psycopg.Connection[Any],
    target: Target,
    snapshot: Path,
    schema: source.SourceSchema,
    plan: Plan | None,
    wanted: tuple[str, ...] | None,
    casts: dict[str, str],
    dest: str,
    *,
    names: str = "fold",
    citext: str | None = CITEXT.sql,
    sizes: dict[str, int],
    drop: bool,
    batch_size: int,
    run_dir: Path,
    on_start: Callable[[str], None],
    on_progress: Callable[[str, int], None],
    on_done: Callable[[TableResult], None],
    on_phase: Callable[[str], None],
    kept: dict[str, FileInfo] | None = None,
) -> tuple[list[TableResult], list[PhaseResult], list[TableMap]]:
    """Load every table into staging in parallel, add foreign keys, publish atomically.

    `sizes` gives the rows of each source table (the caller counted them already). With
    `kept`, each table's COPY data is kept as transformed/<table>.copy and `kept` gets
    its file, by source table."""
    layout = select_tables(schema, wanted, plan, casts, names=names, citext=citext)
    maps, key_names, taken = staged_maps(conn, dest, layout, plan)
    check_absent(conn, dest, maps, drop=drop, now=False)
    stage = open_stage(conn, dest)
    try:
        # Foreign keys the plan does not name (the default policy, reject) are checked once
        # every table is in, in PostgreSQL: most sources have no orphans, and their tables
        # then load side by side with no check per row. Tables that have some (and those
        # that reference them) are loaded again, checking row by row.
        gone: dict[str, list[tuple[Any, ...]]] = {}
        results, phases = _load_all(
            target, snapshot, plan, wanted, casts, stage, maps, sizes, batch_size, run_dir,
            on_start, on_progress, on_done, taken, naming=(names, citext), kept=kept,
            unnamed_orphans=False, gone=gone,
        )  # fmt: skip
        again = _with_children(_orphaned(conn, stage, maps, plan), maps)
        if again:
            on_phase(f"orphans: loading {', '.join(sorted(again))} again, checking each row")
            for tm in maps:
                if tm.source.name in again:
                    conn.execute(
                        sql.SQL("DROP TABLE IF EXISTS {}.{} CASCADE").format(
                            sql.Identifier(stage), sql.Identifier(tm.target)
                        )
                    )
            kept_gone = {k: v for k, v in gone.items() if k not in again}
            redo, redo_phases = _load_all(
                target, snapshot, plan, wanted, casts, stage,
                [tm for tm in maps if tm.source.name in again], sizes, batch_size, run_dir,
                on_start, on_progress, on_done, taken, naming=(names, citext), kept=kept,
                gone=kept_gone,
            )  # fmt: skip
            results = [r for r in results if r.source not in again] + redo
            phases = phases + redo_phases
        on_phase("foreign keys")
        phases.append(
            keys.build_foreign_keys(
                conn, stage, maps, key_names, connect_more=lambda: connect(target, autocommit=True)
            )
        )
        on_phase("publish")
        phases.append(publish(conn, stage, dest, maps, schema.views, drop=drop, run_dir=run_dir))
    except BaseException:
        drop_stage(conn, stage)
        raise
    order = {tm.source.name: i for i, tm in enumerate(maps)}
    results.sort(key=lambda r: order[r.source])
    return results, phases, maps


def _orphaned(
    conn: psycopg.Connection[Any], stage: str, maps: Sequence[TableMap], plan: Plan | None
) -> set[str]:
    """Tables of the stage with a row whose reference the plan does not name finds no
    parent row in the stage (a parent missing, rejected or not loaded)."""
    by_name = {tm.source.name.lower(): tm for tm in maps}
    out: set[str] = set()
    for tm in maps:
        tp = table_plan(plan, tm.source.name)
        for fk in tm.source.foreign_keys:
            if orphan_named(tp, fk.columns) or orphan_policy(tp, fk.columns) == "keep":
                continue
            if not fk.parent_found or not all(tm.has(c) for c in fk.columns):
                continue
            child = sql.Identifier(stage, tm.target)
            cols = [sql.Identifier(tm.target_of(c)) for c in fk.columns]
            present = sql.SQL(" AND ").join(sql.SQL("c.{} IS NOT NULL").format(c) for c in cols)
            parent = by_name.get(fk.ref_table.lower())
            if parent is None or not all(parent.has(c) for c in fk.ref_columns):
                query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {} c WHERE {})").format(
                    child, present
                )
            else:
                match = sql.SQL(" AND ").join(
                    sql.SQL("p.{} = c.{}").format(sql.Identifier(parent.target_of(r)), c)
                    for r, c in zip(fk.ref_columns, cols, strict=True)
                )
                query = sql.SQL(
                    "SELECT EXISTS (SELECT 1 FROM {} c WHERE {} AND NOT EXISTS "
                    "(SELECT 1 FROM {} p WHERE {}))"
                ).format(child, present, sql.Identifier(stage, parent.target), match)
            row = conn.execute(query).fetchone()
            if row is not None and row[0]:
                out.add(tm.source.name)
    return out


def _with_children(names: set[str], maps: Sequence[TableMap]) -> set[str]:
    """`names` and every table that references one of them, directly or not (their rows
    may lose a parent when those tables are loaded again, checking)."""
    out = set(names)
    grew = bool(out)
    while grew:
        grew = False
        for tm in maps:
            if tm.source.name in out:
                continue
            if any(
                fk.ref_table.lower() in {n.lower() for n in out} for fk in tm.source.foreign_keys
            ):
                out.add(tm.source.name)
                grew = True
    return out


def staged_maps(
    conn: psycopg.Connection[Any], dest: str, layout: Layout, plan: Plan | None
) -> tuple[list[TableMap], keys.KeyNames, tuple[str, ...]]:
    """Table maps and key names for a load into `dest`, and the relation names there that
    key and index names avoid: the tables move into `dest` with their indexes."""
    maps, names = create_maps(layout, plan)
    taken = taken_names(conn, dest, [tm.target for tm in maps])
    if taken:
        maps, names = create_maps(layout, plan, taken)
    return maps, names, taken


def taken_names(conn: psycopg.Connection[Any], dest: str, tables: Sequence[str]) -> tuple[str, ...]:
    """Names of the relations in `dest`, but for `tables` (the run refuses or replaces
    them) and their indexes and sequences, which go with them."""
    rows = conn.execute(
        """
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %(dest)s
          AND NOT (c.relkind IN ('r', 'p') AND c.relname = ANY(%(tables)s))
          AND NOT EXISTS (
            SELECT 1 FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
            WHERE i.indexrelid = c.oid AND t.relname = ANY(%(tables)s))
          AND NOT EXISTS (  -- identity and serial sequences
            SELECT 1 FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid
            WHERE c.relkind = 'S' AND d.classid = 'pg_class'::regclass AND d.objid = c.oid
              AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
              AND t.relnamespace = n.oid AND t.relname = ANY(%(tables)s))
        ORDER BY 1
        """,
        {"dest": dest, "tables": list(tables)},
    ).fetchall()
    return tuple(str(r[0]) for r in rows)


def open_stage(conn: psycopg.Connection[Any], dest: str) -> str:
    """A fresh staging schema for `dest`; a stale one (a killed run's) is dropped first."""
    stage = stage_name(dest)
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(stage)))
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(stage)))
    return stage


PUBLISH = "publish"  # the intent kind (intent.py)
PUBLISH_STEPS = [
    "postgresql: the staged tables into the target schema, in one transaction",
    "run directory: the journal and report.json",
]


def publish(
    conn: psycopg.Connection[Any],
    stage: str,
    dest: str,
    maps: list[TableMap],
    views: Sequence[source.Skipped],
    *,
    drop: bool,
    run_dir: Path | None = None,
) -> PhaseResult:
    """In one transaction: every staged table into the target schema, then the views.

    With `run_dir`, the publish intent is written first and the transaction's id recorded
    in it before COMMIT (intent.py); the caller finishes it (`publish_done`) once the run's
    journal and report say what was published.
    """
    started = (
        intent.begin(
            run_dir, PUBLISH, PUBLISH_STEPS, schema=dest, stage=stage,
            tables=[tm.target for tm in maps],
        )
        if run_dir is not None
        else None
    )  # fmt: skip
    try:
        views_phase = _publish(conn, stage, dest, maps, views, drop=drop, run_dir=run_dir,
                               started=started)  # fmt: skip
    except BaseException:
        if started is not None and run_dir is not None and started.xid is None:
            intent.finish(run_dir, started, "failed before COMMIT: nothing was published")
        raise  # past COMMIT's start, the outcome is the server's: recovery asks it
    return views_phase


def _publish(
    conn: psycopg.Connection[Any],
    stage: str,
    dest: str,
    maps: list[TableMap],
    views: Sequence[source.Skipped],
    *,
    drop: bool,
    run_dir: Path | None,
    started: intent.Intent | None,
) -> PhaseResult:
    with conn.transaction():
        lock_wait(conn)  # an app's open transaction on a table --drop replaces
        check_absent(conn, dest, maps, drop=drop, now=True)
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(dest)))
        for tm in maps:
            conn.execute(
                sql.SQL("ALTER TABLE {}.{} SET SCHEMA {}").format(
                    sql.Identifier(stage), sql.Identifier(tm.target), sql.Identifier(dest)
                )
            )
        conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(dest)))
        views_phase = keys.create_views(conn, dest, views, maps)
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(stage)))
        if started is not None and run_dir is not None:
            intent.mark_commit(conn, run_dir, started)
    return views_phase


def publish_done(run_dir: Path) -> None:
    """The done record of a publish, once the journal and report.json say what it did."""
    found = intent.read(run_dir, PUBLISH)
    if found is not None and found.state == intent.STARTED:
        intent.finish(run_dir, found, "done")


def drop_stage(conn: psycopg.Connection[Any], stage: str) -> None:
    # Best effort: the next run drops a stale staging schema before it starts.
    with contextlib.suppress(psycopg.Error):
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(stage)))


def _load_all(
    target: Target,
    snapshot: Path,
    plan: Plan | None,
    wanted: tuple[str, ...] | None,
    casts: dict[str, str],
    stage: str,
    maps: list[TableMap],
    sizes: dict[str, int],
    batch_size: int,
    run_dir: Path,
    on_start: Callable[[str], None],
    on_progress: Callable[[str, int], None],
    on_done: Callable[[TableResult], None],
    taken: tuple[str, ...] = (),
    *,
    naming: tuple[str, str | None] = ("fold", CITEXT.sql),  # Layout.names, Layout.citext
    kept: dict[str, FileInfo] | None = None,
    unnamed_orphans: bool = True,
    gone: dict[str, list[tuple[Any, ...]]] | None = None,
) -> tuple[list[TableResult], list[PhaseResult]]:
    """Run a job per table, largest first, each as soon as the tables it references are in
    (their rejected rows decide which of its references are orphans). A table much larger
    than the rest is loaded in parts by every worker, then its keys are built.

    `unnamed_orphans=False`: only the FKs the plan names are checked row by row (and make
    a table wait for its parents); `gone` holds the keys of rows rejected before, and gets
    those rejected now."""
    by_name = {tm.source.name: tm for tm in maps}
    waits_for: dict[str, set[str]] = {}
    for tm in maps:
        tp = table_plan(plan, tm.source.name)
        parents = set()
        for fk in tm.source.foreign_keys:
            parent = next((n for n in by_name if n.lower() == fk.ref_table.lower()), None)
            checked = unnamed_orphans or orphan_named(tp, fk.columns)
            if (
                parent
                and parent != tm.source.name
                and checked
                and orphan_policy(tp, fk.columns) != "keep"
            ):
                parents.add(parent)
        waits_for[tm.source.name] = parents
    _break_cycles(waits_for)

    hashing = {
        tm.source.name
        for tm in maps
        if (tp := table_plan(plan, tm.source.name)) is not None
        and any(c.password is not None for c in tp.columns.values())
    }
    workers = min(os.cpu_count() or 1, max(len(maps), 2))
    parallel = workers > 1 and sum(sizes.values()) >= PARALLEL_MIN_ROWS
    parts = _parts(snapshot, maps, sizes, workers, hashing) if parallel else {}
    # Workers fork from a server that has imported lite2pg once, instead of each
    # importing it (and psycopg) again.
    mp = forkserver_context()
    progress_q: Any = mp.SimpleQueue() if parallel else queue.SimpleQueue()
    procs = (
        concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=mp, initializer=_init_worker, initargs=(progress_q,)
        )
        if parallel
        else None
    )
    # Tables whose passwords are hashed run here: the hasher has a process pool of its own.
    threads = concurrent.futures.ThreadPoolExecutor(1)
    gone = gone if gone is not None else {}
    done: set[str] = set()
    running: dict[concurrent.futures.Future[JobOutcome], tuple[str, int]] = {}
    partial: dict[str, list[TableResult]] = {}
    partial_files: dict[str, dict[int, FileInfo]] = {}
    results: list[TableResult] = []
    phase_parts: list[list[PhaseResult]] = []
    todo = sorted(by_name, key=lambda n: -sizes[n])
    stop = threading.Event()
    seen: dict[tuple[str, int], int] = {}

    def drain() -> None:
        while not stop.is_set():
            try:
                item = progress_q.get() if parallel else progress_q.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is None:
                return
            table, part, count = item
            seen[(table, part)] = count
            on_progress(table, sum(v for (t, _), v in seen.items() if t == table))

    def spec(name: str, **kw: Any) -> JobSpec:
        return JobSpec(
            snapshot=str(snapshot),
            dsn=target.dsn,
            stage=stage,
            table=name,
            wanted=wanted,
            casts=casts,
            plan_text=plan.text if plan is not None else None,
            plan_origin=plan.origin if plan is not None else "",
            batch_size=batch_size,
            run_dir=str(run_dir),
            gone=dict(gone),
            taken=taken,
            names=naming[0],
            citext=naming[1],
            artifacts=kept is not None,
            unnamed_orphans=unnamed_orphans,
            **kw,
        )

    drainer = threading.Thread(target=drain, name="lite2pg-progress", daemon=True)
    drainer.start()
    killed = False
    try:
        if parts:
            with connect(target, autocommit=True) as conn:
                for name in parts:
                    conn.execute(create_table_sql(by_name[name], stage))
        while todo or running:
            with deferred_interrupts():  # a submit may start a worker process
                for name in [n for n in todo if waits_for[n] <= done]:
                    todo.remove(name)
                    on_start(name)
                    if name in parts:
                        partial[name] = []
                        for k, scope in enumerate(parts[name]):
                            job = spec(name, part=k, scope=scope)
                            assert procs is not None
                            running[procs.submit(table_job, job)] = (name, k)
                    elif procs is not None and name not in hashing:
                        running[procs.submit(table_job, spec(name))] = (name, -1)
                    else:
                        running[threads.submit(table_job, spec(name), progress_q)] = (name, -1)
            if not running:
                raise TargetError("tables wait on each other in a cycle", "report this bug")
            finished, _ = concurrent.futures.wait(
                running, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for future in finished:
                name, part = running.pop(future)
                outcome = future.result()  # re-raises a worker's failure here
                for key, values in outcome.gone.items():
                    gone.setdefault(key, []).extend(values)
                phase_parts.append(outcome.phases)
                if kept is not None and outcome.copy_file is not None:
                    if part >= 0:
                        partial_files.setdefault(name, {})[part] = outcome.copy_file
                    else:
                        kept[name] = outcome.copy_file
                if part >= 0 and outcome.result is not None:
                    partial[name].append(outcome.result)
                    if len(partial[name]) == len(parts[name]):
                        assert procs is not None
                        with deferred_interrupts():
                            keys_job = procs.submit(table_job, spec(name, keys_only=True))
                        running[keys_job] = (name, -2)
                    continue
                if part == -2:
                    result = _merge(partial[name], run_dir)
                    if kept is not None:
                        pieces = partial_files.pop(name)
                        kept[name] = concatenate(
                            [pieces[k] for k in sorted(pieces)], copy_path(run_dir, name)
                        )
                else:
                    assert outcome.result is not None
                    result = outcome.result
                done.add(name)
                results.append(result)
                on_done(result)
    except BaseException:
        for future in running:
            future.cancel()
        # A failed or interrupted run stops at once: the other tables' COPY roll back.
        # A worker killed in the middle of a progress report may hold the queue's lock:
        # the drainer (a daemon thread) is left to the process's end, never waited on.
        killed = procs is not None
        kill_pool(procs)
        raise
    finally:
        stop.set()
        if not killed:
            progress_q.put(None)
            drainer.join(timeout=5)
        threads.shutdown(wait=True, cancel_futures=True)
        if procs is not None and not killed:
            procs.shutdown(wait=True, cancel_futures=True)
    return results, keys.merge_phases(phase_parts)


# A table gets split when it holds more than this share of all rows: the other workers
# would otherwise sit idle while it loads alone.
SPLIT_SHARE = 0.4
SPLIT_MIN_ROWS = 500_000
PARTS_PER_WORKER = 2


def _parts(
    snapshot: Path,
    maps: list[TableMap],
    sizes: dict[str, int],
    workers: int,
    hashing: set[str],
) -> dict[str, list[str]]:
    """Rowid ranges (SQL conditions) for each table worth loading in parts."""
    total = sum(sizes.values())
    out: dict[str, list[str]] = {}
    src = source.open_readonly(snapshot)
    try:
        for tm in maps:
            name = tm.source.name
            rows = sizes[name]
            if (
                name in hashing
                or tm.source.without_rowid
                or rows < SPLIT_MIN_ROWS
                or rows < SPLIT_SHARE * total
            ):
                continue
            lo, hi = src.execute(
                f"SELECT min(_rowid_), max(_rowid_) FROM {source.quote_ident(name)}"
            ).fetchone()
            # Twice as many parts as workers: whichever worker is free takes the next one,
            # so the tables and parts even out across workers.
            count = PARTS_PER_WORKER * workers
            if lo is None or hi is None or hi - lo < count:
                continue
            step = (hi - lo + 1) // count
            bounds = [lo + k * step for k in range(count)] + [hi + 1]
            out[name] = [
                f"_rowid_ >= {bounds[k]} AND _rowid_ < {bounds[k + 1]}" for k in range(count)
            ]
    finally:
        src.close()
    return out


def _merge(parts: list[TableResult], run_dir: Path) -> TableResult:
    """One table's result from its parts; their rejects files become one."""
    first = parts[0]
    merged = TableResult(first.source, first.target)
    for r in parts:
        merged.read += r.read
        merged.loaded += r.loaded
        merged.rejected += r.rejected
        merged.filtered += r.filtered
        merged.bytes = max(merged.bytes, r.bytes)
        merged.seconds = max(merged.seconds, r.seconds)
        merged.careful = merged.careful or r.careful
        merged.notes.extend(n for n in r.notes if n not in merged.notes)
    rejects = run_dir / "rejects"
    name = safe_filename(first.source)
    pieces = sorted(rejects.glob(f"{name}.part*.jsonl")) if rejects.is_dir() else []
    gather_rejects(rejects / f"{name}.jsonl", pieces, append=False)
    return merged


def _break_cycles(waits_for: dict[str, set[str]]) -> None:
    """Drop dependencies that close a cycle, so every table can start eventually."""
    state: dict[str, int] = {}

    def visit(n: str) -> None:
        state[n] = 1
        for p in list(waits_for[n]):
            if state.get(p) == 1:
                waits_for[n].discard(p)
            elif p not in state:
                visit(p)
        state[n] = 2

    for n in list(waits_for):
        if n not in state:
            visit(n)


def check_absent(
    conn: psycopg.Connection[Any], schema: str, maps: list[TableMap], *, drop: bool, now: bool
) -> None:
    """Refuse target tables that the run would create; with `drop` and `now`, drop them."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r','p','v','m','f')",
            (schema,),
        )
        existing = {str(r[0]) for r in cur.fetchall()}
        clash = [tm.target for tm in maps if tm.target in existing]
        if clash and not drop:
            raise TargetError(
                f"table {clash[0]!r} already exists in schema {schema!r}"
                + (f" (and {len(clash) - 1} more)" if len(clash) > 1 else ""),
                "use --data-only to load into the existing tables, or --drop to replace them",
            )
        if clash and now:
            for name in clash:
                cur.execute(
                    sql.SQL("DROP TABLE {}.{} CASCADE").format(
                        sql.Identifier(schema), sql.Identifier(name)
                    )
                )
