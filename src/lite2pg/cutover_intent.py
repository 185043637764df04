"""The online cutover's journal entry, and the recovery of a cutover a crash interrupted.

The cutover changes three things, in an order where every prefix is safe:
1. PostgreSQL commits the last changes (sync's own, idempotent step);
2. SQLite commits the write block (triggers that refuse the app's writes);
3. the app's config moves to PostgreSQL (temp file, fsync, rename, directory fsync).
A crash between 2 and 3 leaves writes refused while the config still says SQLite (a short
refusal), never a split. Before the first change an intent record naming the steps is
written to RUN/cutover-intent.json (fsynced, renamed, directory fsynced); a done record
replaces it after the last.

`recover` finds an unfinished intent and finishes it: forwards when the config already
holds the target (the block is made sure of), or when the block is in and the target URL
is known (the cutover command); otherwise backwards (the block removed, the config as it
was: the app writes to SQLite again, and sync carries those writes on).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lite2pg import capture
from lite2pg import intent as intent_mod
from lite2pg.artifacts import atomic_json
from lite2pg.cutover import (
    BACKUP_INFIX,
    ConfigChange,
    current_value,
    redact_url,
    switch_config,
)
from lite2pg.errors import SyncError

KIND = "cutover"
INTENT_FILE = f"{KIND}{intent_mod.SUFFIX}"  # cutover-intent.json
CUTOVER_FILE = "cutover.json"  # the same name lifecycle's status reads
STEPS = [
    "postgresql: commit the drained changes",
    "sqlite: commit the write block",
    "config: switch to postgresql",
]
STARTED = intent_mod.STARTED

Intent = intent_mod.Intent


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.resolve().read_bytes()).hexdigest()
    except OSError:
        return ""


def begin(
    run_dir: Path, config: Path, key: str | None, source: Path, tables: Sequence[str], dsn: str
) -> Intent:
    """Write the intent record, durably, before the cutover's first change (no password:
    the target is redacted)."""
    return intent_mod.begin(
        run_dir, KIND, STEPS,
        config=str(config.absolute()), key=key, source=str(source), tables=list(tables),
        target_redacted=redact_url(dsn), config_sha256=_sha256(config),
    )  # fmt: skip


def finish(run_dir: Path, intent: Intent, state: str) -> None:
    """The done record: how the cutover ended."""
    intent_mod.finish(run_dir, intent, state)


def read(run_dir: Path) -> Intent | None:
    return intent_mod.read(run_dir, KIND)


def unfinished(run_dir: Path) -> Intent | None:
    """The intent of a cutover that was interrupted (started, never finished), if any."""
    return intent_mod.unfinished(run_dir, KIND)


@dataclass
class Found:
    """The state an interrupted cutover left: where the config points, where SQLite blocks."""

    config_value_redacted: str
    config_switched: bool | None  # None: the setting holds something else (changed by hand)
    blocked: list[str]
    tables: list[str]

    def __str__(self) -> str:
        if self.config_switched:
            config = f"config holds PostgreSQL ({self.config_value_redacted})"
        elif self.config_switched is None:
            config = f"config holds neither source nor target ({self.config_value_redacted})"
        else:
            config = f"config still holds SQLite ({self.config_value_redacted})"
        n = len(self.blocked)
        if n == len(self.tables):
            block = "write block installed in SQLite"
        elif n:
            block = f"write block installed on {n} of {len(self.tables)} table(s) in SQLite"
        else:
            block = "no write block in SQLite"
        return f"{config}; {block}"


def inspect(intent: Intent) -> Found:
    """Read the config and SQLite's triggers as they are now (changes nothing but what any
    writer would: a hot journal left by a cutover killed inside SQLite's commit is rolled
    back, which a read-only connection cannot do)."""
    d = intent.data
    config = Path(d["config"])
    value = current_value(config, d["key"])
    if _sha256(config) == d["config_sha256"]:
        switched: bool | None = False
    elif redact_url(value) == d["target_redacted"]:
        switched = True
    else:
        switched = None
    conn = capture.open_writable(Path(d["source"]))
    try:
        blocked = capture.blocked(conn, d["tables"])
    finally:
        conn.close()
    return Found(redact_url(value), switched, blocked, list(d["tables"]))


@dataclass
class Recovered:
    """How an interrupted cutover was finished, from which state."""

    found: Found
    forwards: bool
    change: ConfigChange | None = None

    def __str__(self) -> str:
        head = f"an interrupted online cutover was found ({self.found})"
        if self.forwards:
            return (
                f"{head}; finished it forwards: the config holds PostgreSQL and SQLite "
                "refuses writes (run lite2pg verify RUN to prove the handover)"
            )
        return (
            f"{head}; finished it backwards: the write block is removed and the config "
            "unchanged, so the app writes to SQLite (sync carries on; cut over again)"
        )


def _set_block(source: Path, tables: Sequence[str], *, on: bool) -> None:
    conn = capture.open_writable(source)
    try:
        capture.begin_immediate(conn, source)
        try:
            for t in tables:
                for stmt in capture.block_sql(t) if on else capture.unblock_sql(t):
                    conn.execute(stmt)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()


def remove_block(conn: sqlite3.Connection, tables: Sequence[str]) -> None:
    """On an open connection (the freeze's): drop the block in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for t in tables:
            for stmt in capture.unblock_sql(t):
                conn.execute(stmt)
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _latest_backup(config: Path) -> Path:
    real = config.resolve()
    backups = sorted(real.parent.glob(f"{real.name}{BACKUP_INFIX}*"), key=lambda p: p.name)
    return backups[-1] if backups else real.with_name(real.name + BACKUP_INFIX + "missing")


def recover(run_dir: Path, dsn: str | None = None) -> Recovered | None:
    """Finish an unfinished cutover intent (see the module); None when there is none."""
    intent = unfinished(run_dir)
    if intent is None:
        return None
    found = inspect(intent)
    d = intent.data
    config = Path(d["config"])
    if found.config_switched is None:
        raise SyncError(
            f"an interrupted online cutover left {config} changed by someone else ({found})",
            f"set the database URL by hand, then remove {run_dir / INTENT_FILE}",
        )
    source = Path(d["source"])
    tables: list[str] = list(d["tables"])
    change: ConfigChange | None = None
    if found.config_switched:
        _set_block(source, tables, on=True)  # idempotent; there already in this order
        backup = _latest_backup(config)
        old = redact_url(current_value(backup, d["key"])) if backup.exists() else "?"
        change = ConfigChange(
            config.resolve(), backup, old, found.config_value_redacted,
            d["key"] or "DATABASE_URL", _sha256(config),
        )  # fmt: skip
    elif found.blocked and dsn is not None and redact_url(dsn) == d["target_redacted"]:
        change = switch_config(config, dsn, key=d["key"])
    if change is None:
        _set_block(source, tables, on=False)
        finish(run_dir, intent, "finished backwards after an interruption")
        return Recovered(found, forwards=False)
    if not _recorded_since(run_dir, intent):  # killed before the cutover's own record
        record = {
            "state": "done (online; finished forwards after an interruption)",
            "at": _now(),
            "change": change.as_dict(),
        }
        atomic_json(run_dir / CUTOVER_FILE, record)
    finish(run_dir, intent, "finished forwards after an interruption")
    return Recovered(found, forwards=True, change=change)


def _recorded_since(run_dir: Path, intent: Intent) -> bool:
    try:
        data = json.loads((run_dir / CUTOVER_FILE).read_text())
    except (OSError, ValueError):
        return False
    at = data.get("at", "") if isinstance(data, dict) else ""
    return isinstance(at, str) and at.replace("Z", "+00:00") >= intent.started_at


def describe(run_dir: Path) -> str | None:
    """For status: an unfinished intent and the state it left, or how the last one ended
    when no cutover record says more; None when there is no intent."""
    intent = read(run_dir)
    if intent is None:
        return None
    if intent.state != STARTED:
        return f"{intent.state} ({intent.finished_at})"
    try:
        found = str(inspect(intent))
    except Exception as e:  # status reports, whatever it cannot read
        found = f"cannot read the state: {type(e).__name__}: {e}"
    return f"INTERRUPTED (started {intent.started_at}): {found}"
