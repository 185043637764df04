"""A migrate run: run directory, snapshot, schema, load, keys, report; stages in order.

Tables that lite2pg creates are loaded side by side into a staging schema and published in
one transaction (staging.py); loads into the app's existing tables run in one transaction
(existing.py). Either way a run that fails leaves the target exactly as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg import sql

from lite2pg import capture, caseless, evidence, intent, quarantine, source, workers
from lite2pg.artifacts import MANIFEST_NAME, FileInfo, Journal, Manifest, write_manifest
from lite2pg.errors import Interrupted, Lite2pgError, TargetError, file_errors
from lite2pg.exclude import exclude_tables
from lite2pg.existing import prepare_schema, run_in_place, target_types
from lite2pg.export import ExportJob, record_tables, start_export, tables_to_export
from lite2pg.layout import Layout, create_maps
from lite2pg.ledger import ledger, summary_lines
from lite2pg.load import PhaseResult, TableResult
from lite2pg.profiles import TargetTypes, resolve
from lite2pg.report import RunReport, StageClock
from lite2pg.report_html import write_html
from lite2pg.rundir import (
    RUN_FILE,
    RUNS_DIR,
    SNAPSHOT_NAME,
    MigrateOptions,
    new_run_dir,
    new_run_id,
    read_run_file,
    write_run_file,
)
from lite2pg.runtarget import record_target
from lite2pg.schema import TableMap
from lite2pg.staging import PUBLISH, PUBLISH_STEPS, check_absent, publish_done, run_staged
from lite2pg.target import Target, citext_type, connect, server_failure

# The run-directory names are re-exported: `lite2pg.run` is the library's entry point.
__all__ = [
    "RUNS_DIR",
    "RUN_FILE",
    "SNAPSHOT_NAME",
    "MigrateOptions",
    "ProgressSink",
    "migrate",
    "new_run_dir",
    "prepare_schema",
    "read_run_file",
    "write_run_file",
]


class ProgressSink(Protocol):
    """What a front end implements to show progress."""

    def start_table(self, name: str, total: int) -> None: ...
    def advance(self, name: str, done: int) -> None: ...
    def end_table(self, result: TableResult) -> None: ...
    def phase(self, name: str) -> None: ...
    def step(self, stage: str, name: str, done: int, total: int) -> None:
        """Rows `done` of `total` of table `name` in a stage beside the load (export)."""


@file_errors
def migrate(
    source_path: Path,
    target: Target,
    options: MigrateOptions | None = None,
    progress: ProgressSink | None = None,
) -> RunReport:
    """Copy every table of a SQLite database into PostgreSQL and return the report."""
    opts = options or MigrateOptions()
    source.check_sqlite_file(source_path)
    # Before a file is written or a row read: the target answers and lets the run work.
    # The run goes on in that session (it holds the schema's lock from then on).
    conn = preflight(target, opts)
    try:
        if not opts.data_only and not opts.drop:
            refuse_existing_tables(conn, source_path, target, opts)
        return _migrate(conn, source_path, target, opts, progress)
    finally:
        conn.close()


def _migrate(
    conn: psycopg.Connection[Any],
    source_path: Path,
    target: Target,
    opts: MigrateOptions,
    progress: ProgressSink | None,
) -> RunReport:
    run_dir = opts.run_dir or new_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    opts = dataclasses.replace(opts, run_id=new_run_id())  # a new snapshot: a new run
    workers.start_early()
    clock = StageClock()
    clock.mark("snapshot")  # from the start: the run file and journal come with it
    started = clock.started
    report = RunReport(
        source=str(source_path),
        target=target.display,
        schema=opts.schema,
        run_dir=str(run_dir),
        mode="data-only" if opts.data_only else "create",
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    evidence.new_key(run_dir)  # a new run: a new key for its evidence record
    write_run_file(run_dir, source_path, opts)
    record_target(run_dir, target)
    journal = Journal(run_dir)
    _clear_artifacts(run_dir)
    stages = ("export", "transform", "load") if opts.keep_artifacts else ("load",)
    for stage in stages:
        journal.set_stage(stage, "running")
    snap = run_dir / SNAPSHOT_NAME
    snap.unlink(missing_ok=True)
    if progress:
        progress.phase("snapshot")
    snap_started = time.perf_counter()
    source.snapshot(source_path, snap)
    # A prepared source: where the snapshot stands in the change log (sync starts there).
    capture.write_capture_file(run_dir, snap)
    report.phases.append(PhaseResult("snapshot", 1, 0, time.perf_counter() - snap_started))
    # The evidence record pins the snapshot's SHA-256: the export thread hashes it when
    # artifacts are kept, else a thread beside the load (hashlib releases the GIL).
    snap_hash = None if opts.keep_artifacts else _Hashing(snap)
    src = source.open_readonly(snap)
    exporting: ExportJob | None = None
    events: _Events | None = None
    schema_made = False
    clock.mark("prepare")
    try:
        schema = source.discover(src)
        opts = apply_profile(opts, src, schema, target)
        write_run_file(run_dir, source_path, opts)
        report.profile = opts.applied_profile
        wanted = tuple(opts.tables) if opts.tables else None
        layout = opts.layout(schema)
        # Before a row moves: what the plan drops and rewrites (a plan that would let
        # deactivated accounts log in stops here).
        entries = ledger(src, layout.tables, opts.plan)
        report.ledger = [e.as_dict() for e in entries]
        report.ledger_lines = summary_lines(entries)
        try:
            try:
                if not opts.data_only:
                    opts = keep_nocase(conn, src, schema, opts)
                    write_run_file(run_dir, source_path, opts)
                    layout = opts.layout(schema)
                schema_made = create_schema(conn, opts.schema)
            except psycopg.OperationalError as e:  # nothing written yet
                raise server_failure(e, "preparing the target schema") from None
            counts = {t.name: source.count_rows(src, t.name) for t in layout.tables}
            # The artifacts are sinks of the one pipeline: the export CSVs are written by a
            # background process while the tables load, the transformed files are the COPY
            # data itself (sinks.py). The run waits for the export before publishing.
            kept: dict[str, FileInfo] | None = None
            to_export = tables_to_export(layout.tables, opts.plan)
            if opts.keep_artifacts:
                kept = {}
                exporting = start_export(
                    snap, source_path, to_export, run_dir, sizes=counts,
                    progress=(
                        None if progress is None
                        else functools.partial(progress.step, "export")
                    ),
                )  # fmt: skip

            def before_publish() -> None:
                # A snapshot that fails its page-by-page check is never published from.
                if exporting is not None:
                    exporting.checked()

            events = _Events(progress, counts, before_publish, clock)
            clock.mark("load")
            try:
                if opts.data_only:

                    def committing() -> None:
                        assert events is not None
                        events.committing()
                        # The load's one transaction is the publish: its intent (with
                        # the transaction's id) is durable before COMMIT (intent.py).
                        pub = intent.begin(
                            run_dir, PUBLISH, PUBLISH_STEPS, schema=opts.schema, stage=None,
                            tables=[t.name for t in layout.tables],
                        )  # fmt: skip
                        intent.mark_commit(conn, run_dir, pub)

                    results, phases, maps = run_in_place(
                        conn, src, layout, opts.plan, opts.schema,
                        truncate_first=opts.truncate, batch_size=opts.batch_size,
                        run_dir=run_dir, on_start=events.start, on_progress=events.advance,
                        on_done=events.done, kept=kept, before_commit=committing,
                    )  # fmt: skip
                else:
                    results, phases, maps = run_staged(
                        conn, target, snap, schema, opts.plan, wanted, opts.casts, opts.schema,
                        names=layout.names, citext=layout.citext,
                        sizes=counts, drop=opts.drop, batch_size=opts.batch_size,
                        run_dir=run_dir,
                        on_start=events.start, on_progress=events.advance,
                        on_done=events.done, on_phase=events.phase, kept=kept,
                    )  # fmt: skip
            except psycopg.OperationalError as e:
                raise server_failure(e, "loading") from None
            except psycopg.errors.InsufficientPrivilege as e:
                raise denied(e) from None
        finally:
            conn.close()
    except BaseException as e:
        if exporting is not None:
            exporting.cancel()
        # Past the start of publish, its commit may have happened: nothing is removed then.
        published = events is not None and events.publishing
        if isinstance(e, sqlite3.DatabaseError):  # a damaged page met while reading rows
            reason = "the source could not be read"
        elif isinstance(e, KeyboardInterrupt):
            reason = "interrupted (Ctrl-C)" + ("" if published else "; nothing was published")
        else:
            reason = str(e).splitlines()[0] if str(e) else repr(e)
        _journal_failed(journal, stages, reason)
        if not published:
            if schema_made:
                drop_empty_schema(target, opts.schema)
            if not opts.keep_failed:
                _discard_copies(run_dir)
        if isinstance(e, sqlite3.DatabaseError):
            raise source.source_error(source_path, e, "reading rows") from None
        if isinstance(e, KeyboardInterrupt):
            if published:
                raise Interrupted(
                    "while publishing: the tables may or may not have been published",
                    f"lite2pg status {run_dir} tells; then run the same command again "
                    "(with --drop if they are there)",
                ) from None
            raise Interrupted(
                "nothing was published; PostgreSQL is as it was",
                "run the same command again",
            ) from None
        raise
    finally:
        src.close()
    report.tables = results
    report.phases.extend(phases)
    clock.mark("report")
    close_report(report, run_dir, started, schema, layout, maps, phases)
    journal.set_stage("load", "done")
    publish_done(run_dir)  # the publish intent's done record: the report says what it did
    if report.rejects_dir:
        keep_rejected(report, run_dir, target, opts.run_id or run_dir.name)
    manifest = Manifest(files={}, tables={})
    try:
        if exporting is not None and kept is not None:
            record_tables(manifest, run_dir, [exporting.checked()], layout.tables, to_export)
            for info in kept.values():
                manifest.add(run_dir, info)
            manifest.tables["_transform"] = {
                "counts": {
                    r.source: {"read": r.read, "rejected": r.rejected, "filtered": r.filtered}
                    for r in results
                },
                "format": "copy",
            }
            write_manifest(run_dir, manifest)
            journal.set_stage("transform", "done")
        snap_sha = (
            exporting.checked().sha256 if exporting is not None
            else snap_hash.result() if snap_hash is not None else None
        )  # fmt: skip
        evidence.write_evidence(run_dir, "migrate", snap_sha)
        if opts.verify:
            if progress:
                progress.phase("verify")
            clock.mark("verify")
            verify_into(report, run_dir, target, progress)
        if exporting is not None:
            clock.mark("export")
            for info in _finish_export(exporting, run_dir, progress)[1:]:
                manifest.add(run_dir, info)
            write_manifest(run_dir, manifest)
            journal.set_stage("export", "done")
    except KeyboardInterrupt:
        loaded = sum(r.loaded for r in results)
        if opts.verify and report.verify is None:
            step, hint = "verify did not finish", f"run lite2pg verify {run_dir}"
        else:
            step = "the export CSVs were not finished"
            hint = f"lite2pg export {source_path} --run-dir {run_dir}.export writes them"
        if journal.stage_state("export") == "running":
            journal.set_stage("export", "failed", reason="interrupted (Ctrl-C) after the load")
        report.seconds = clock.stop()
        report.stages = clock.as_list()
        report.write_json(run_dir / "report.json")
        raise Interrupted(
            f"the load is committed and published ({loaded} rows); {step}", hint
        ) from None
    finally:
        if exporting is not None:
            exporting.cancel()
    report.seconds = clock.stop()
    report.stages = clock.as_list()
    report.write_json(run_dir / "report.json")
    evidence.write_evidence(run_dir, "migrate")
    if (run_dir / "report.html").exists():  # verify wrote it: again, with the stage times
        write_html(run_dir / "report.html", json.loads((run_dir / "report.json").read_text()))
    return report


class _Hashing:
    """A file's SHA-256, computed in a thread; `result()` waits for it (None: failed)."""

    def __init__(self, path: Path) -> None:
        self._out: list[str] = []

        def work() -> None:
            with contextlib.suppress(OSError):
                self._out.append(evidence.file_sha256(path))

        self._thread = threading.Thread(target=work, name="lite2pg-snapshot-hash", daemon=True)
        self._thread.start()

    def result(self) -> str | None:
        self._thread.join()
        return self._out[0] if self._out else None


