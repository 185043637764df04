"""What sync's modules share: the round result, a table's sync plan, small helpers."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from lite2pg.errors import SyncError, TargetError
from lite2pg.rows import RowPipeline, from_json_value
from lite2pg.rundir import read_run_file
from lite2pg.schema import TableMap

STATE_SCHEMA = "lite2pg"
ROUND_LIMIT = 5_000  # changes per round: bounds the memory and the time locks are held


@dataclass
class Round:
    """What one sync round did."""

    first: int
    last: int
    changes: int = 0
    upserted: int = 0
    deleted: int = 0
    rejected: int = 0
    reloaded: list[str] = field(default_factory=list)
    seconds: float = 0.0
    behind: int = 0  # changes logged but not applied yet
    lag_seconds: float = 0.0  # age of the oldest change not applied yet
    # How each table's row count in PostgreSQL moved (inserted - deleted), and the new
    # count of tables reloaded whole: a cutover carries a count taken before its freeze
    # through the drain with these, instead of counting a large table inside the freeze.
    net: dict[str, int] = field(default_factory=dict)
    reloaded_rows: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        done = f"applied {self.changes} change(s) ({self.first + 1}..{self.last})"
        if not self.changes:
            done = "no new changes"
        parts = [done]
        if self.changes:
            parts.append(f"{self.upserted} upserted, {self.deleted} deleted")
        if self.rejected:
            parts.append(f"{self.rejected} rejected")
        if self.reloaded:
            parts.append(f"reloaded {', '.join(self.reloaded)}")
        parts.append(f"lag {self.behind} change(s), {self.lag_seconds:.1f}s")
        return "; ".join(parts) + f" [{self.seconds * 1000:.0f} ms]"

    def as_dict(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "last": self.last,
            "changes": self.changes,
            "upserted": self.upserted,
            "deleted": self.deleted,
            "rejected": self.rejected,
            "reloaded": self.reloaded,
            "seconds": round(self.seconds, 3),
            "behind": self.behind,
            "lag_seconds": round(self.lag_seconds, 3),
        }


@dataclass
class TableSync:
    """How one table's changes are applied: its map, pipeline and key."""

    tm: TableMap
    pipe: RowPipeline
    keys: tuple[str, ...] | None  # source key columns (None: reload the table whole)
    target_keys: list[str]

    @property
    def name(self) -> str:
        return self.tm.source.name

    def target_key(self, key: tuple[Any, ...]) -> tuple[Any, ...]:
        """A source key's values as the target holds them (raises if they cannot be)."""
        assert self.keys is not None
        return tuple(self.pipe.steps[k](v) for k, v in zip(self.keys, key, strict=True))


def qualified(*names: str) -> sql.Composed:
    """schema.table (or any dotted name) as quoted identifiers."""
    return sql.SQL(".").join(sql.Identifier(n) for n in names)


def refusal(e: psycopg.Error) -> TargetError | SyncError:
    """A PostgreSQL error in a round, as the one-line error the CLI prints."""
    if isinstance(e, psycopg.OperationalError):
        return TargetError(
            f"lost the connection during sync: {first_line(e)}",
            "nothing of this round was applied; run sync again",
        )
    if isinstance(e, psycopg.errors.ForeignKeyViolation):
        return SyncError(
            f"PostgreSQL refused a change: {first_line(e)}",
            "the source holds rows that point at a deleted row (SQLite enforces foreign "
            "keys only with PRAGMA foreign_keys=ON); fix them there, then sync again",
        )
    return SyncError(
        f"PostgreSQL refused a change: {first_line(e)}",
        "nothing of this round was applied; fix the cause and run sync again",
    )


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def reject_key(key: Mapping[str, Any], columns: Sequence[str]) -> str:
    """A rejected row's key as lite2pg.sync_rejected holds it: the repr of its values in
    key order (from a rejects file's JSON or straight from the row)."""
    return repr(tuple(from_json_value(key.get(c)) for c in columns))


def run_id(run_dir: Path) -> str:
    """The key a run's sync state is kept under in PostgreSQL: the run's id (a new one per
    snapshot, in run.json), so that a new run in the same directory starts afresh; for a
    run.json from before ids, its directory's path."""
    _, opts = read_run_file(run_dir)
    if opts.run_id:
        return opts.run_id
    return hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:16]
