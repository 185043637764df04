"""Load rows into PostgreSQL with COPY; build keys, indexes and foreign keys after the data.

A table is loaded optimistically with one streamed COPY. Values lite2pg knows to be bad
never reach PostgreSQL (they are rejected on the way), but PostgreSQL may still refuse a
row (a CHECK, a varchar length, an enum of an existing schema). Then that table's
attempt is rolled back to its savepoint and replayed carefully: COPY per batch under a
savepoint, and a failing batch is split until the offending rows are found and rejected.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg import sql

from lite2pg.coerce import converter, ok_predicate
from lite2pg.errors import TargetError, TransformError
from lite2pg.schema import TableMap
from lite2pg.source import quote_ident, stream_rows

# Rows per SQLite fetch and per careful-mode COPY: large enough to amortise Python call
# overhead, small enough that a batch of wide rows stays a few MB.
BATCH_SIZE = 5_000

Progress = Callable[[str, int], None]
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
            "notes": self.notes,
        }


def prefetch(items: Iterator[Any], depth: int = 4) -> Iterator[Any]:
    """Produce `items` in a background thread, at most `depth` ahead of the consumer.

    SQLite steps with the GIL released, so reading and checking the next batch overlaps
    with formatting and sending this one (two cores: this process and the PostgreSQL backend).
    """
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", None))
        except BaseException as e:  # handed to the consumer, which re-raises it
            q.put(("error", e))

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


class RowRejected(Exception):
    """A row that cannot be loaded: which column and why."""

    def __init__(self, column: str | None, reason: str) -> None:
        self.column = column
        self.reason = reason
        super().__init__(reason)


def _json_value(v: Any) -> Any:
    if isinstance(v, bytes):
        return {"$base64": base64.b64encode(bytes(v)).decode("ascii")}
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return {"$real": repr(v)}
    if isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            return {"$escaped": v.encode("utf-8", "backslashreplace").decode("ascii")}
    return v


class RejectSink:
    """Writes rejects/<table>.jsonl: key, column, reason and the (redacted) source row."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files: dict[str, IO[str]] = {}
        self.paths: dict[str, Path] = {}

    def reset(self, table: str) -> None:
        """Forget what an earlier attempt at this table wrote."""
        f = self._files.pop(table, None)
        if f is not None:
            f.close()
        path = self.paths.pop(table, None)
        if path is not None and path.exists():
            path.unlink()

    def write(
        self,
        table: str,
        key: dict[str, Any],
        column: str | None,
        reason: str,
        row: dict[str, Any],
        secret_columns: frozenset[str] = frozenset(),
    ) -> None:
        f = self._files.get(table)
        if f is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"{_safe_filename(table)}.jsonl"
            # The source row may hold secrets of columns we do not know are secret: 0600.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            f = self._files[table] = open(fd, "w", encoding="utf-8")  # noqa: SIM115
            self.paths[table] = path
        record = {
            "table": table,
            "key": {k: _json_value(v) for k, v in key.items()},
            "column": column,
            "reason": reason,
            "row": {
                k: ("<redacted>" if k in secret_columns and v is not None else _json_value(v))
                for k, v in row.items()
            },
        }
        f.write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "_"


def _balanced_and(preds: Sequence[str]) -> str:
    """AND many predicates as a balanced tree: SQLite limits expression depth to 1000."""
    if not preds:
        return "1"
    if len(preds) == 1:
        return preds[0]
    mid = len(preds) // 2
    return f"({_balanced_and(preds[:mid])} AND {_balanced_and(preds[mid:])})"


@dataclass
class RowPipeline:
    """How rows of one table are selected from SQLite and turned into target rows."""

    select_exprs: list[str]  # first expression is the fast-path flag
    convert: RowFn  # full conversion of a raw row (without the flag); raises RowRejected
    source_columns: list[str]
    key_columns: list[str]
    secret_columns: frozenset[str]


def default_pipeline(tm: TableMap) -> RowPipeline:
    """Type coercion only: the fast path for values that fit, converters for the rest."""
    preds: list[str] = []
    convs: list[tuple[int, str, Callable[[Any], Any]]] = []
    for i, c in enumerate(tm.columns):
        q = quote_ident(c.source)
        pred = ok_predicate(c.pg_type, q)
        preds.append(pred if pred is not None else "0")
        convs.append((i, c.source, converter(c.pg_type, secret=c.secret)))

    def convert(raw: tuple[Any, ...]) -> tuple[Any, ...]:
        out = list(raw)
        for i, name, fn in convs:
            try:
                out[i] = fn(raw[i])
            except TransformError as e:
                raise RowRejected(name, e.reason) from None
        return tuple(out)

    return RowPipeline(
        select_exprs=[_balanced_and(preds)] + [quote_ident(c.source) for c in tm.columns],
        convert=convert,
        source_columns=[c.source for c in tm.columns],
        key_columns=list(tm.source.primary_key),
        secret_columns=frozenset(c.source for c in tm.columns if c.secret),
    )


