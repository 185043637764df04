"""Sync's state in PostgreSQL: the applied position per run (lite2pg.sync_state) and
the keys of the rows that count as rejected (lite2pg.sync_rejected)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from lite2pg.errors import SyncError
from lite2pg.rows import safe_filename
from lite2pg.rundir import MigrateOptions
from lite2pg.sync._common import STATE_SCHEMA, TableSync, qualified, reject_key, run_id


def lock_key(run: str) -> int:
    return int.from_bytes(
        hashlib.sha256(f"lite2pg-sync:{run}".encode()).digest()[:8], "big", signed=True
    )


class _State:
    """The state half of a Syncer (a mixin: the Syncer sets these attributes)."""

    pg: psycopg.Connection[Any]
    run: str
    run_dir: Path
    source_path: Path
    snapshot_seq: int
    mode: str
    lock: int
    tables: list[TableSync]
    opts: MigrateOptions

    def _ensure_state(self) -> None:
        with self.pg.transaction():
            self.pg.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("setup"),))
            self.pg.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(STATE_SCHEMA))
            )
            self.pg.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (run text PRIMARY KEY, run_dir text NOT NULL, "
                    "source text NOT NULL, applied bigint NOT NULL, changes bigint NOT NULL "
                    "DEFAULT 0, state text NOT NULL DEFAULT 'syncing', mode text NOT NULL, "
                    "updated_at timestamptz NOT NULL DEFAULT now())"
                ).format(qualified(STATE_SCHEMA, "sync_state"))
            )
            self.pg.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (run text, tbl text, key text, "
                    "PRIMARY KEY (run, tbl, key))"
                ).format(qualified(STATE_SCHEMA, "sync_rejected"))
            )
            row = self.pg.execute(
                sql.SQL("SELECT 1 FROM {} WHERE run = %s").format(
                    qualified(STATE_SCHEMA, "sync_state")
                ),
                (self.run,),
            ).fetchone()
            if row is None:
                self.pg.execute(
                    sql.SQL(
                        "INSERT INTO {} (run, run_dir, source, applied, mode) "
                        "VALUES (%s, %s, %s, %s, %s)"
                    ).format(qualified(STATE_SCHEMA, "sync_state")),
                    (
                        self.run,
                        str(self.run_dir.resolve()),
                        str(self.source_path),
                        self.snapshot_seq,
                        self.mode,
                    ),
                )
                self._seed_rejected()
            else:
                (mode,) = self.pg.execute(
                    sql.SQL("SELECT mode FROM {} WHERE run = %s").format(
                        qualified(STATE_SCHEMA, "sync_state")
                    ),
                    (self.run,),
                ).fetchone() or ("",)
                if mode != self.mode:
                    raise SyncError(
                        f"this run syncs with --capture={mode}, not {self.mode}",
                        f"run sync with --capture={mode}",
                    )

    def _seed_rejected(self) -> None:
        """The rows the bulk load rejected, by key: they count as rejected until changed."""
        rejects = self.run_dir / "rejects"
        for t in self.tables:
            path = rejects / f"{safe_filename(t.name)}.jsonl"
            if not path.is_file():
                continue
            keys: list[str] = []
            with path.open(encoding="utf-8") as f:
                for line in f:
                    if not line.strip():
                        continue
                    key = json.loads(line).get("key") or {}
                    if t.keys:
                        keys.append(reject_key(key, t.keys))
                    else:
                        keys.append(repr(("row", key.get("row_number"))))
            self._set_rejected(t, None, keys)

    def _set_rejected(self, t: TableSync, clear: Sequence[str] | None, add: Sequence[str]) -> None:
        """Forget the rejects of keys `clear` (None: of the whole table), then add `add`."""
        table = qualified(STATE_SCHEMA, "sync_rejected")
        if clear is None:
            self.pg.execute(
                sql.SQL("DELETE FROM {} WHERE run = %s AND tbl = %s").format(table),
                (self.run, t.name),
            )
        elif clear:
            self.pg.execute(
                sql.SQL("DELETE FROM {} WHERE run = %s AND tbl = %s AND key = ANY(%s)").format(
                    table
                ),
                (self.run, t.name, list(clear)),
            )
        if add:
            with self.pg.cursor() as cur:
                cur.executemany(
                    sql.SQL(
                        "INSERT INTO {} (run, tbl, key) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"
                    ).format(table),
                    [(self.run, t.name, k) for k in add],
                )

    def state(self) -> tuple[int, str]:
        row = self.pg.execute(
            sql.SQL("SELECT applied, state FROM {} WHERE run = %s").format(
                qualified(STATE_SCHEMA, "sync_state")
            ),
            (self.run,),
        ).fetchone()
        assert row is not None
        return int(row[0]), str(row[1])

    def _set_state(self, applied: int, changes: int, state: str | None = None) -> None:
        self.pg.execute(
            sql.SQL(
                "UPDATE {} SET applied = %s, changes = changes + %s, updated_at = now(), "
                "state = coalesce(%s, state) WHERE run = %s"
            ).format(qualified(STATE_SCHEMA, "sync_state")),
            (applied, changes, state, self.run),
        )

    def mark(self, state: str) -> None:
        with self.pg.transaction():
            applied, _ = self.state()
            self._set_state(applied, 0, state)

    def rejected_counts(self) -> dict[str, int]:
        rows = self.pg.execute(
            sql.SQL("SELECT tbl, count(*) FROM {} WHERE run = %s GROUP BY tbl").format(
                qualified(STATE_SCHEMA, "sync_rejected")
            ),
            (self.run,),
        ).fetchall()
        return {str(t): int(n) for t, n in rows}

    def locked_position(self) -> int:
        """In the caller's transaction: take the run's lock (one syncer at a time) and
        return the last applied position; refuse a run already cut over."""
        self.pg.execute("SELECT pg_advisory_xact_lock(%s)", (self.lock,))
        applied, state = self.state()
        if state == "cut over":
            raise SyncError(
                "this run was cut over already: the app writes to PostgreSQL now",
                "nothing to sync; lite2pg cleanup SOURCE removes the capture",
            )
        return applied


def forget_sync_state(conn: psycopg.Connection[Any], run_dir: Path) -> None:
    """Drop a run's sync position and rejected keys (a rollback emptied its tables)."""
    exists = conn.execute("SELECT to_regclass(%s)", (f"{STATE_SCHEMA}.sync_state",)).fetchone()
    if not exists or exists[0] is None:
        return
    for table in ("sync_state", "sync_rejected"):
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE run = %s").format(qualified(STATE_SCHEMA, table)),
            (run_id(run_dir),),
        )


def mark_cut_over(conn: psycopg.Connection[Any], run_dir: Path) -> bool:
    """Record that a run was cut over (an interrupted online cutover finished forwards), so
    sync refuses it from now on; idempotent. False when the run never synced."""
    exists = conn.execute("SELECT to_regclass(%s)", (f"{STATE_SCHEMA}.sync_state",)).fetchone()
    if not exists or exists[0] is None:
        return False
    cur = conn.execute(
        sql.SQL(
            "UPDATE {} SET state = 'cut over', updated_at = now() "
            "WHERE run = %s AND state <> 'cut over'"
        ).format(qualified(STATE_SCHEMA, "sync_state")),
        (run_id(run_dir),),
    )
    return cur.rowcount > 0