def _finish_export(
    exporting: ExportJob, run_dir: Path, progress: ProgressSink | None
) -> list[FileInfo]:
    """Wait for the export CSVs, written in the background since the load began. The load
    is committed by now: a failure here is one line with exit code 1."""
    if progress:
        progress.phase("export (the CSVs written beside the load)")
    try:
        files = exporting.result()
    except Lite2pgError:
        raise
    except Exception as e:
        failure = Lite2pgError(
            f"the load is committed, but the export CSVs could not be written: {e} "
            f"(hint: free some space, then run lite2pg export SOURCE --run-dir {run_dir}.export)"
        )
        failure.exit_code = 1
        raise failure from None
    return files


def keep_rejected(report: RunReport, run_dir: Path, target: Target, run_id: str) -> None:
    """The rejected rows into the run's quarantine table, for the app team to query. The
    load is committed: a failure here is a note (the rejects files hold every row)."""
    try:
        with connect(target, autocommit=True) as conn:
            report.quarantine, _ = quarantine.keep(conn, run_dir / "rejects", run_id)
    except (psycopg.Error, TargetError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        report.notes.append(f"rejected rows not copied into PostgreSQL: {first}")
    report.write_json(run_dir / "report.json")


def _discard_copies(run_dir: Path) -> None:
    """A run that failed before anything was published: the copies of the data it made
    go (the snapshot, export/, transformed/); run.json, the journal and rejects/ stay,
    for `status` and for finding out why."""
    (run_dir / SNAPSHOT_NAME).unlink(missing_ok=True)
    _clear_artifacts(run_dir)


def _clear_artifacts(run_dir: Path) -> None:
    """A run into a directory that holds an earlier attempt's artifacts (a killed run run
    again): they describe another snapshot, and go before the new ones are written."""
    (run_dir / MANIFEST_NAME).unlink(missing_ok=True)
    for folder in ("export", "transformed"):
        shutil.rmtree(run_dir / folder, ignore_errors=True)


def _journal_failed(journal: Journal, stages: Sequence[str], reason: str) -> None:
    for stage in stages:
        journal.set_stage(stage, "failed", reason=reason)


def apply_profile(
    opts: MigrateOptions,
    src: sqlite3.Connection,
    schema: source.SourceSchema,
    target: Target | None,
) -> MigrateOptions:
    """The options with the ORM profile applied: the plan is the profile's with the user's
    over it, `profile` is "none" (applied) and `applied_profile` says what it did. Loading
    data only, the target's column types (read when the profile needs them) complete it."""
    if opts.profile != "none":

        def types() -> TargetTypes:
            return target_types(target, opts.schema) if target is not None else {}

        plan, profile = resolve(
            opts.profile, src, schema, opts.plan, data_only=opts.data_only, casts=opts.casts,
            target_types=types,
        )  # fmt: skip
        applied = profile.as_dict() if profile is not None else None
        opts = dataclasses.replace(opts, plan=plan, profile="none", applied_profile=applied)
    # --exclude-table: the tables it names are skipped by the run's plan from here on.
    plan = exclude_tables(opts.plan, [t.name for t in schema.tables], opts.exclude)
    return dataclasses.replace(opts, plan=plan)


def keep_nocase(
    conn: psycopg.Connection[Any],
    src: sqlite3.Connection,
    schema: source.SourceSchema,
    opts: MigrateOptions,
) -> MigrateOptions:
    """Before anything is written: refuse values that a COLLATE NOCASE unique key would
    find equal in PostgreSQL; then give the run the target's citext (creating the
    extension) when a column needs it."""
    maps, _ = create_maps(opts.layout(schema), opts.plan)
    caseless.refuse(caseless.preflight(src, maps, opts.plan, caseless.pg_lower(conn)))
    if opts.citext is not None:
        return opts
    wanted = any(c.nocase for tm in maps for c in tm.columns)
    return replace(opts, citext=citext_type(conn) if wanted else "")


def close_report(
    report: RunReport,
    run_dir: Path,
    started: float,
    schema: source.SourceSchema,
    layout: Layout,
    maps: Sequence[TableMap],
    phases: Sequence[PhaseResult],
) -> None:
    """What every load writes last: what was not migrated, where the rejects are, the
    time taken, then report.json."""
    note_skipped(report, schema, layout, maps, phases)
    rejects_dir = run_dir / "rejects"
    if rejects_dir.is_dir() and any(rejects_dir.iterdir()):
        report.rejects_dir = str(rejects_dir)
    report.seconds = time.perf_counter() - started
    report.write_json(run_dir / "report.json")


def note_skipped(
    report: RunReport,
    schema: source.SourceSchema,
    layout: Layout,
    maps: Sequence[TableMap],
    phases: Sequence[PhaseResult],
) -> None:
    """Put into the report what was not migrated as it is (triggers, virtual tables,
    tables the plan skips, views PostgreSQL refused) and the notes of each table."""
    by_profile = (report.profile or {}).get("skipped") or {}
    report.not_migrated = [
        {"kind": s.kind, "name": s.name, "reason": s.reason} for s in schema.skipped
    ] + [
        {
            "kind": "table",
            "name": t.name,
            "reason": "excluded by --exclude-table"
            if t.name in layout.excluded
            else by_profile.get(t.name, "skipped by the plan"),
        }
        for t in layout.skipped
    ]
    report.behaviour_changes = list(schema.changes)
    for tm in maps:
        report.notes.extend(f"{tm.source.name}: {n}" for n in tm.notes)
        report.behaviour_changes.extend(f"{tm.source.name}: {c}" for c in tm.changes)
    for p in phases:
        report.behaviour_changes.extend(p.changes)
        if p.name == "views":
            failed = {n.split(":")[0].removeprefix("view ") for n in p.notes}
            report.not_migrated += [
                {
                    "kind": "view",
                    "name": v.name,
                    "reason": "PostgreSQL does not accept its SQLite SQL as written",
                }
                for v in schema.views
                if v.name in failed
            ]


class _Events:
    """Hands progress from the stages to the front end (if any), from any thread."""

    def __init__(
        self,
        progress: ProgressSink | None,
        counts: dict[str, int],
        before_publish: Callable[[], None] | None = None,
        clock: StageClock | None = None,
    ) -> None:
        self.progress = progress
        self.counts = counts
        self.before_publish = before_publish
        self.clock = clock
        # Set when publish (or a data-only load's commit) begins: past it, a failure may
        # come after the commit, and the run's files are kept.
        self.publishing = False

    def start(self, table: str) -> None:
        if self.progress:
            self.progress.start_table(table, self.counts.get(table, 0))

    def advance(self, table: str, done: int) -> None:
        if self.progress:
            self.progress.advance(table, done)

    def done(self, result: TableResult) -> None:
        if self.progress:
            self.progress.end_table(result)

    def committing(self) -> None:
        """The load's commit is next (publish, or a data-only load's COMMIT)."""
        self.publishing = True
        if self.before_publish is not None:
            self.before_publish()

    def phase(self, name: str) -> None:
        if self.clock is not None:
            self.clock.mark(name)
        if name == "publish":
            self.committing()
        if self.progress:
            self.progress.phase(name)


def verify_into(
    report: RunReport, run_dir: Path, target: Target, progress: ProgressSink | None = None
) -> None:
    """Verify a committed load and put the verdict into report.json (verify writes its own
    section and report.html first). A lost connection is one line, with exit code 1 (the
    run is loaded) and the command that finishes the proof."""
    # Imported here: a run without verify (--no-verify) need not load it.
    from lite2pg.verify import verify

    try:
        checked = verify(
            run_dir,
            target,
            progress=None if progress is None else functools.partial(progress.step, "verify"),
        )
    except psycopg.OperationalError as e:
        failure = server_failure(
            e,
            "verifying",
            f"the load is committed; once the server answers, run lite2pg verify {run_dir}",
        )
        failure.exit_code = 1
        raise failure from None
    except TargetError as e:
        # A connection verify opens fails (the server went away since the load): the load
        # is committed all the same, which exit code 1 says.
        problem = e.problem
        if "cannot connect" in problem and not problem.startswith("lost the connection"):
            problem = f"lost the connection while verifying: {problem}"
        failure = TargetError(
            problem,
            f"the load is committed; once the server answers, run lite2pg verify {run_dir}",
        )
        failure.exit_code = 1
        raise failure from None
    report.verify = checked.as_dict()
    report.snapshot_sha256 = checked.snapshot_sha256
    report.write_json(run_dir / "report.json")


def denied(e: psycopg.errors.InsufficientPrivilege) -> TargetError:
    """The one-line error for a statement the target's user may not run."""
    return TargetError(
        e.diag.message_primary or str(e).strip().splitlines()[0],
        "grant the user CREATE on the database and on the schema, or use one that has it",
    )


def create_schema(conn: psycopg.Connection[Any], schema: str) -> bool:
    """CREATE SCHEMA IF NOT EXISTS; a user without the right gets one line saying so.
    Whether the schema is new (a run that fails then drops it again)."""
    if _schema_exists(conn, schema):
        return False
    try:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    except psycopg.errors.InsufficientPrivilege as e:
        raise denied(e) from None
    return True


def _schema_exists(conn: psycopg.Connection[Any], schema: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return row is not None


def drop_empty_schema(target: Target, schema: str) -> None:
    """Drop the schema a failed run made, if nothing is in it (best effort: the failure
    may be the server itself)."""
    drop = sql.SQL("DROP SCHEMA IF EXISTS {} RESTRICT").format(sql.Identifier(schema))
    with contextlib.suppress(psycopg.Error, TargetError), connect(target, autocommit=True) as conn:
        conn.execute(drop)


def refuse_existing_tables(
    conn: psycopg.Connection[Any], source_path: Path, target: Target, opts: MigrateOptions
) -> None:
    """Tables of the target schema the run would create, refused before the snapshot is
    taken (a copy of a big file): read from the live source's schema, read-only. The same
    check runs again against the snapshot, which is what the run loads."""
    try:
        src = source.open_readonly(source_path)
    except Lite2pgError:
        return  # the snapshot step gives the source's own error
    try:
        schema = source.discover(src)
        applied = apply_profile(opts, src, schema, target)
        maps, _ = create_maps(applied.layout(schema), applied.plan)
    except (Lite2pgError, sqlite3.Error):
        return  # said, with its context, once the snapshot is read
    finally:
        src.close()
    check_absent(conn, opts.schema, maps, drop=False, now=False)


def preflight(target: Target, opts: MigrateOptions) -> psycopg.Connection[Any]:
    """The checks that can fail before a file is written: the server answers, and its user
    may create what the run creates (the staging schema in the database, the tables in the
    target schema). A data-only load's rights are those of each table, checked as it loads.
    Returns the session (autocommit), for the run to go on in."""
    conn = connect(target, autocommit=True)
    try:
        lock_schema(conn, opts.schema)  # one run per schema: the second fails here, at once
        if opts.data_only:
            return conn
        user = conn.info.user
        row = conn.execute(
            "SELECT has_database_privilege(current_database(), 'CREATE'), "
            "(SELECT has_schema_privilege(oid, 'CREATE') FROM pg_namespace WHERE nspname = %s)",
            (opts.schema,),
        ).fetchone()
        may_db, may_schema = row if row is not None else (False, None)
        if not may_db:
            raise TargetError(
                f"permission denied: user {user!r} may not create schemas in database "
                f"{conn.info.dbname!r} "
                "(the run loads into a staging schema, then publishes)",
                f"GRANT CREATE ON DATABASE {conn.info.dbname} TO {user}, or use a user that has it",
            )
        if may_schema is False:
            raise TargetError(
                f"permission denied: user {user!r} may not create tables in schema {opts.schema!r}",
                f"GRANT CREATE ON SCHEMA {opts.schema} TO {user}, or pass another --schema",
            )
    except BaseException as e:
        conn.close()
        if isinstance(e, psycopg.OperationalError):
            raise server_failure(e, "checking the target") from None
        raise
    return conn


def lock_key(schema: str) -> int:
    """The advisory lock that keeps two runs from loading into one schema at once."""
    return int.from_bytes(
        hashlib.sha256(f"lite2pg:{schema}".encode()).digest()[:8], "big", signed=True
    )


def lock_schema(conn: psycopg.Connection[Any], schema: str) -> None:
    """One run at a time per target schema: a session advisory lock, released on close."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(schema),)).fetchone()
    if not row or not row[0]:
        raise TargetError(
            f"another lite2pg run is loading into schema {schema!r} of this database",
            "wait for it to finish, then run again",
        )