class _Rows:
    """Streams converted rows of a table, recording rejects as it goes."""

    def __init__(
        self,
        src: sqlite3.Connection,
        tm: TableMap,
        pipe: RowPipeline,
        rejects: RejectSink,
        result: TableResult,
        progress: Progress | None,
        where: str | None,
        batch_size: int,
    ) -> None:
        self.src, self.tm, self.pipe = src, tm, pipe
        self.rejects, self.result, self.progress = rejects, result, progress
        self.where, self.batch_size = where, batch_size

    def batches(self) -> Iterator[list[tuple[Any, ...]]]:
        result = self.result
        for raw_batch, decoded_slowly in stream_rows(
            self.src,
            self.tm.source,
            self.pipe.select_exprs,
            where=self.where,
            batch_size=self.batch_size,
        ):
            out: list[tuple[Any, ...]] = []
            append = out.append
            if decoded_slowly:
                # Text may be InvalidText bytes, which the SQL flag cannot see: check all.
                for raw in raw_batch:
                    self._slow(raw, raw_batch, out)
            else:
                for raw in raw_batch:
                    if raw[0]:
                        append(raw[1:])
                        continue
                    self._slow(raw, raw_batch, out)
            result.read += len(raw_batch)
            if self.progress is not None:
                self.progress(self.tm.source.name, result.read)
            yield out

    def _slow(
        self, raw: tuple[Any, ...], batch: list[tuple[Any, ...]], out: list[tuple[Any, ...]]
    ) -> None:
        values = raw[1:]
        try:
            out.append(self.pipe.convert(values))
        except RowRejected as e:
            # Rows are numbered in scan order; the index lookup happens only on a reject.
            self.reject(values, self.result.read + batch.index(raw), e.column, e.reason)

    def reject(
        self, values: tuple[Any, ...], ordinal: int, column: str | None, reason: str
    ) -> None:
        row = dict(zip(self.pipe.source_columns, values, strict=True))
        key = {k: row[k] for k in self.pipe.key_columns if k in row} or {"row_number": ordinal + 1}
        self.rejects.write(self.tm.source.name, key, column, reason, row, self.pipe.secret_columns)
        self.result.rejected += 1


def copy_statement(schema: str, table: str, columns: Sequence[str], freeze: bool) -> sql.Composed:
    return sql.SQL("COPY {}.{} ({}) FROM STDIN{}").format(
        sql.Identifier(schema),
        sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        sql.SQL(" (FREEZE)") if freeze else sql.SQL(""),
    )


def load_table(
    conn: psycopg.Connection[Any],
    src: sqlite3.Connection,
    tm: TableMap,
    schema: str,
    rejects: RejectSink,
    *,
    prepare: Callable[[psycopg.Cursor[Any]], bool],
    pipeline: RowPipeline | None = None,
    where: str | None = None,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
) -> TableResult:
    """Load one table inside the caller's transaction, atomically (under a savepoint).

    `prepare` runs first under the savepoint (CREATE TABLE, or nothing for an existing
    table) and says whether COPY FREEZE is allowed.
    """
    pipe = pipeline or default_pipeline(tm)
    started = time.perf_counter()
    result = TableResult(tm.source.name, tm.target)
    for careful in (False, True):
        result = TableResult(tm.source.name, tm.target, careful=careful)
        rejects.reset(tm.source.name)
        rows = _Rows(src, tm, pipe, rejects, result, progress, where, batch_size)
        try:
            with conn.transaction(), conn.cursor() as cur:
                freeze = prepare(cur) and not careful
                stmt = copy_statement(schema, tm.target, tm.target_columns, freeze)
                if careful:
                    _copy_carefully(conn, cur, stmt, rows)
                else:
                    with cur.copy(stmt) as cp:
                        write = cp.write_row
                        for batch in prefetch(rows.batches()):
                            for r in batch:
                                write(r)
                            result.loaded += len(batch)
                result.bytes = _relation_size(cur, schema, tm.target)
        except psycopg.OperationalError as e:
            raise TargetError(
                f"lost the connection while loading {tm.source.name}: {_first_line(e)}",
                "the target was rolled back; run the same command again",
            ) from None
        except psycopg.errors.InsufficientPrivilege as e:
            raise TargetError(
                f"not allowed to load {tm.target}: {_first_line(e)}", "grant the user CREATE/INSERT"
            ) from None
        except psycopg.Error:
            if careful:
                raise
            continue
        break
    result.seconds = time.perf_counter() - started
    if result.careful:
        result.notes.append("PostgreSQL refused some rows; the table was replayed row by row")
    return result


def _copy_carefully(
    conn: psycopg.Connection[Any], cur: psycopg.Cursor[Any], stmt: sql.Composed, rows: _Rows
) -> None:
    for batch in rows.batches():
        _copy_or_split(conn, cur, stmt, rows, batch)


def _copy_or_split(
    conn: psycopg.Connection[Any],
    cur: psycopg.Cursor[Any],
    stmt: sql.Composed,
    rows: _Rows,
    batch: list[tuple[Any, ...]],
) -> None:
    if not batch:
        return
    try:
        with conn.transaction(), cur.copy(stmt) as cp:
            for r in batch:
                cp.write_row(r)
        rows.result.loaded += len(batch)
    except psycopg.OperationalError:
        raise
    except psycopg.Error as e:
        if len(batch) == 1:
            column = _column_from_context(e)
            src_col = _source_column(rows.tm, column)
            reason = _pg_reason(e, secret=src_col in rows.pipe.secret_columns)
            # The rejects file then shows the values PostgreSQL refused, after conversion.
            rows.reject(batch[0], rows.result.read, src_col, reason)
            return
        mid = len(batch) // 2
        _copy_or_split(conn, cur, stmt, rows, batch[:mid])
        _copy_or_split(conn, cur, stmt, rows, batch[mid:])


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "done": self.done,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
        }


def attempt(
    conn: psycopg.Connection[Any], phase: PhaseResult, what: str, stmt: sql.SQL | sql.Composed
) -> bool:
    """Run one DDL statement under a savepoint; a refusal becomes a note, not a failure."""
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(stmt)
    except psycopg.OperationalError as e:
        raise TargetError(f"lost the connection during {phase.name}: {_first_line(e)}") from None
    except psycopg.Error as e:
        phase.failed += 1
        phase.notes.append(f"{what}: not created: {_first_line(e)}")
        return False
    phase.done += 1
    return True


def ident_list(names: Sequence[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)
