"""Change capture on a live SQLite database, for online migration (`prepare`, `cleanup`).

SQLite's session extension sees only the changes made through its own connection, so it
cannot observe the application's writes; triggers can. `prepare` adds one table and, per
migrated table, three AFTER triggers (insert, update, delete) and, per UNIQUE constraint,
BEFORE triggers that log the rows an `INSERT OR REPLACE` is about to delete silently
(SQLite fires no delete trigger for those). Each logged change is (sequence number, table,
operation, key); the key is the primary key's values as SQLite stores them.

`sync` reads the changes after a point and re-reads the rows they name: a row that still
exists is upserted, one that does not is deleted. That makes replay idempotent and keeps
it in order whatever the operations were.

Tables without a primary key (or with more than `MAX_KEY_COLUMNS` key columns) log the
table alone: sync then reloads the whole table.

`--capture=diff` needs no triggers: `diff_changes` compares two snapshots by key with a
full-row comparison (values and storage classes) done inside SQLite.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lite2pg import installed, source
from lite2pg.artifacts import atomic_json
from lite2pg.errors import SourceError, UsageError
from lite2pg.source import Table, quote_ident

CHANGES_TABLE = installed.CHANGES_TABLE
CREATE_CHANGES = installed.CREATE_CHANGES
MAX_KEY_COLUMNS = installed.KEY_COLUMNS
# How long prepare/cleanup/cutover wait for the application's write lock.
LOCK_WAIT_S = 10.0
MOVED_MESSAGE = "lite2pg: this database moved to PostgreSQL; write there"


def key_columns(table: Table) -> tuple[str, ...] | None:
    """The columns that identify a row for capture, or None: reload the whole table."""
    if table.primary_key and len(table.primary_key) <= MAX_KEY_COLUMNS:
        return table.primary_key
    return None


_trigger = installed.trigger_name


def _log(table: str, op: str, keys: Sequence[str], alias: str) -> str:
    cols = ", ".join(f"k{i}" for i in range(1, len(keys) + 1))
    vals = ", ".join(f"{alias}.{quote_ident(k)}" for k in keys)
    head = f"INSERT INTO {CHANGES_TABLE} (tbl, op{', ' + cols if cols else ''}) "
    return head + f"SELECT {_literal(table)}, '{op}'{', ' + vals if vals else ''}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def trigger_sql(table: Table) -> list[str]:
    """CREATE TRIGGER statements that log every change to `table`."""
    keys = key_columns(table)
    name = quote_ident(table.name)
    k = keys or ()
    changed = " OR ".join(f"OLD.{quote_ident(c)} IS NOT NEW.{quote_ident(c)}" for c in k)
    out = [
        f"CREATE TRIGGER {quote_ident(_trigger('ins', table.name))} AFTER INSERT ON {name} "
        f"BEGIN {_log(table.name, 'I', k, 'NEW')}; END",
        f"CREATE TRIGGER {quote_ident(_trigger('upd', table.name))} AFTER UPDATE ON {name} "
        "BEGIN "
        + (f"{_log(table.name, 'D', k, 'OLD')} WHERE {changed}; " if k else "")
        + f"{_log(table.name, 'U', k, 'NEW')}; END",
        f"CREATE TRIGGER {quote_ident(_trigger('del', table.name))} AFTER DELETE ON {name} "
        f"BEGIN {_log(table.name, 'D', k, 'OLD')}; END",
    ]
    if not keys:
        return out
    # INSERT OR REPLACE / UPDATE OR REPLACE delete the rows that clash on a UNIQUE
    # constraint without firing delete triggers: log those rows' keys before the write.
    for n, index in enumerate(table.indexes):
        if not index.unique or not index.plain or index.origin == "pk":
            continue
        if tuple(index.columns) == tuple(keys):
            continue
        clash = " AND ".join(f"t.{quote_ident(c)} = NEW.{quote_ident(c)}" for c in index.columns)
        other = " OR ".join(f"t.{quote_ident(c)} IS NOT NEW.{quote_ident(c)}" for c in keys)
        select = ", ".join(f"t.{quote_ident(c)}" for c in keys)
        cols = ", ".join(f"k{i}" for i in range(1, len(keys) + 1))
        body = (
            f"INSERT INTO {CHANGES_TABLE} (tbl, op, {cols}) "
            f"SELECT {_literal(table.name)}, 'D', {select} FROM {name} t "
            f"WHERE {clash} AND ({other})"
        )
        for event in ("INSERT", "UPDATE"):
            trig = _trigger(f"rep{n}{event[0].lower()}", table.name)
            out.append(
                f"CREATE TRIGGER {quote_ident(trig)} BEFORE {event} ON {name} BEGIN {body}; END"
            )
    return out


def block_sql(table: str) -> list[str]:
    """Triggers that refuse every write to `table` (installed by an online cutover)."""
    name = quote_ident(table)
    return [
        f"CREATE TRIGGER IF NOT EXISTS {quote_ident(_trigger(f'block{op[0].lower()}', table))} "
        f"BEFORE {op} ON {name} BEGIN SELECT RAISE(ABORT, {_literal(MOVED_MESSAGE)}); END"
        for op in ("INSERT", "UPDATE", "DELETE")
    ]


def unblock_sql(table: str) -> list[str]:
    """Remove what `block_sql` installed on `table` (nothing else)."""
    return [f"DROP TRIGGER IF EXISTS {quote_ident(_trigger(f'block{op}', table))}" for op in "iud"]


def blocked(conn: sqlite3.Connection, tables: Sequence[str]) -> list[str]:
    """Those of `tables` on which a cutover's write block is installed."""
    names = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    return [t for t in tables if _trigger("blocki", t) in names]


