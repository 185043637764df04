"""Intent and done records: the written protocol of every step that changes more than one
thing (PostgreSQL and files, or two files).

Such a step writes an intent record, RUN/<kind>-intent.json, durably (temp file, fsync,
rename, directory fsync) before its first change; makes its changes in an order where
every prefix is a safe state, each change idempotent; and replaces the intent with a done
record after the last. A later command over the run that finds an intent still
``started``, and its process gone, finishes it forwards or backwards before anything else
(`lifecycle.recover`), and says which.

When one of the changes is a PostgreSQL commit, the intent records that transaction's id
just before COMMIT (`mark_commit`): after a crash `txid_status` tells whether it
committed, so recovery never guesses from what the tables look like.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from lite2pg.artifacts import atomic_json

STARTED = "started"
SUFFIX = "-intent.json"
# How long recovery waits for the server to end a killed command's transaction (it does
# so as soon as it reads the closed socket: this only bounds a wedged server).
_OUTCOME_WAIT = "30s"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class Intent:
    """What a step is about to change, and how far it got (no password anywhere)."""

    kind: str
    steps: list[str]
    data: dict[str, Any] = field(default_factory=dict)
    state: str = STARTED
    pid: int = field(default_factory=os.getpid)
    # The process's start (process_start): a reused id is not taken for this one.
    pid_start: int | None = field(default_factory=lambda: process_start(os.getpid()))
    started_at: str = field(default_factory=_now)
    finished_at: str = ""
    xid: int | None = None  # the PostgreSQL transaction the step commits (mark_commit)
    done: list[str] = field(default_factory=list)  # the steps known done, in order

    @property
    def lock_key(self) -> int:
        """The advisory lock the step's PostgreSQL transaction holds until it ends."""
        seed = f"lite2pg-intent:{self.kind}:{self.started_at}:{self.pid}"
        return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big", signed=True)


def path(run_dir: Path, kind: str) -> Path:
    return run_dir / f"{kind}{SUFFIX}"


def write(run_dir: Path, intent: Intent) -> None:
    """The record, durably: a crash after this returns finds it."""
    atomic_json(path(run_dir, intent.kind), asdict(intent), mode=0o600)


def begin(run_dir: Path, kind: str, steps: list[str], **data: Any) -> Intent:
    """Write the intent record before the step's first change."""
    json.dumps(data)  # a TypeError here, before anything changes
    intent = Intent(kind, list(steps), dict(data))
    write(run_dir, intent)
    return intent


def step(run_dir: Path, intent: Intent, name: str) -> None:
    """Record that a step is done (recovery reads the world, this says how far it got)."""
    intent.done.append(name)
    write(run_dir, intent)


def finish(run_dir: Path, intent: Intent, state: str) -> None:
    """The done record: how the step ended."""
    intent.state = state
    intent.finished_at = _now()
    write(run_dir, intent)


def read(run_dir: Path, kind: str) -> Intent | None:
    try:
        data: dict[str, Any] = json.loads(path(run_dir, kind).read_text())
        data.setdefault("pid_start", None)  # a record from before it was kept
        return Intent(**data)
    except (OSError, ValueError, TypeError):
        return None


def process_start(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (Linux), else None.

    With the id it names one process for good: an id the kernel hands out again belongs to
    a process that started later."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold anything, ")" included.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return -1  # killed and not yet reaped: gone, though its id still answers kill(0)
    return int(fields[19])


def alive(pid: object, started: object = None) -> bool:
    """Whether that process is still there (then its step is not ours to finish).

    A zombie is gone (a SIGKILLed command whose parent has not reaped it yet), and so is
    a process under the same id that started at another time than the one recorded."""
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    start = process_start(pid)
    if start == -1 or (start is not None and isinstance(started, int) and start != started):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def unfinished(run_dir: Path, kind: str) -> Intent | None:
    """The intent of a step a crash interrupted: started, never finished, its process gone."""
    intent = read(run_dir, kind)
    if intent is None or intent.state != STARTED or alive(intent.pid, intent.pid_start):
        return None
    return intent


def mark_commit(conn: psycopg.Connection[Any], run_dir: Path, intent: Intent) -> None:
    """Inside the step's open transaction, just before COMMIT: record its id, durably.

    The transaction also takes an advisory lock that it holds until it ends, so that
    recovery can wait for the server to end a killed command's transaction (`outcome`).
    """
    row = conn.execute(
        "SELECT txid_current(), pg_advisory_xact_lock(%s)", (intent.lock_key,)
    ).fetchone()
    assert row is not None
    intent.xid = int(row[0])
    write(run_dir, intent)


def outcome(conn: psycopg.Connection[Any], intent: Intent) -> bool | None:
    """Whether the intent's transaction committed: True, False (aborted, or never reached
    COMMIT), None (the server no longer knows: too long ago). `conn` is in autocommit."""
    if intent.xid is None:
        return False  # its id is recorded before COMMIT: the commit was never sent
    # The killed command's transaction may still be open on the server for a moment (it
    # ends when the server reads the closed socket): its lock says when it has ended.
    conn.execute(f"SET lock_timeout = '{_OUTCOME_WAIT}'")
    conn.execute("SELECT pg_advisory_lock(%s)", (intent.lock_key,))
    conn.execute("SELECT pg_advisory_unlock(%s)", (intent.lock_key,))
    conn.execute("RESET lock_timeout")
    row = conn.execute("SELECT txid_status(%s)", (intent.xid,)).fetchone()
    status = row[0] if row else None
    if status == "committed":
        return True
    if status == "aborted":
        return False
    return None
