"""Online cutover: move a live app from SQLite to PostgreSQL with a write freeze of
milliseconds, then prove the handover with a full verify.

1. Catch up: sync rounds until fewer than `max_lag` changes are left.
2. Freeze: `BEGIN IMMEDIATE` on the source takes SQLite's write lock, so the app's writers
   wait on their busy timeout. Inside it: drain the last changes (each changed row checked
   as written), reconcile every table's counts, move sequences, and commit PostgreSQL;
   export a PostgreSQL snapshot of that state; install triggers that refuse any further
   write to the SQLite tables (a writer that was waiting gets a clean error, never a write
   that PostgreSQL would not see) and commit them, releasing the lock; only then switch
   the app's config. An intent record in the run directory comes first and a done record
   last, so a crash anywhere leaves a state `cutover_intent.recover` finishes (at worst a
   short refusal, never a split). If anything fails before the switch, the block is
   removed and the config left as it was: the app stays on SQLite, unharmed.
3. After the freeze: a full `verify` of PostgreSQL as exported (the app already writes to
   it) against a snapshot of the now read-only SQLite file, in `RUN/online/`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from lite2pg import capture, cutover_intent, evidence, source
from lite2pg.artifacts import atomic_json, atomic_write
from lite2pg.cutover import ConfigChange, SmokeResult, run_smoke_command, switch_config
from lite2pg.rows import safe_filename
from lite2pg.rundir import RUN_FILE, SNAPSHOT_NAME
from lite2pg.sync import Round, Syncer, SyncError
from lite2pg.target import Target, connect
from lite2pg.transforms.passwords import CACHE_FILE, KEY_FILE

FINAL_DIR = "online"


@dataclass
class OnlineResult:
    """What an online cutover did, and how long the app could not write."""

    change: ConfigChange
    freeze_seconds: float
    drained: int  # changes applied inside the freeze
    catch_up_rounds: int
    catch_up_changes: int
    final_seq: int
    verify_ok: bool | None = None
    verify_dir: str | None = None
    verify_verdict: str = ""
    smoke: SmokeResult | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "config": self.change.as_dict(),
            "freeze_ms": round(self.freeze_seconds * 1000, 1),
            "drained": self.drained,
            "catch_up_rounds": self.catch_up_rounds,
            "catch_up_changes": self.catch_up_changes,
            "final_seq": self.final_seq,
            "verify_ok": self.verify_ok,
            "verify_dir": self.verify_dir,
            "timings_ms": {k: round(v * 1000, 1) for k, v in self.timings.items()},
        }

    def __str__(self) -> str:
        lines = [
            f"online cutover done: write freeze {self.freeze_seconds * 1000:.0f} ms "
            f"({self.drained} change(s) drained inside it, after {self.catch_up_changes} in "
            f"{self.catch_up_rounds} catch-up round(s))",
            f"switched {self.change.path} to {self.change.new_value_redacted} "
            f"(backup: {self.change.backup}); SQLite now refuses writes to the migrated tables",
        ]
        if self.verify_ok is not None:
            lines.append(f"verify after cutover: {self.verify_verdict} ({self.verify_dir})")
        if self.smoke is not None:
            lines.append(f"smoke command passed in {self.smoke.seconds:.1f}s")
        return "\n".join(lines)


def cutover_online(
    run_dir: Path,
    target: Target,
    config: Path,
    *,
    key: str | None = None,
    max_lag: int = 200,
    catch_up_timeout: float = 600.0,
    lock_wait: float = 5.0,
    verify_after: bool = True,
    smoke: str | None = None,
    smoke_timeout: float = 600.0,
    on_round: Callable[[Round], None] | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> OnlineResult:
    """Catch up, freeze, drain, check, switch, release; then verify (see the module)."""
    run_dir = Path(run_dir)
    timings: dict[str, float] = {}
    if cutover_intent.unfinished(run_dir) is not None:
        raise SyncError(
            "an earlier online cutover of this run was interrupted",
            "lite2pg status RUN (or cutover again through the CLI) finishes it first",
        )
    with Syncer(run_dir, target, hash_workers=1) as s:
        if on_phase:
            on_phase("catch up")
        started = time.perf_counter()
        rounds = changes = 0
        while True:
            r = s.round()
            rounds += 1
            changes += r.changes
            if on_round:
                on_round(r)
            if r.behind <= max_lag:
                break
            if time.perf_counter() - started > catch_up_timeout:
                raise SyncError(
                    f"could not catch up in {catch_up_timeout:.0f}s ({r.behind} changes behind)",
                    "the app writes faster than sync applies; cut over at a quieter time",
                )
        # PostgreSQL's counts now, at the position caught up to: inside the freeze they
        # are carried through the drain by the rows it inserts and deletes, so the freeze
        # does not grow with the size of the tables (SQLite is counted in full inside it).
        with s.pg.transaction():
            counted_at = s.locked_position()
            pg_before = s.pg_counts()
        # Counting took a moment: one more round, its rows carried into the counts too.
        r = s.round()
        rounds += 1
        changes += r.changes
        if r.first == counted_at:
            pg_before = _carried(pg_before, r)
            counted_at = r.last
        timings["catch up"] = time.perf_counter() - started
        if on_phase:
            on_phase("freeze")
        src = s.source()
        src.execute(f"PRAGMA busy_timeout = {int(lock_wait * 1000)}")
        tables = [t.name for t in s.tables]
        # The intent record, durable before the first change (see cutover_intent).
        intent = cutover_intent.begin(run_dir, config, key, s.source_path, tables, target.dsn)
        exporter: psycopg.Connection[Any] | None = None
        try:
            freeze_start = capture.begin_immediate(src, s.source_path)
            t0 = time.perf_counter()
            with s.pg.transaction():
                applied = s.locked_position()
                drained = s.drain(src, applied)
                timings["drain"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                # Unless a sync --follow applied more meanwhile (then count again).
                known = _carried(pg_before, drained) if applied == counted_at else None
                problems, lines = s.count_check(src, known)
                timings["counts"] = time.perf_counter() - t0
                if problems:
                    raise SyncError(
                        "counts do not reconcile inside the freeze: " + "; ".join(problems),
                        "the app stays on SQLite; run lite2pg verify RUN to find the rows",
                    )
            t0 = time.perf_counter()
            if verify_after:
                exporter = connect(target)
                exporter.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                row = exporter.execute("SELECT pg_export_snapshot()").fetchone()
                pg_snapshot = str(row[0]) if row else None
            for name in tables:
                for stmt in capture.block_sql(name):
                    src.execute(stmt)
            # The block is committed before the config moves: a crash from here on leaves
            # writes refused while the config still says SQLite, never both accepting them.
            src.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                src.execute("ROLLBACK")
            if exporter is not None:
                exporter.close()
            cutover_intent.finish(run_dir, intent, "failed before the switch; nothing changed")
            raise
        try:
            change = switch_config(config, target.dsn, key=key)
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                cutover_intent.remove_block(src, tables)
            if exporter is not None:
                exporter.close()
            cutover_intent.finish(run_dir, intent, "failed at the switch; the block removed")
            raise
        freeze = time.perf_counter() - freeze_start
        timings["switch"] = time.perf_counter() - t0
        s.mark("cut over")
        _save(run_dir, change, freeze, drained.last)
        cutover_intent.finish(run_dir, intent, "done")
        result = OnlineResult(
            change, freeze, drained.changes, rounds, changes, drained.last, timings=timings
        )
        try:
            if verify_after and exporter is not None:
                if on_phase:
                    on_phase("verify (the state handed over)")
                t0 = time.perf_counter()
                final = _final_run_dir(run_dir, s, lines)
                from lite2pg.verify import verify

                result.verify_dir = str(final)
                try:
                    checked = verify(final, target, pg_snapshot=pg_snapshot)
                except Exception as e:  # the cutover is done: say so, whatever verify hit
                    result.verify_ok = False
                    result.verify_verdict = (
                        f"NOT VERIFIED: verify stopped ({type(e).__name__}: {e}); the cutover "
                        "itself is done and the app writes to PostgreSQL"
                    )
                else:
                    result.verify_ok = checked.ok
                    result.verify_verdict = checked.verdict()
                timings["verify"] = time.perf_counter() - t0
        finally:
            if exporter is not None:
                exporter.close()
        _save(run_dir, change, freeze, drained.last, result.as_dict())
    if smoke:
        env = dict(os.environ, DATABASE_URL=target.dsn)
        result.smoke = run_smoke_command(smoke, env=env, timeout=smoke_timeout)
        if not result.smoke.ok:
            # Unlike an offline cutover, the config stays: the app already writes to
            # PostgreSQL, and going back would drop those writes.
            raise SyncError(
                f"the smoke command {result.smoke.outcome} after the online cutover "
                f"(freeze {freeze * 1000:.0f} ms; the app now writes to PostgreSQL)",
                "fix forward on PostgreSQL; going back (lite2pg cleanup SOURCE and the config "
                f"backup {change.backup}) would lose the writes made there since",
            )
    return result


def _carried(counts: dict[str, int], r: Round) -> dict[str, int]:
    """PostgreSQL's row counts after round `r`, from the counts before it."""
    return {name: r.reloaded_rows.get(name, n + r.net.get(name, 0)) for name, n in counts.items()}