def open_writable(path: Path, timeout: float = LOCK_WAIT_S) -> sqlite3.Connection:
    """A connection that may change the source (prepare, cleanup, the cutover's freeze)."""
    source.check_sqlite_file(path)
    try:
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        source.register_collations(conn)
    except sqlite3.DatabaseError as e:
        raise SourceError(
            str(path), f"cannot open: {e}", "is the file a complete SQLite database?"
        ) from None
    return conn


def begin_immediate(conn: sqlite3.Connection, path: Path) -> float:
    """Take SQLite's write lock (the application's writers then wait); return when."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as e:
        raise SourceError(
            str(path),
            f"could not take the write lock: {e}",
            "a writer holds it too long; try again when the application is quieter",
        ) from None
    return time.perf_counter()


@dataclass
class Prepared:
    """What `prepare` added, table by table."""

    path: str
    tables: list[str] = field(default_factory=list)
    keyless: list[str] = field(default_factory=list)  # tables reloaded whole on a change
    triggers: int = 0
    already: bool = False


def prepare(path: Path, tables: Sequence[str] | None = None) -> Prepared:
    """Install change capture on `path` (idempotent: an earlier prepare is replaced)."""
    conn = open_writable(path)
    try:
        # Triggers need the names only: no pass over the live tables' values.
        schema = source.discover(conn, values=False)
        chosen = list(schema.tables)  # discovery leaves out what lite2pg installed
        if tables:
            names = {t.name for t in chosen}
            unknown = [n for n in tables if n not in names]
            if unknown:
                raise UsageError(
                    f"no table {unknown[0]!r} in {path}",
                    f"tables there: {', '.join(sorted(names)) or '(none)'}",
                )
            chosen = [t for t in chosen if t.name in tables]
        result = Prepared(str(path))
        begin_immediate(conn, path)
        try:
            existing = _capture_triggers(conn)
            result.already = bool(existing)
            for name in existing:
                conn.execute(f"DROP TRIGGER {quote_ident(name)}")
            conn.execute(CREATE_CHANGES)
            for t in chosen:
                for stmt in trigger_sql(t):
                    conn.execute(stmt)
                    result.triggers += 1
                result.tables.append(t.name)
                if key_columns(t) is None:
                    result.keyless.append(t.name)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return result
    finally:
        conn.close()


def _capture_triggers(conn: sqlite3.Connection) -> list[str]:
    """lite2pg's own triggers (a user's trigger named _lite2pg_* is left alone)."""
    return [
        name
        for name, table in conn.execute(
            "SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'"
        )
        if installed.is_installed_trigger(name, table)
    ]


@dataclass
class Cleaned:
    path: str
    triggers: int
    table: bool
    blocked: bool  # a cutover had blocked writes; they are allowed again


def cleanup(path: Path) -> Cleaned:
    """Remove every trace of `prepare` (and of an online cutover's write block)."""
    conn = open_writable(path)
    try:
        begin_immediate(conn, path)
        try:
            names = _capture_triggers(conn)
            blocked = any("_block" in n for n in names)
            for name in names:
                conn.execute(f"DROP TRIGGER {quote_ident(name)}")
            had_table = has_capture(conn)
            conn.execute(f"DROP TABLE IF EXISTS {CHANGES_TABLE}")
            with contextlib.suppress(sqlite3.OperationalError):  # no AUTOINCREMENT table left
                conn.execute("DELETE FROM sqlite_sequence WHERE name = ?", (CHANGES_TABLE,))
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return Cleaned(str(path), len(names), had_table, blocked)
    finally:
        conn.close()


def has_capture(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (CHANGES_TABLE,)
    ).fetchone()
    return row is not None


def last_seq(conn: sqlite3.Connection) -> int | None:
    """The newest change's sequence number (0: none yet), or None without capture."""
    if not has_capture(conn):
        return None
    row = conn.execute(f"SELECT coalesce(max(seq), 0) FROM {CHANGES_TABLE}").fetchone()
    return int(row[0])


@dataclass
class Changes:
    """The rows changed between two points: per table, the keys, or the whole table."""

    first: int  # sequence numbers (capture) or snapshot generations (diff)
    last: int
    count: int = 0  # changes read (one row may change many times)
    keys: dict[str, set[tuple[Any, ...]]] = field(default_factory=dict)
    whole: set[str] = field(default_factory=set)
    oldest_at: float | None = None  # UNIX time of the oldest change read

    @property
    def tables(self) -> set[str]:
        return set(self.keys) | self.whole


def read_changes(
    conn: sqlite3.Connection, after: int, limit: int, key_sizes: dict[str, int | None]
) -> Changes:
    """Changes after sequence number `after`, at most `limit` of them, in the caller's
    read transaction. `key_sizes` gives each captured table's key width (None: keyless);
    changes to other tables are skipped."""
    cols = ", ".join(f"k{i}" for i in range(1, MAX_KEY_COLUMNS + 1))
    rows = conn.execute(
        f"SELECT seq, tbl, at, {cols} FROM {CHANGES_TABLE} WHERE seq > ? ORDER BY seq LIMIT ?",
        (after, limit),
    ).fetchall()
    changes = Changes(after, after)
    for seq, tbl, at, *keys in rows:
        changes.last = seq
        changes.count += 1
        if changes.oldest_at is None:
            changes.oldest_at = float(at)
        if tbl not in key_sizes:
            continue
        width = key_sizes[tbl]
        if width is None:
            changes.whole.add(tbl)
        else:
            changes.keys.setdefault(tbl, set()).add(tuple(keys[:width]))
    return changes


def diff_changes(
    old: Path, new: Path, tables: Sequence[Table], generation: tuple[int, int]
) -> Changes:
    """The changes between two snapshots, by key, compared inside SQLite (values and
    storage classes, so 1 -> '1' counts as a change)."""
    changes = Changes(*generation)
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("ATTACH DATABASE ? AS old", (f"{old.resolve().as_uri()}?mode=ro",))
        conn.execute("ATTACH DATABASE ? AS new", (f"{new.resolve().as_uri()}?mode=ro",))
        for t in tables:
            keys = key_columns(t)
            name = quote_ident(t.name)
            full = ", ".join(
                f"{quote_ident(c.name)}, typeof({quote_ident(c.name)})" for c in t.columns
            )
            if keys is None:
                differ = conn.execute(
                    f"SELECT EXISTS (SELECT {full} FROM old.{name} EXCEPT "
                    f"SELECT {full} FROM new.{name}) OR EXISTS (SELECT {full} FROM new.{name} "
                    f"EXCEPT SELECT {full} FROM old.{name})"
                ).fetchone()[0]
                if differ:
                    changes.whole.add(t.name)
                    changes.count += 1
                continue
            k = ", ".join(quote_ident(c) for c in keys)
            found: set[tuple[Any, ...]] = set()
            for query in (
                f"SELECT {k} FROM (SELECT {full} FROM new.{name} "
                f"EXCEPT SELECT {full} FROM old.{name})",
                f"SELECT {k} FROM old.{name} EXCEPT SELECT {k} FROM new.{name}",
            ):
                for row in conn.execute(query):
                    found.add(tuple(row))
            if found:
                changes.keys[t.name] = found
                changes.count += len(found)
        return changes
    finally:
        conn.close()


CAPTURE_FILE = "capture.json"


def write_capture_file(run_dir: Path, snap: Path, mode: str = "triggers") -> int | None:
    """Record in the run directory where the snapshot stands in the change log, when the
    source was prepared; sync starts after that point. Returns the sequence number."""
    conn = source.open_readonly(snap)
    try:
        seq = last_seq(conn)
    finally:
        conn.close()
    path = run_dir / CAPTURE_FILE
    if seq is None:
        path.unlink(missing_ok=True)
        return None
    data = {"mode": mode, "snapshot_seq": seq, "at": time.time()}
    atomic_json(path, data)
    return seq


def read_capture_file(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / CAPTURE_FILE
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data
