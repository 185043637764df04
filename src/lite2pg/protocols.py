"""The written protocols of the steps that change more than one thing, and their recovery.

Each step writes an intent record first (intent.py) and changes things in an order where
every prefix is safe; `recover` finishes whichever a crash interrupted, forwards or
backwards, and says which in one line. Every command over a run calls it first.

- publish (migrate, load): the staged tables move into the target schema in one
  PostgreSQL transaction whose id is in the intent before COMMIT; then report.json, then
  the journal. Recovery asks the server: committed, forwards (the journal says published,
  and whether the report was written); not committed, backwards (nothing was published).
- offline cutover: the config switches (backup first), then cutover.json records it.
  Recovery reads the config: unchanged, backwards (not switched); holding the target,
  forwards (cutover.json written). A smoke failure's restore is the same, the other way.
- rollback: one PostgreSQL transaction empties (or drops) the run's tables and forgets
  its quarantine and sync position; its id goes into the intent, the config is put back
  while the tables are locked, then COMMIT, then cutover.json. Committed: forwards (the
  record written). Not committed: backwards if the config is as it was, else forwards
  (the transaction is run again: every statement in it is idempotent).
- online cutover: cutover_intent.py (PostgreSQL, SQLite's write block, config); forwards
  also marks sync's position "cut over" in PostgreSQL, so sync refuses the run.
- sync's position needs no intent: the rows and the position are one PostgreSQL
  transaction (sync/_state.py), so a crash never applies a change twice or skips one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from lite2pg import cutover_intent, intent, quarantine
from lite2pg.artifacts import Journal, atomic_json
from lite2pg.cutover import (
    BACKUP_INFIX,
    ConfigChange,
    current_value,
    redact_url,
    restore,
    switch_config,
)
from lite2pg.errors import Lite2pgError, UsageError
from lite2pg.staging import PUBLISH
from lite2pg.sync import forget_sync_state, mark_cut_over
from lite2pg.target import Target, connect

CUTOVER_FILE = cutover_intent.CUTOVER_FILE
SWITCH = "config"  # the intent kind of an offline cutover's switch, or its undoing
ROLLBACK = "rollback"
SWITCH_STEPS = ["config: switch the database URL", "run directory: cutover.json"]
RESTORE_STEPS = ["config: put the backup back", "run directory: cutover.json"]
ROLLBACK_STEPS = [
    "postgresql: empty or drop the run's tables, forget its quarantine and sync position",
    "config: put the backup back (inside the transaction, before COMMIT)",
    "postgresql: COMMIT",
    "run directory: cutover.json",
]


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.resolve().read_bytes()).hexdigest()
    except OSError:
        return ""


def save_cutover(run_dir: Path, change: ConfigChange, state: str, **extra: Any) -> None:
    """cutover.json: where the config stands (status and rollback read it)."""
    data = {
        "state": state,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "change": change.as_dict(),
        **extra,
    }
    atomic_json(run_dir / CUTOVER_FILE, data)


def read_cutover(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((run_dir / CUTOVER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --- offline cutover: switch, and restore after a failed smoke command -------------------


def switch(run_dir: Path, config: Path, dsn: str, key: str | None) -> ConfigChange:
    """Point the app's config at `dsn` and record it, under an intent."""
    started = intent.begin(
        run_dir, SWITCH, SWITCH_STEPS, action="switch", config=str(config.absolute()), key=key,
        config_sha256=_sha256(config), target_redacted=redact_url(dsn),
    )  # fmt: skip
    try:
        change = switch_config(config, dsn, key=key)
    except BaseException:
        if _sha256(config) == started.data["config_sha256"]:
            intent.finish(run_dir, started, "failed before the switch: nothing changed")
        raise
    save_cutover(run_dir, change, "done")
    intent.finish(run_dir, started, "done")
    return change


def undo_switch(run_dir: Path, change: ConfigChange, state: str) -> None:
    """Put the config's backup back and record `state`, under an intent."""
    started = intent.begin(
        run_dir, SWITCH, RESTORE_STEPS, action="restore", change=change.as_dict(), state=state,
    )  # fmt: skip
    try:
        restore(change)
    except BaseException:
        if _sha256(change.path) != _sha256(change.backup):
            intent.finish(run_dir, started, "failed: the config was not restored")
        raise
    save_cutover(run_dir, change, state)
    intent.finish(run_dir, started, "done")


def _latest_backup(config: Path) -> Path:
    real = config.resolve()
    backups = sorted(real.parent.glob(f"{real.name}{BACKUP_INFIX}*"), key=lambda p: p.name)
    return backups[-1] if backups else real.with_name(real.name + BACKUP_INFIX + "missing")


