"""Load rows into PostgreSQL with COPY; build keys, indexes and foreign keys after the data.

A table is loaded optimistically with one streamed COPY. Values lite2pg knows to be bad
never reach PostgreSQL (they are rejected on the way), but PostgreSQL may still refuse a
row (a CHECK, a varchar length, an enum of an existing schema). Then that table's
attempt is rolled back to its savepoint and replayed carefully: COPY per batch under a
savepoint, and a failing batch is split until the offending rows are found and rejected.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
from psycopg import sql

from lite2pg.errors import TargetError
from lite2pg.reasons import Category
from lite2pg.rows import RejectSink, TableCounts
from lite2pg.schema import TableMap
from lite2pg.sinks import CopyFileSink, TeeWriter
from lite2pg.target import server_failure

# Rows per SQLite fetch and per careful-mode COPY: large enough to amortise Python call
# overhead, small enough that a batch of wide rows stays a few MB.
BATCH_SIZE = 5_000

Progress = Callable[[str, int], None]


class _Pipe(Protocol):
    @property
    def dump_types(self) -> list[str] | None: ...
    @property
    def secret_columns(self) -> frozenset[str]: ...


class RowSource(Protocol):
    """Rows ready for COPY, in batches (a `RowStream` over SQLite, or a transformed CSV)."""

    @property
    def pipe(self) -> _Pipe: ...
    @property
    def counts(self) -> TableCounts: ...
    def batches(self) -> Iterator[list[tuple[Any, ...]]]: ...
    def reject(
        self,
        values: tuple[Any, ...],
        ordinal: int | None,
        column: str | None,
        reason: str,
        category: Category = ...,
    ) -> None: ...


RowFn = Callable[[tuple[Any, ...]], tuple[Any, ...]]


@dataclass
class TableResult:
    """What happened to one table."""

    source: str
    target: str
    read: int = 0
    loaded: int = 0
    rejected: int = 0
    filtered: int = 0
    bytes: int = 0
    seconds: float = 0.0
    careful: bool = False
    notes: list[str] = field(default_factory=list)
    passwords: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "read": self.read,
            "loaded": self.loaded,
            "rejected": self.rejected,
            "filtered": self.filtered,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "replayed_carefully": self.careful,
            "passwords": self.passwords,
            "notes": self.notes,
        }


def prefetch(items: Iterator[Any], depth: int = 4) -> Generator[Any, None, None]:
    """Produce `items` in a background thread, at most `depth` ahead of the consumer.

    SQLite steps with the GIL released, so reading and checking the next batch overlaps
    with formatting and sending this one (two cores: this process and the PostgreSQL backend).
    """
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(kind: str, value: Any) -> bool:
        """Queue one entry unless the consumer stopped (a full queue nobody empties
        would block this thread, and the consumer's join, for ever)."""
        while not stop.is_set():
            try:
                q.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put("item", item):
                    return
            put("end", None)
        except BaseException as e:  # handed to the consumer, which re-raises it
            put("error", e)

    worker = threading.Thread(target=produce, name="lite2pg-reader", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        worker.join()


def copy_statement(schema: str, table: str, columns: Sequence[str], freeze: bool) -> sql.Composed:
    return sql.SQL("COPY {}.{} ({}) FROM STDIN{}").format(
        sql.Identifier(schema),
        sql.Identifier(table),
        ident_list(columns),
        sql.SQL(" (FREEZE)") if freeze else sql.SQL(""),
    )


def load_table(
    conn: psycopg.Connection[Any],
    tm: TableMap,
    schema: str,
    rejects: RejectSink,
    stream: Callable[[bool], RowSource],
    *,
    prepare: Callable[[psycopg.Cursor[Any]], bool],
    tee: CopyFileSink | None = None,
) -> TableResult:
    """Load one table inside the caller's transaction, atomically (under a savepoint).

    `prepare` runs first under the savepoint (CREATE TABLE, or nothing for an existing
    table) and says whether COPY FREEZE is allowed. `stream` makes a fresh row stream; a
    careful replay makes a second one. `tee` gets the COPY data PostgreSQL took.
    """
    started = time.perf_counter()
    result = TableResult(tm.source.name, tm.target)
    for careful in (False, True):
        result = TableResult(tm.source.name, tm.target, careful=careful)
        rejects.reset(tm.source.name)
        if tee is not None:
            tee.restart()
        rows = stream(careful)
        try:
            with conn.transaction(), conn.cursor() as cur:
                freeze = prepare(cur) and not careful
                stmt = copy_statement(schema, tm.target, tm.target_columns, freeze)
                if careful:
                    for batch in rows.batches():
                        _copy_or_split(conn, cur, stmt, rows, tm, batch, result, tee)
                else:
                    writer = TeeWriter(cur, tee) if tee is not None else None
                    with cur.copy(stmt, writer=writer) as cp:
                        if rows.pipe.dump_types:
                            cp.set_types(rows.pipe.dump_types)
                        raw = getattr(rows, "raw_chunks", lambda: None)()
                        if raw is not None:  # COPY data kept by an earlier run, as it is
                            for chunk in raw:
                                cp.write(chunk)
                            result.loaded = rows.counts.read
                        else:
                            write = cp.write_row
                            for batch in prefetch(rows.batches()):
                                for r in batch:
                                    write(r)
                                result.loaded += len(batch)
                result.bytes = _relation_size(cur, schema, tm.target)
        except psycopg.errors.ProgramLimitExceeded as e:
            # An OperationalError by class, but the connection is fine: the table's shape
            # does not fit (most often, more than 8 kB of fixed-size columns in one row).
            raise TargetError(
                f"PostgreSQL cannot hold the rows of {tm.target}: {_first_line(e)}",
                "a row's fixed-size columns must fit in 8 kB: --cast some of them to text, "
                "or drop some with a plan",
            ) from None
        except psycopg.OperationalError as e:
            raise server_failure(e, f"loading {tm.source.name}") from None
        except psycopg.errors.InsufficientPrivilege as e:
            raise TargetError(
                f"not allowed to load {tm.target}: {_first_line(e)}", "grant the user CREATE/INSERT"
            ) from None
        except (psycopg.Error, TypeError, ValueError):
            # A typed dumper refused a value (TypeError) or PostgreSQL refused a row:
            # replay the table row by row through the Python converters.
            if careful:
                raise
            continue
        break
    counts = rows.counts
    result.read = counts.read
    result.rejected = counts.rejected
    result.filtered = counts.filtered
    result.seconds = time.perf_counter() - started
    if result.careful:
        result.notes.append("PostgreSQL refused some rows; the table was replayed batch by batch")
    if counts.orphans_nulled:
        result.notes.append(f"{counts.orphans_nulled} orphan reference(s) set to NULL by the plan")
    if counts.passwords:
        result.passwords = dict(counts.passwords)
    return result


def _copy_or_split(
    conn: psycopg.Connection[Any],
    cur: psycopg.Cursor[Any],
    stmt: sql.Composed,
    rows: RowSource,
    tm: TableMap,
    batch: list[tuple[Any, ...]],
    result: TableResult,
    tee: CopyFileSink | None = None,
) -> None:
    if not batch:
        return
    writer = TeeWriter(cur, tee, buffered=True) if tee is not None else None
    try:
        with conn.transaction(), cur.copy(stmt, writer=writer) as cp:
            if rows.pipe.dump_types:
                cp.set_types(rows.pipe.dump_types)
            for r in batch:
                cp.write_row(r)
        result.loaded += len(batch)
    except psycopg.OperationalError:
        raise
    except (psycopg.Error, TypeError, ValueError) as e:
        if len(batch) == 1:
            if isinstance(e, psycopg.Error):
                src_col = _source_column(tm, _column_from_context(e))
                reason = _pg_reason(e, secret=src_col in rows.pipe.secret_columns)
            else:
                src_col, reason = None, f"PostgreSQL cannot take the row: {e}"
            # The rejects file then shows the values PostgreSQL refused, after conversion.
            rows.reject(batch[0], None, src_col, reason, Category.REFUSED)
            return
        mid = len(batch) // 2
        _copy_or_split(conn, cur, stmt, rows, tm, batch[:mid], result, tee)
        _copy_or_split(conn, cur, stmt, rows, tm, batch[mid:], result, tee)


def _column_from_context(e: psycopg.Error) -> str | None:
    if e.diag.column_name:
        return e.diag.column_name
    m = re.search(r'column (\w+|"[^"]+")', e.diag.context or "")
    if m:
        return m.group(1).strip('"')
    return None


def _source_column(tm: TableMap, target_column: str | None) -> str | None:
    if target_column is None:
        return None
    for c in tm.columns:
        if c.target == target_column:
            return c.source
    return target_column


def _pg_reason(e: psycopg.Error, *, secret: bool) -> str:
    primary = e.diag.message_primary or _first_line(e)
    if secret:
        primary = re.sub(r'"[^"]*"', '"<redacted>"', primary)
    sqlstate = e.sqlstate or ""
    return f"PostgreSQL refused the row: {primary}" + (f" [{sqlstate}]" if sqlstate else "")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _relation_size(cur: psycopg.Cursor[Any], schema: str, table: str) -> int:
    cur.execute(
        "SELECT pg_total_relation_size(format('%%I.%%I', %s::text, %s::text)::regclass)",
        (schema, table),
    )
    row = cur.fetchone()
    return int(row[0]) if row else 0


@dataclass
class PhaseResult:
    """One post-load phase (keys, indexes, foreign keys, sequences, views)."""

    name: str
    done: int = 0
    failed: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    # What was not built and makes the app see PostgreSQL behave otherwise than SQLite (a
    # CHECK in SQLite SQL that PostgreSQL does not take): behaviour changes, not failures.
    changes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "done": self.done,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
        }
        if self.changes:
            out["changes"] = self.changes
        return out


def attempt(
    conn: psycopg.Connection[Any], phase: PhaseResult, what: str, stmt: sql.SQL | sql.Composed
) -> bool:
    """Run one DDL statement under a savepoint; a refusal becomes a note, not a failure."""
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(stmt)
    except psycopg.OperationalError as e:
        raise server_failure(e, f"building {phase.name}") from None
    except psycopg.Error as e:
        phase.failed += 1
        phase.notes.append(f"{what}: not created: {_first_line(e)}")
        return False
    phase.done += 1
    return True


def attempt_check(
    conn: psycopg.Connection[Any], phase: PhaseResult, what: str, stmt: sql.Composed
) -> None:
    """Build one CHECK: rows that break it are a failure (the data is not what the app's
    schema says); SQL that PostgreSQL does not take is a behaviour change."""
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(stmt)
    except psycopg.OperationalError as e:
        raise server_failure(e, f"building {phase.name}") from None
    except psycopg.errors.CheckViolation as e:
        phase.failed += 1
        phase.notes.append(f"{what}: not created: {_first_line(e)}")
    except psycopg.Error as e:
        phase.changes.append(f"{what} not kept: PostgreSQL does not take it ({_first_line(e)})")
    else:
        phase.done += 1


def ident_list(names: Sequence[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)