def _save(
    run_dir: Path,
    change: ConfigChange,
    freeze: float,
    seq: int,
    extra: dict[str, Any] | None = None,
) -> None:
    from lite2pg.lifecycle import CUTOVER_FILE

    data: dict[str, Any] = {
        "state": "done (online)",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "change": change.as_dict(),
        "freeze_ms": round(freeze * 1000, 1),
        "final_seq": seq,
    }
    if extra:
        data["result"] = extra
    atomic_write(run_dir / CUTOVER_FILE, (json.dumps(data, indent=2) + "\n").encode())


def _final_run_dir(run_dir: Path, s: Syncer, lines: list[dict[str, Any]]) -> Path:
    """A run directory for the state handed over: the run's options, a snapshot of the
    SQLite file (read-only now), the counts reconciled in the freeze, the rows rejected
    now, and the password cache."""
    final = run_dir / FINAL_DIR
    if final.exists():
        shutil.rmtree(final)
    final.mkdir(mode=0o700)
    shutil.copy2(run_dir / RUN_FILE, final / RUN_FILE)
    source.snapshot(s.source_path, final / SNAPSHOT_NAME)
    atomic_json(final / "report.json", {"tables": lines, "mode": "online cutover"})
    for name in (KEY_FILE, CACHE_FILE):
        if (run_dir / name).exists():
            _copy_private(run_dir / name, final / name)
    _final_rejects(run_dir, final, s)
    evidence.new_key(final)
    evidence.write_evidence(final, "online cutover")
    return final


