"""A run after it loaded: export its artifacts, say where it stands, cut the app over, and
roll it back.

Every step works on one run directory (`run.json`, `report.json`, the snapshot), so a team
can rehearse, stop, look, and undo.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import random
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg import sql

from lite2pg import capture, cutover_intent, evidence, intent, protocols, source
from lite2pg.artifacts import Journal, Manifest, write_manifest
from lite2pg.cutover import (
    ConfigChange,
    SmokeResult,
    current_value,
    redact_url,
    run_smoke_command,
)
from lite2pg.errors import Lite2pgError, TargetError, file_errors
from lite2pg.existing import existing_maps
from lite2pg.export import export_tables, record_tables, tables_to_export
from lite2pg.layout import create_maps
from lite2pg.protocols import recover
from lite2pg.run import apply_profile, migrate
from lite2pg.rundir import (
    SNAPSHOT_NAME,
    MigrateOptions,
    new_run_dir,
    new_run_id,
    read_run_file,
    write_run_file,
)
from lite2pg.runtarget import run_target
from lite2pg.target import Target, connect
from lite2pg.transforms.passwords import is_hash, is_unusable, verify_password

CUTOVER_FILE = "cutover.json"


class RunStateError(Lite2pgError):
    """A run directory is not in the state a command needs."""

    def __init__(self, run_dir: Path, problem: str, hint: str) -> None:
        self.run_dir = str(run_dir)
        super().__init__(f"run {run_dir}: {problem} (hint: {hint})")


def _report(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "report.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunStateError(run_dir, "no report.json: nothing was loaded", "run migrate") from None
    except json.JSONDecodeError as e:
        raise RunStateError(run_dir, f"report.json is damaged: {e}", "run migrate again") from None
    return data


@file_errors
def export(
    source_path: Path,
    run_dir: Path | None = None,
    options: MigrateOptions | None = None,
    *,
    target: Target | None = None,
) -> Path:
    """Step 1: a consistent snapshot and every table as CSV, with SHA-256s in a manifest.

    The CSVs are copies of the source, plaintext passwords included: mode 0600. The ORM
    profile is applied here (run.json keeps the plan it gives); with `target`, a data-only
    profile reads the target's column types (Django's durations into interval).
    """
    opts = options or MigrateOptions()
    source.check_sqlite_file(source_path)
    run_dir = run_dir or new_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    opts = dataclasses.replace(opts, run_id=new_run_id())  # a new snapshot: a new run
    evidence.new_key(run_dir)
    write_run_file(run_dir, source_path, opts)
    journal = Journal(run_dir)
    journal.set_stage("export", "running")
    snap = run_dir / SNAPSHOT_NAME
    snap.unlink(missing_ok=True)
    source.snapshot(source_path, snap)
    # A prepared source: where the snapshot stands in the change log (sync starts there).
    capture.write_capture_file(run_dir, snap)
    manifest = Manifest(files={}, tables={})
    src = source.open_readonly(snap)
    try:
        # Artifacts are kept to be trusted later: check every page (indexes too) first.
        source.quick_check(src, source_path)
        schema = source.discover(src)
        opts = apply_profile(opts, src, schema, target)
        write_run_file(run_dir, source_path, opts)
        layout = opts.layout(schema)
    finally:
        src.close()
    # The same stage a migrate runs beside its load (export.py), here in this process.
    tables = tables_to_export(layout.tables, opts.plan)
    files = export_tables(snap, source_path, tables, run_dir, check=False)
    record_tables(manifest, run_dir, files, layout.tables, tables)
    write_manifest(run_dir, manifest)
    evidence.write_evidence(run_dir, "export")
    journal.set_stage("export", "done")
    return run_dir


@dataclass
class Status:
    """Where a run stands: what is done, what is left, what failed."""

    run_dir: str
    steps: list[tuple[str, str]] = field(default_factory=list)  # (step, state)

    def __str__(self) -> str:
        width = max((len(s) for s, _ in self.steps), default=0)
        return "\n".join(f"{s.ljust(width)}  {state}" for s, state in self.steps)


def status(run_dir: Path) -> Status:
    """What a run has done so far, step by step."""
    out = Status(str(run_dir))
    if not (run_dir / "run.json").exists():
        raise RunStateError(run_dir, "not a lite2pg run directory", "give a directory migrate made")
    # An interrupted step is finished first (forwards or backwards), then the state shown;
    # PostgreSQL is asked only when a step needs it (a publish or a rollback).
    for line in recover(run_dir, lambda: run_target(run_dir, None)):
        out.steps.append(("recovered", line))
    journal = (
        json.loads((run_dir / "journal.json").read_text())
        if (run_dir / "journal.json").exists()
        else {}
    )
    stages = journal.get("stages", {})
    if (run_dir / SNAPSHOT_NAME).exists():
        out.steps.append(("snapshot", "done"))
    elif stages.get("load", {}).get("state") == "failed":
        out.steps.append(("snapshot", "removed: the run failed before it published"))
    else:
        out.steps.append(("snapshot", "missing"))
    for stage in ("export", "transform"):
        st = stages.get(stage)
        if st is None:
            out.steps.append(
                (stage, "not run (migrate streamed)" if _streamed(run_dir, stages) else "not run")
            )
            continue
        out.steps.append((stage, _stage_state(st)))
    report = _report(run_dir) if (run_dir / "report.json").exists() else None
    load = stages.get("load")
    if report is None or (load is not None and load.get("state") != "done"):
        out.steps.append(("load", _stage_state(load) if load is not None else "not run"))
        out.steps.append(("verify", "not run"))
    else:
        out.steps.append(("load", str(report.get("verdict", "done"))))
        v = report.get("verify")
        out.steps.append(
            ("verify", "not run" if v is None else ("passed" if v.get("ok") else "FAILED"))
        )
    info = capture.read_capture_file(run_dir)
    if info is not None:
        out.steps.append(
            ("online", f"prepared source; snapshot at change {info['snapshot_seq']} "
             "(lite2pg sync RUN shows the lag)")
        )  # fmt: skip
    out.steps.append(("cutover", _cutover_state(run_dir)))
    return out


def _stage_state(st: dict[str, Any]) -> str:
    """A journal stage as status shows it: failed with its reason, a running stage whose
    process is gone as interrupted, and the tables not done."""
    state = str(st.get("state"))
    if state == "failed":
        state += f": {st.get('reason', '')}"
    elif state == "running" and not _alive(st.get("pid")):
        state = "interrupted: the process running it is gone; run the same command again"
    left = [t for t, info in st.get("tables", {}).items() if info.get("state") != "done"]
    return state + (f" ({len(left)} table(s) not done)" if left else "")


def _alive(pid: object) -> bool:
    """Whether a process of that id is there (an old journal without one: assume so)."""
    if not isinstance(pid, int):
        return True
    # This very process is running the stage (intent.alive says no: a step is never its
    # own to recover).
    return pid == os.getpid() or intent.alive(pid)


def _streamed(run_dir: Path, stages: dict[str, Any]) -> bool:
    """A migrate that streamed straight through: a report, and no staged step at all."""
    return not ({"export", "transform"} & set(stages)) and (run_dir / "report.json").exists()


def _cutover_state(run_dir: Path) -> str:
    data = protocols.read_cutover(run_dir)
    if data is None:
        return cutover_intent.describe(run_dir) or "not run"
    state = str(data.get("state", "done"))
    freeze = f", write freeze {data['freeze_ms']} ms" if "freeze_ms" in data else ""
    line = f"{state}: {data['change']['path']}{freeze}"
    return line + "; " + "; ".join(_truth(run_dir, state, data["change"]))


def _truth(run_dir: Path, state: str, change: dict[str, Any]) -> list[str]:
    """What the config and SQLite's write block hold now, read afresh (status never
    repeats a record without checking it)."""
    out: list[str] = []
    try:
        now = redact_url(current_value(Path(change["path"]), change.get("key") or None))
    except (Lite2pgError, OSError) as e:
        return [f"the config cannot be read: {e}"]
    if now == change.get("new_value_redacted"):
        out.append("config holds PostgreSQL")
    elif now == change.get("old_value_redacted"):
        out.append("config holds SQLite")
    else:
        out.append(f"config holds {now} (changed since)")
    online = cutover_intent.read(run_dir)
    if state.startswith("done (online") and online is not None:
        tables = list(online.data.get("tables", []))
        try:
            conn = sqlite3.connect(f"file:{online.data['source']}?mode=ro", uri=True)
            try:
                blocked = capture.blocked(conn, tables)
            finally:
                conn.close()
        except sqlite3.Error as e:
            out.append(f"SQLite's write block cannot be read: {e}")
        else:
            n = len(blocked)
            out.append(
                "SQLite refuses writes" if n == len(tables)
                else f"SQLite write block on only {n} of {len(tables)} table(s)"
            )  # fmt: skip
    return out


@dataclass
class CutoverResult:
    """What a cutover did."""

    change: ConfigChange
    logins_checked: int
    smoke: SmokeResult | None

    def __str__(self) -> str:
        parts = [f"switched {self.change.path} to {self.change.new_value_redacted}"]
        parts.append(f"{self.logins_checked} sampled logins verified")
        if self.smoke is not None:
            parts.append(f"smoke command passed in {self.smoke.seconds:.1f}s")
        return "cutover done: " + "; ".join(parts) + f" (backup: {self.change.backup})"


def cutover(
    run_dir: Path,
    target: Target,
    config: Path,
    *,
    key: str | None = None,
    smoke: str | None = None,
    smoke_timeout: float = 600.0,
    sample: int = 5,
) -> CutoverResult:
    """Step 6: after a passing verify, point the app's config at PostgreSQL and smoke-test.

    A smoke failure puts the old config back before raising.
    """
    report = _report(run_dir)
    checked = report.get("verify")
    if not checked or not checked.get("ok"):
        raise RunStateError(
            run_dir, "the run has not passed verify", "run lite2pg verify RUN first"
        )
    if current_value(config, key) == target.dsn:
        # Switching again would back up the PostgreSQL URL as the value to go back to,
        # and rollback would then "restore" PostgreSQL.
        raise RunStateError(
            run_dir,
            f"{config} already names this target: the cutover is done",
            "lite2pg status RUN shows it; lite2pg rollback RUN puts the app back on SQLite",
        )
    logins = _check_logins(run_dir, target, sample)
    change = protocols.switch(run_dir, config, target.dsn, key)
    result: SmokeResult | None = None
    if smoke:
        env = dict(os.environ, DATABASE_URL=target.dsn)
        result = run_smoke_command(smoke, env=env, timeout=smoke_timeout)
        if not result.ok:
            protocols.undo_switch(run_dir, change, "restored after a failed smoke command")
            result.raise_on_failed()
    return CutoverResult(change, logins, result)


def _check_logins(run_dir: Path, target: Target, sample: int) -> int:
    """A sample of users can log in: their stored hash verifies their original password."""
    _, opts = read_run_file(run_dir)
    if opts.plan is None or sample <= 0:
        return 0
    checked = 0
    src = source.open_readonly(run_dir / SNAPSHOT_NAME)
    conn = connect(target, autocommit=True)
    try:
        schema = source.discover(src)
        layout = opts.layout(schema)
        if opts.data_only:
            maps = existing_maps(conn, opts.schema, opts.plan, layout.tables, layout.casts)
        else:
            maps, _ = create_maps(layout, opts.plan)
        by_source = {tm.source.name: tm for tm in maps}
        for name, tp in opts.plan.tables.items():
            for column, cp in tp.columns.items():
                tm = by_source.get(name)
                if cp.password is None or tm is None:
                    continue
                table = schema.table(name)
                if len(table.primary_key) != 1:
                    continue
                pk = table.primary_key[0]
                rows = src.execute(
                    f"SELECT {source.quote_ident(pk)}, {source.quote_ident(column)} "
                    f"FROM {source.quote_ident(name)} WHERE typeof({source.quote_ident(column)}) "
                    "= 'text' AND length(" + source.quote_ident(column) + ") > 0"
                ).fetchall()
                rng = random.Random(0)
                for key, plaintext in rng.sample(rows, min(sample, len(rows))):
                    if is_hash(plaintext):
                        continue  # kept as it was: nothing to verify against
                    found = conn.execute(
                        sql.SQL("SELECT {} FROM {}.{} WHERE {} = %s").format(
                            sql.Identifier(tm.target_of(column)),
                            sql.Identifier(opts.schema),
                            sql.Identifier(tm.target),
                            sql.Identifier(tm.target_of(pk)),
                        ),
                        (key,),
                    ).fetchone()
                    if found is None:
                        continue  # the row was rejected, and listed as such
                    stored = str(found[0])
                    if is_unusable(stored) or not verify_password(cp.password, plaintext, stored):
                        raise TargetError(
                            f"login check failed: {name} {pk}={key!r} cannot log in with its "
                            "original password",
                            "do not cut over; run lite2pg verify and look at report.html",
                        )
                    checked += 1
    finally:
        conn.close()
        src.close()
    return checked


@dataclass
class RollbackResult:
    """What a rollback did."""

    tables: list[str]
    dropped: bool
    config_restored: str | None
    reloaded: str | None

    def __str__(self) -> str:
        verb = "dropped" if self.dropped else "emptied"
        parts = [f"{verb} {len(self.tables)} table(s): {', '.join(self.tables)}"]
        if self.config_restored:
            parts.append(f"restored {self.config_restored}")
        if self.reloaded:
            parts.append(f"loaded again from the snapshot ({self.reloaded})")
        return "rollback done: " + "; ".join(parts)


def rollback(
    run_dir: Path, target: Target, *, drop: bool = False, reload: bool = False
) -> RollbackResult:
    """Step 5: empty (or drop) exactly the tables this run loaded, in one transaction; put
    the app's config back if cutover changed it; optionally load again from the snapshot."""
    report = _report(run_dir)
    schema = str(report["schema"])
    tables = [str(t["target"]) for t in report.get("tables", [])]
    if not tables:
        raise RunStateError(run_dir, "the run loaded no table", "nothing to roll back")
    cut = protocols.read_cutover(run_dir) or {}
    if str(cut.get("state", "")).startswith("done (online"):
        raise RunStateError(
            run_dir,
            "this run was cut over online: the app writes to PostgreSQL, and emptying its "
            "tables would destroy those writes",
            "to go back, point the app at SQLite yourself after lite2pg cleanup SOURCE",
        )
    change = ConfigChange.from_dict(cut["change"]) if cut.get("state") == "done" else None
    run_id = json.loads((run_dir / "run.json").read_text()).get("id") or run_dir.name
    protocols.rollback_tables(run_dir, target, schema, tables, drop, str(run_id), change)
    restored = str(change.path) if change is not None else None
    reloaded = None
    if reload:
        _, opts = read_run_file(run_dir)
        again = run_dir / "reload" / dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        again.mkdir(parents=True, mode=0o700)
        # The run's password cache comes along (key and hashes, still 0600), so passwords
        # whose plaintext did not change get the very hash the app may already have seen.
        for cache_file in run_dir.glob("password_cache.*"):
            shutil.copy2(cache_file, again / cache_file.name)
        opts.run_dir = again
        if not drop:
            opts.data_only, opts.truncate = True, True
        migrate(run_dir / SNAPSHOT_NAME, target, opts)
        reloaded = str(again)
    return RollbackResult(tables, drop, restored, reloaded)