def _recover_switch(run_dir: Path, found: intent.Intent) -> str:
    d = found.data
    if d.get("action") == "restore":
        change = ConfigChange.from_dict(d["change"])
        if _sha256(change.path) != _sha256(change.backup):
            restore(change)  # refuses a config someone changed since
        save_cutover(run_dir, change, str(d["state"]))
        intent.finish(run_dir, found, "finished forwards after an interruption")
        return (
            f"an interrupted restore of {change.path} was found; finished it forwards: the "
            "backup is back in place and recorded"
        )
    config = Path(d["config"])
    if _sha256(config) == d["config_sha256"]:
        intent.finish(run_dir, found, "finished backwards after an interruption")
        return (
            f"an interrupted cutover was found; finished it backwards: {config} was never "
            "switched (run cutover again)"
        )
    value = current_value(config, d["key"])
    if redact_url(value) != d["target_redacted"]:
        raise UsageError(
            f"an interrupted cutover left {config} holding {redact_url(value)}, neither the "
            "old file nor the target",
            f"set the database URL by hand, then remove {intent.path(run_dir, SWITCH)}",
        )
    backup = _latest_backup(config)
    old = redact_url(current_value(backup, d["key"])) if backup.exists() else "?"
    change = ConfigChange(
        config.resolve(), backup, old, redact_url(value), d["key"] or "DATABASE_URL",
        _sha256(config),
    )  # fmt: skip
    save_cutover(run_dir, change, "done", recovered=True)
    intent.finish(run_dir, found, "finished forwards after an interruption")
    return (
        f"an interrupted cutover was found; finished it forwards: {config} holds PostgreSQL "
        "and cutover.json says so"
    )


# --- rollback ---------------------------------------------------------------------------


def _empty(conn: psycopg.Connection[Any], run_dir: Path, d: dict[str, Any]) -> None:
    """Inside the caller's transaction: the rollback's PostgreSQL changes (idempotent)."""
    names = sql.SQL(", ").join(
        sql.SQL("{}.{}").format(sql.Identifier(d["schema"]), sql.Identifier(t)) for t in d["tables"]
    )
    verb = "DROP TABLE IF EXISTS {} CASCADE" if d["drop"] else "TRUNCATE {}"
    conn.execute(sql.SQL(verb).format(names))
    quarantine.drop(conn, str(d["run_id"]))
    # An online sync's position no longer holds for emptied tables: the next sync
    # (after --reload) starts again from the snapshot.
    forget_sync_state(conn, run_dir)


def rollback_tables(
    run_dir: Path, target: Target, schema: str, tables: list[str], drop: bool, run_id: str,
    change: ConfigChange | None,
) -> None:  # fmt: skip
    """Empty (or drop) the tables and put the config back (when cut over), under an intent."""
    started = intent.begin(
        run_dir, ROLLBACK, ROLLBACK_STEPS, schema=schema, tables=tables, drop=drop,
        run_id=run_id, change=change.as_dict() if change else None,
    )  # fmt: skip
    try:
        _rollback_transaction(run_dir, target, started, change)
    except BaseException:
        if started.xid is None:
            intent.finish(run_dir, started, "failed: nothing changed")
        raise  # past the mark, the config or COMMIT may have happened: recovery tells
    if change is not None:
        save_cutover(run_dir, change, "restored by rollback")
    intent.finish(run_dir, started, "done")


def _rollback_transaction(
    run_dir: Path, target: Target, started: intent.Intent, change: ConfigChange | None
) -> None:
    conn = connect(target, autocommit=False)
    try:
        with conn.transaction():
            _empty(conn, run_dir, started.data)
            intent.mark_commit(conn, run_dir, started)
            # The tables are locked until COMMIT: no app reads them empty while the config
            # still points here.
            if change is not None and _sha256(change.path) != _sha256(change.backup):
                restore(change)
    finally:
        conn.close()


def _recover_rollback(
    run_dir: Path, found: intent.Intent, conn: psycopg.Connection[Any], target: Target
) -> str:
    d = found.data
    change = ConfigChange.from_dict(d["change"]) if d.get("change") else None
    restored = change is not None and _sha256(change.path) == _sha256(change.backup)
    committed = intent.outcome(conn, found)
    if committed is False and not restored:
        intent.finish(run_dir, found, "finished backwards after an interruption")
        return "an interrupted rollback was found; finished it backwards: nothing had changed"
    if not committed:  # the config moved back, the tables did not: empty them now
        found.xid = None
        _rollback_transaction(run_dir, target, found, change)
    elif change is not None and not restored:
        restore(change)
    if change is not None:
        save_cutover(run_dir, change, "restored by rollback")
    intent.finish(run_dir, found, "finished forwards after an interruption")
    config = f"; {change.path} holds SQLite again" if change is not None else ""
    return (
        f"an interrupted rollback was found; finished it forwards: the run's tables are "
        f"{'dropped' if d['drop'] else 'empty'}{config}"
    )