def _copy_private(src: Path, dest: Path) -> None:
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out, src.open("rb") as f:
        shutil.copyfileobj(f, out)


def _final_rejects(run_dir: Path, final: Path, s: Syncer) -> None:
    """rejects/<table>.jsonl of the final state: the latest record of each key that is
    still rejected (the bulk load's and every sync round's)."""
    rejects = run_dir / "rejects"
    if not rejects.is_dir():
        return
    from lite2pg.sync import STATE_SCHEMA, reject_key

    rows = s.pg.execute(
        f"SELECT tbl, key FROM {STATE_SCHEMA}.sync_rejected WHERE run = %s", (s.run,)
    ).fetchall()
    still: dict[str, set[str]] = {}
    for tbl, k in rows:
        still.setdefault(str(tbl), set()).add(str(k))
    out_dir = final / "rejects"
    for t in s.tables:
        keep = still.get(t.name)
        if not keep or t.keys is None:
            continue
        safe = safe_filename(t.name)
        files = [rejects / f"{safe}.jsonl", *sorted(rejects.glob(f"{safe}.sync-*.jsonl"))]
        latest: dict[str, str] = {}
        for path in files:
            if not path.is_file():
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                key = json.loads(line).get("key") or {}
                k = reject_key(key, t.keys)
                if k in keep:
                    latest[k] = line
        if latest:
            out_dir.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(out_dir / f"{safe}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write("".join(v + "\n" for v in latest.values()))
