"""A migrate run: run directory, snapshot, schema, load, keys, report; stages in order.

Tables that lite2pg creates are loaded side by side into a staging schema and published in
one transaction (staging.py); loads into the app's existing tables run in one transaction
(existing.py). Either way a run that fails leaves the target exactly as it was.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg import sql

from lite2pg import capture, source
from lite2pg.errors import TargetError, UsageError, file_errors
from lite2pg.existing import prepare_schema, run_in_place, target_types
from lite2pg.layout import Layout, select_tables
from lite2pg.load import BATCH_SIZE, PhaseResult, TableResult
from lite2pg.plan import Plan, parse_plan
from lite2pg.profiles import TargetTypes, resolve
from lite2pg.report import RunReport
from lite2pg.schema import TableMap
from lite2pg.staging import run_staged
from lite2pg.target import Target, connect, server_failure

__all__ = ["MigrateOptions", "ProgressSink", "migrate", "new_run_dir", "prepare_schema"]

RUNS_DIR = Path(".lite2pg") / "runs"
SNAPSHOT_NAME = "source.snapshot.db"
RUN_FILE = "run.json"


class ProgressSink(Protocol):
    """What a front end implements to show progress."""

    def start_table(self, name: str, total: int) -> None: ...
    def advance(self, name: str, done: int) -> None: ...
    def end_table(self, result: TableResult) -> None: ...
    def phase(self, name: str) -> None: ...


@dataclass
class MigrateOptions:
    """Everything `migrate` can be told besides source and target."""

    schema: str = "public"
    data_only: bool = False
    truncate: bool = False
    drop: bool = False
    casts: dict[str, str] = field(default_factory=dict)  # "table.column" -> PostgreSQL type
    run_dir: Path | None = None
    batch_size: int = BATCH_SIZE
    tables: Sequence[str] | None = None  # only these source tables
    plan: Plan | None = None
    verify: bool = True  # prove the target equals transform(source) before returning
    # Write export/ and transformed/ CSVs with a manifest (the staged commands' artifacts)
    # instead of streaming straight through.
    keep_artifacts: bool = False
    # The ORM profile: "auto" (detect), "none", or a name (profiles.PROFILE_CHOICES). Once
    # applied, `plan` holds it, `profile` is "none" and `applied_profile` says what it did.
    profile: str = "auto"
    applied_profile: dict[str, Any] | None = None


def new_run_dir(base: Path = RUNS_DIR) -> Path:
    """A fresh run directory named by the UTC time."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    path = base / stamp
    # Run directories hold a copy of the source (and maybe plaintext): owner only.
    path.mkdir(parents=True, exist_ok=False, mode=0o700)
    return path


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
    if opts.keep_artifacts:
        # Imported here: the staged commands build on this module.
        from lite2pg.lifecycle import export
        from lite2pg.stages import load, transform

        if progress:
            progress.phase("export (snapshot and CSV)")
        staged_dir = export(source_path, opts.run_dir or new_run_dir(), opts, target=target)
        if progress:
            progress.phase("transform")
        transform(staged_dir)
        if progress:
            progress.phase("load")
        return load(staged_dir, target, drop=opts.drop, verify=opts.verify, progress=progress)
    run_dir = opts.run_dir or new_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    started = time.perf_counter()
    report = RunReport(
        source=str(source_path),
        target=target.display,
        schema=opts.schema,
        run_dir=str(run_dir),
        mode="data-only" if opts.data_only else "create",
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    write_run_file(run_dir, source_path, opts)
    snap = run_dir / SNAPSHOT_NAME
    snap.unlink(missing_ok=True)
    if progress:
        progress.phase("snapshot")
    snap_started = time.perf_counter()
    source.snapshot(source_path, snap)
    # A prepared source: where the snapshot stands in the change log (sync starts there).
    capture.write_capture_file(run_dir, snap)
    report.phases.append(PhaseResult("snapshot", 1, 0, time.perf_counter() - snap_started))
    src = source.open_readonly(snap)
    try:
        schema = source.discover(src)
        opts = apply_profile(opts, src, schema, target)
        write_run_file(run_dir, source_path, opts)
        report.profile = opts.applied_profile
        wanted = tuple(opts.tables) if opts.tables else None
        layout = select_tables(schema, wanted, opts.plan, opts.casts)
        conn = connect(target, autocommit=True)
        try:
            lock_schema(conn, opts.schema)
            create_schema(conn, opts.schema)
            counts = {t.name: source.count_rows(src, t.name) for t in layout.tables}
            events = _Events(progress, counts)
            try:
                if opts.data_only:
                    results, phases, maps = run_in_place(
                        conn, src, layout, opts.plan, opts.schema,
                        truncate_first=opts.truncate, batch_size=opts.batch_size,
                        run_dir=run_dir, on_start=events.start, on_progress=events.advance,
                        on_done=events.done,
                    )  # fmt: skip
                else:
                    results, phases, maps = run_staged(
                        conn, target, snap, schema, opts.plan, wanted, opts.casts, opts.schema,
                        sizes=counts, drop=opts.drop, batch_size=opts.batch_size,
                        run_dir=run_dir,
                        on_start=events.start, on_progress=events.advance,
                        on_done=events.done, on_phase=events.phase,
                    )  # fmt: skip
            except psycopg.OperationalError as e:
                raise server_failure(e, "loading") from None
            except psycopg.errors.InsufficientPrivilege as e:
                raise denied(e) from None
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        # A damaged page met while counting or reading rows: nothing was published.
        raise source.source_error(source_path, e, "reading rows") from None
    finally:
        src.close()
    report.tables = results
    report.phases.extend(phases)
    close_report(report, run_dir, started, schema, layout, maps, phases)
    if opts.verify:
        if progress:
            progress.phase("verify")
        verify_into(report, run_dir, target)
    return report


def apply_profile(
    opts: MigrateOptions,
    src: sqlite3.Connection,
    schema: source.SourceSchema,
    target: Target | None,
) -> MigrateOptions:
    """The options with the ORM profile applied: the plan is the profile's with the user's
    over it, `profile` is "none" (applied) and `applied_profile` says what it did. Loading
    data only, the target's column types (read when the profile needs them) complete it."""
    if opts.profile == "none":
        return opts

    def types() -> TargetTypes:
        return target_types(target, opts.schema) if target is not None else {}

    plan, profile = resolve(
        opts.profile, src, schema, opts.plan, data_only=opts.data_only, casts=opts.casts,
        target_types=types,
    )  # fmt: skip
    applied = profile.as_dict() if profile is not None else None
    return dataclasses.replace(opts, plan=plan, profile="none", applied_profile=applied)


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
        {"kind": "table", "name": t.name, "reason": by_profile.get(t.name, "skipped by the plan")}
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

    def __init__(self, progress: ProgressSink | None, counts: dict[str, int]) -> None:
        self.progress = progress
        self.counts = counts

    def start(self, table: str) -> None:
        if self.progress:
            self.progress.start_table(table, self.counts.get(table, 0))

    def advance(self, table: str, done: int) -> None:
        if self.progress:
            self.progress.advance(table, done)

    def done(self, result: TableResult) -> None:
        if self.progress:
            self.progress.end_table(result)

    def phase(self, name: str) -> None:
        if self.progress:
            self.progress.phase(name)


def verify_into(report: RunReport, run_dir: Path, target: Target) -> None:
    """Verify a committed load and put the verdict into report.json (verify writes its own
    section and report.html first). A lost connection is one line, with exit code 1 (the
    run is loaded) and the command that finishes the proof."""
    # Imported here: verify reads run directories through this module.
    from lite2pg.verify import verify

    try:
        checked = verify(run_dir, target)
    except psycopg.OperationalError as e:
        failure = server_failure(
            e,
            "verifying",
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


def create_schema(conn: psycopg.Connection[Any], schema: str) -> None:
    """CREATE SCHEMA IF NOT EXISTS; a user without the right gets one line saying so."""
    try:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    except psycopg.errors.InsufficientPrivilege as e:
        raise denied(e) from None


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


def write_run_file(run_dir: Path, source_path: Path, opts: MigrateOptions) -> None:
    """run.json: what this run was asked to do, so later commands (verify) can redo it."""
    data = {
        "version": 1,
        "source": str(source_path.resolve()),
        "snapshot": SNAPSHOT_NAME,
        "schema": opts.schema,
        "mode": "data-only" if opts.data_only else "create",
        "truncate": opts.truncate,
        "drop": opts.drop,
        "tables": list(opts.tables) if opts.tables else None,
        "casts": dict(opts.casts),
        "plan": None if opts.plan is None else {"origin": opts.plan.origin, "text": opts.plan.text},
        "batch_size": opts.batch_size,
        "profile": opts.profile,
        "applied_profile": opts.applied_profile,
    }
    tmp = run_dir / (RUN_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, run_dir / RUN_FILE)


def read_run_file(run_dir: Path) -> tuple[Path, MigrateOptions]:
    """The source path and options a run was made with (see `write_run_file`)."""
    path = run_dir / RUN_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(
            f"{run_dir} is not a lite2pg run directory (no {RUN_FILE})",
            "give the directory a migrate run wrote",
        ) from None
    except json.JSONDecodeError as e:
        raise UsageError(f"{path} is damaged: {e}", "run migrate again") from None
    plan_data = data.get("plan")
    plan = parse_plan(plan_data["text"], origin=plan_data["origin"]) if plan_data else None
    opts = MigrateOptions(
        schema=data["schema"],
        data_only=data["mode"] == "data-only",
        truncate=bool(data.get("truncate")),
        drop=bool(data.get("drop")),
        casts=dict(data.get("casts") or {}),
        run_dir=run_dir,
        batch_size=int(data.get("batch_size") or BATCH_SIZE),
        tables=data.get("tables"),
        plan=plan,
        # A run.json from before profiles: its plan is what the run used.
        profile=data.get("profile") or "none",
        applied_profile=data.get("applied_profile"),
    )
    return Path(data["source"]), opts