# --- publish ----------------------------------------------------------------------------


def _recover_publish(run_dir: Path, found: intent.Intent, conn: psycopg.Connection[Any]) -> str:
    journal = Journal(run_dir)
    committed = intent.outcome(conn, found)
    if committed is None:
        raise UsageError(
            "an interrupted publish was found, and PostgreSQL no longer knows whether its "
            f"transaction {found.xid} committed",
            "look at the target schema, then remove " + str(intent.path(run_dir, PUBLISH)),
        )
    if not committed:  # (its staging schema goes when the next load of the schema starts)
        journal.set_stage(
            "load", "failed", reason="interrupted before its commit: nothing was published"
        )
        intent.finish(run_dir, found, "finished backwards after an interruption")
        return (
            "an interrupted publish was found; finished it backwards: it never committed, "
            "PostgreSQL is as it was (run the same command again)"
        )
    report = run_dir / "report.json"
    started = dt.datetime.fromisoformat(found.started_at).timestamp()
    if report.exists() and report.stat().st_mtime >= started - 1:
        journal.set_stage("load", "done")
        told = "the report was written"
    else:
        journal.set_stage(
            "load", "failed",
            reason="published, but killed before its report.json: the tables are in "
            "PostgreSQL, unproven; run the same command again with --drop (--truncate "
            "for --data-only) to load and prove them",
        )  # fmt: skip
        told = "its report was not written (run the same command again with --drop)"
    intent.finish(run_dir, found, "finished forwards after an interruption")
    return f"an interrupted publish was found; finished it forwards: it committed, {told}"


# --- the one entry point ----------------------------------------------------------------


def recover(
    run_dir: Path, target: Target | Callable[[], Target] | None = None, *, dsn: str | None = None
) -> list[str]:
    """Finish every interrupted protocol of the run (see the module), one line for each.

    `target` (or a function that finds it) is needed only when PostgreSQL must answer; when
    it is None or cannot be reached, a publish or rollback stays unfinished and its line
    says so. `dsn`: the online cutover's target, to finish it forwards (cutover passes it).
    """
    lines: list[str] = []
    conn: psycopg.Connection[Any] | None = None
    resolved: Target | None = None

    def pg() -> tuple[psycopg.Connection[Any], Target]:
        nonlocal conn, resolved
        if conn is None or resolved is None:
            if target is None:
                raise UsageError("PostgreSQL is needed to finish it", "run it with --target")
            resolved = target() if callable(target) else target
            conn = connect(resolved, autocommit=True)
        return conn, resolved

    try:
        for kind in (PUBLISH, ROLLBACK, SWITCH, cutover_intent.KIND):
            found = intent.unfinished(run_dir, kind)
            if found is None:
                continue
            try:
                lines.append(_recover_one(run_dir, kind, found, pg, dsn))
            except (Lite2pgError, psycopg.Error, OSError) as e:
                first = str(e).splitlines()[0] if str(e) else type(e).__name__
                lines.append(
                    f"an interrupted {kind} was found and is NOT finished: {first} (any "
                    f"lite2pg command over the run that reaches PostgreSQL finishes it)"
                )
        cut = read_cutover(run_dir)
        if target is not None and cut and str(cut.get("state", "")).startswith("done (online"):
            try:
                c, _ = pg()
                if mark_cut_over(c, run_dir):
                    lines.append("sync's position in PostgreSQL now says cut over")
            except (Lite2pgError, psycopg.Error):
                pass  # the next command that reaches PostgreSQL marks it
    finally:
        if conn is not None:
            conn.close()
    return lines


def _recover_one(
    run_dir: Path,
    kind: str,
    found: intent.Intent,
    pg: Callable[[], tuple[psycopg.Connection[Any], Target]],
    dsn: str | None,
) -> str:
    if kind == SWITCH:
        return _recover_switch(run_dir, found)
    if kind == cutover_intent.KIND:
        recovered = cutover_intent.recover(run_dir, dsn)
        return str(recovered) if recovered is not None else ""
    conn, target = pg()
    if kind == PUBLISH:
        return _recover_publish(run_dir, found, conn)
    return _recover_rollback(run_dir, found, conn, target)
