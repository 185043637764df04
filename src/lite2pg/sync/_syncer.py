"""The Syncer: a run's tables reopened, and its rounds (triggers or snapshot diff)."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from lite2pg import capture, source
from lite2pg.errors import SyncError, TargetError
from lite2pg.existing import existing_maps
from lite2pg.keys import reset_sequences
from lite2pg.layout import create_maps, parents_first, table_plan
from lite2pg.rows import RejectSink, build_pipeline
from lite2pg.rundir import SNAPSHOT_NAME, MigrateOptions, read_run_file
from lite2pg.schema import TableMap
from lite2pg.sync._common import (
    ROUND_LIMIT,
    STATE_SCHEMA,
    Round,
    TableSync,
    first_line,
    qualified,
    refusal,
    run_id,
)
from lite2pg.sync._state import _State, lock_key
from lite2pg.sync._write import _Writer
from lite2pg.target import Target, connect


class Syncer(_State, _Writer):
    """Applies a run's captured changes to its target. Use as a context manager."""

    def __init__(
        self,
        run_dir: Path,
        target: Target,
        *,
        mode: str | None = None,
        hash_workers: int | None = 1,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.target = target
        self.source_path, self.opts = read_run_file(self.run_dir)
        info = capture.read_capture_file(self.run_dir)
        self.mode = mode or ("triggers" if info is not None else "diff")
        if self.mode == "triggers" and info is None:
            raise SyncError(
                f"run {self.run_dir} was not taken from a prepared source",
                f"run lite2pg prepare {self.source_path} and migrate again, or sync with "
                "--capture=diff (no triggers; compares snapshots)",
            )
        # Triggers: the change log's sequence number at the snapshot. Diff: generations
        # of snapshots, the run's own being 0.
        self.snapshot_seq = int(info["snapshot_seq"]) if self.mode == "triggers" and info else 0
        self._cleanup_after_commit: list[Path] = []
        self.hash_workers = hash_workers
        self.run = run_id(self.run_dir)
        self.lock = lock_key(self.run)
        self.pg: psycopg.Connection[Any] = connect(target, autocommit=True)
        try:
            self.tables = self._tables(self.opts)
            self._ensure_state()
        except psycopg.Error as e:
            self.pg.close()
            raise TargetError(
                f"could not set up sync state in {STATE_SCHEMA}.sync_state: {first_line(e)}",
                f"the user needs CREATE on the database; a damaged {STATE_SCHEMA} schema can "
                "be dropped (it holds only sync positions)",
            ) from None
        except BaseException:
            self.pg.close()
            raise
        self.key_sizes = {t.name: (len(t.keys) if t.keys else None) for t in self.tables}
        self._src: sqlite3.Connection | None = None
        self._sink: RejectSink | None = None

    def __enter__(self) -> Syncer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()
        if self._src is not None:
            with contextlib.suppress(sqlite3.Error):
                self._src.close()
        with contextlib.suppress(psycopg.Error):
            self.pg.close()

    def _tables(self, opts: MigrateOptions) -> list[TableSync]:
        snap = source.open_readonly(self.run_dir / SNAPSHOT_NAME)
        try:
            schema = source.discover(snap)
        finally:
            snap.close()
        layout = opts.layout(schema)
        if opts.data_only:
            maps = existing_maps(self.pg, opts.schema, opts.plan, layout.tables, layout.casts)
        else:
            maps, _ = create_maps(layout, opts.plan)
        out: list[TableSync] = []
        for tm in parents_first(maps):
            tp = table_plan(opts.plan, tm.source.name)
            pipe = build_pipeline(tm, tp)
            keys = capture.key_columns(tm.source)
            if keys and not all(tm.has(k) for k in keys):
                keys = None  # the plan drops a key column: the table is reloaded whole
            out.append(TableSync(tm, pipe, keys, [tm.target_of(k) for k in keys or ()]))
        return out

    def source(self) -> sqlite3.Connection:
        """The live source, opened once (read-write only for the cutover's write lock)."""
        if self._src is None:
            self._src = capture.open_writable(self.source_path)
            if self.mode == "triggers" and not capture.has_capture(self._src):
                self._src.close()
                self._src = None
                raise SyncError(
                    f"{self.source_path} has no change capture (was cleanup run?)",
                    f"run lite2pg prepare {self.source_path} and migrate again",
                )
        return self._src

    def round(self, limit: int = ROUND_LIMIT) -> Round:
        """Apply the next changes (at most `limit`) in one PostgreSQL transaction."""
        if self.mode == "diff":
            return self._diff_round()
        src = self.source()
        started = time.perf_counter()
        with self.pg.transaction():
            applied = self.locked_position()
            src.execute("BEGIN")
            try:
                result = self.apply(src, applied, limit)
                newest = capture.last_seq(src) or 0
                oldest = src.execute(
                    f"SELECT min(at) FROM {capture.CHANGES_TABLE} WHERE seq > ?", (result.last,)
                ).fetchone()[0]
            except psycopg.Error as e:
                raise refusal(e) from None
            finally:
                src.execute("COMMIT")
        result.behind = newest - result.last
        result.lag_seconds = max(0.0, time.time() - oldest) if oldest is not None else 0.0
        result.seconds = time.perf_counter() - started
        return result

    def apply(self, src: sqlite3.Connection, applied: int, limit: int) -> Round:
        """Inside the caller's PostgreSQL transaction (run lock held) and SQLite read
        transaction: apply the changes after `applied` and record the new position."""
        changes = capture.read_changes(src, applied, limit, self.key_sizes)
        return self.apply_changes(src, changes)

    def drain(self, src: sqlite3.Connection, applied: int) -> Round:
        """Inside the cutover's freeze (write lock held on `src`, run lock in PostgreSQL):
        every change left."""
        if self.mode == "diff":
            return self._diff_apply(applied)
        return self.apply(src, applied, 1 << 62)

    def after_commit(self) -> None:
        """Files a committed round no longer needs (diff mode's older snapshot)."""
        for path in self._cleanup_after_commit:
            path.unlink(missing_ok=True)
        self._cleanup_after_commit.clear()

    def _baseline(self, generation: int) -> Path:
        if generation == 0:
            return self.run_dir / SNAPSHOT_NAME
        return self.run_dir / "sync" / f"snapshot-{generation}.db"

    def _diff_round(self) -> Round:
        started = time.perf_counter()
        with self.pg.transaction():
            applied = self.locked_position()
            try:
                result = self._diff_apply(applied)
            except psycopg.Error as e:
                raise refusal(e) from None
        self.after_commit()
        result.seconds = time.perf_counter() - started
        return result

    def _diff_apply(self, applied: int) -> Round:
        """Snapshot the source, compare it with the last snapshot applied, apply the
        difference (reading rows from the new snapshot)."""
        base = self._baseline(applied)
        new = self._baseline(applied + 1)
        new.parent.mkdir(mode=0o700, exist_ok=True)
        source.snapshot(self.source_path, new)
        changes = capture.diff_changes(
            base, new, [t.tm.source for t in self.tables], (applied, applied + 1)
        )
        if not changes.count:
            self._cleanup_after_commit.append(new)
            return Round(applied, applied)
        snap = source.open_readonly(new)
        snap.isolation_level = None
        try:
            result = self.apply_changes(snap, changes)
        finally:
            snap.close()
        if applied > 0:
            self._cleanup_after_commit.append(base)
        return result

    def apply_changes(self, src: sqlite3.Connection, changes: capture.Changes) -> Round:
        """Apply `changes`, reading the rows from `src`; record the new position."""
        result = Round(changes.first, changes.last, changes.count)
        if not changes.count:
            return result
        touched = [t for t in self.tables if t.name in changes.tables]
        for t in touched:
            if t.name in changes.whole or t.keys is None:
                self._reload(src, t, result)
        staged = [
            (t, self._stage(src, t, changes.keys[t.name], result))
            for t in touched
            if t.keys is not None and t.name in changes.keys and t.name not in changes.whole
        ]
        self._write(staged, result)
        live = {t.tm.source.name: t for t in touched}
        if live:
            seq = _live_sequences(src, [t.tm for t in touched])
            maps = [_with_sequence(t.tm, seq.get(t.name)) for t in live.values()]
            phase = reset_sequences(self.pg, self.opts.schema, maps)
            if phase.failed:
                raise SyncError(
                    f"could not move a sequence: {phase.notes[0]}",
                    "check the target's sequences and run sync again",
                )
        self._set_state(changes.last, changes.count)
        return result

    def pg_counts(self) -> dict[str, int]:
        """Rows per table in PostgreSQL, counted."""
        out: dict[str, int] = {}
        for t in self.tables:
            row = self.pg.execute(
                sql.SQL("SELECT count(*) FROM {}").format(qualified(self.opts.schema, t.tm.target))
            ).fetchone()
            out[t.name] = int(row[0]) if row else 0
        return out

    def count_check(
        self, src: sqlite3.Connection, known: dict[str, int] | None = None
    ) -> tuple[list[str], list[dict[str, Any]]]:
        """Per table: source rows = target rows + rejected + filtered out by the plan.
        `known` gives PostgreSQL's counts when the caller has them exactly (a cutover
        carries a count taken before its freeze through the drain). Returns the problems
        and the numbers (report.json's table lines)."""
        rejected = self.rejected_counts()
        problems: list[str] = []
        lines: list[dict[str, Any]] = []
        # PostgreSQL counts in a thread while SQLite counts here: both release the GIL.
        pg_counts: dict[str, int] = dict(known or {})
        counting: threading.Thread | None = None
        if known is None:
            counting = threading.Thread(target=lambda: pg_counts.update(self.pg_counts()))
            counting.start()
        src_counts: dict[str, tuple[int, int]] = {}
        try:
            for t in self.tables:
                where = t.pipe.where
                src_counts[t.name] = (
                    source.count_rows(src, t.name),
                    source.count_rows(src, t.name, f"NOT coalesce(({where}), 0)") if where else 0,
                )
        finally:
            if counting is not None:
                counting.join()
        for t in self.tables:
            total, filtered = src_counts[t.name]
            in_pg = pg_counts[t.name]
            rej = rejected.get(t.name, 0)
            if total != in_pg + rej + filtered:
                problems.append(
                    f"{t.name}: {total} source rows, but {in_pg} in PostgreSQL + {rej} "
                    f"rejected + {filtered} filtered"
                )
            lines.append(
                {
                    "source": t.name,
                    "target": t.tm.target,
                    "read": total,
                    "loaded": in_pg,
                    "rejected": rej,
                    "filtered": filtered,
                }
            )
        return problems, lines


def _live_sequences(src: sqlite3.Connection, maps: Sequence[TableMap]) -> dict[str, int]:
    """sqlite_sequence of the live source: AUTOINCREMENT never hands out an id twice."""
    if not any(tm.source.autoincrement for tm in maps):
        return {}
    try:
        return {str(n): int(s) for n, s in src.execute("SELECT name, seq FROM sqlite_sequence")}
    except sqlite3.OperationalError:
        return {}


def _with_sequence(tm: TableMap, seq: int | None) -> TableMap:
    if seq is None or not tm.source.autoincrement:
        return tm
    return dataclasses.replace(tm, source=dataclasses.replace(tm.source, sequence_value=seq))


# A sync that is behind, yet applies nothing this many rounds in a row, stops with an
# error instead of spinning.
_IDLE_ROUNDS = 50


def sync(
    run_dir: Path,
    target: Target,
    *,
    follow: bool = False,
    interval: float = 0.2,
    on_round: Callable[[Round], None] | None = None,
    stop: Callable[[], bool] | None = None,
    capture: str | None = None,
) -> Round:
    """Apply every change logged since the run's snapshot; with `follow`, keep doing it
    until `stop()` says so. `capture` is "triggers" (after prepare) or "diff" (compare
    snapshots); by default, as the run was prepared. Returns the totals."""
    with Syncer(run_dir, target, mode=capture) as s:
        start, _ = s.state()
        total = Round(start, start)
        idle = 0  # rounds in a row that were behind and applied nothing
        while True:
            r = s.round()
            idle = idle + 1 if r.behind and not r.changes else 0
            if idle >= _IDLE_ROUNDS:
                raise SyncError(
                    f"{r.behind} change(s) are logged but no round applies any",
                    f"run lite2pg status {run_dir}; if the run directory was reused, "
                    "migrate again into a new one",
                )
            total.last = r.last
            total.changes += r.changes
            total.upserted += r.upserted
            total.deleted += r.deleted
            total.rejected += r.rejected
            total.reloaded += [n for n in r.reloaded if n not in total.reloaded]
            total.behind, total.lag_seconds = r.behind, r.lag_seconds
            total.seconds += r.seconds
            if on_round is not None:
                on_round(r)
            if r.behind:
                continue
            if not follow or (stop is not None and stop()):
                return total
            time.sleep(interval)
            if stop is not None and stop():
                return total


__all__ = ["Round", "SyncError", "Syncer", "sync"]
