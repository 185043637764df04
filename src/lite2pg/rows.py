"""Source rows -> target rows: the plan's transforms, orphan policies, password hashing and
type coercion, streamed in batches, with every rejected row recorded and counted.

Rows whose values all fit their target types as they are (decided by one SQL expression that
SQLite evaluates in C) skip Python conversion entirely; columns with plan transforms always
go through Python.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

from lite2pg.coerce import ALWAYS, DUMP_TYPES, PgType, converter, ok_predicate
from lite2pg.errors import TransformError
from lite2pg.plan import TablePlan, orphan_named, orphan_policy
from lite2pg.reasons import Category
from lite2pg.schema import TableMap
from lite2pg.source import ForeignKey, Table, count_rows, quote_ident, stream_rows
from lite2pg.transforms.passwords import HashResult, PasswordHasher, PasswordPolicy
from lite2pg.transforms.passwords import prepare as prepare_password

Progress = Callable[[str, int], None]
REDACTED = "<redacted>"
Row = tuple[Any, ...]


class RowRejected(Exception):
    """A row that cannot be loaded: which column and why (with and without the value)."""

    def __init__(
        self, column: str | None, reason: str, category: Category = Category.OTHER
    ) -> None:
        self.column = column
        self.reason = reason
        self.category = category
        # The row's values and the conversions after the rejecting one, for `later`.
        self.rest: tuple[list[Any], _Steps] = ([], [])
        super().__init__(reason)

    def later(self) -> list[tuple[str, TransformError, Any]]:
        """The columns after the rejecting one that would reject the row too, as (column,
        error, value): `check` shows every column a fix is needed in, not only the first
        of each row. Computed on demand: a run does not need them."""
        out, steps = self.rest
        failures: list[tuple[str, TransformError, Any]] = []
        for i, name, fn in steps:
            try:
                fn(out[i])
            except TransformError as e:
                failures.append((name, e, out[i]))
        return failures


class RejectRecord(NamedTuple):
    """One rejected row as a stream remembers it: its column, reason, category, key, and
    the source value of that column (None for a row-level reason)."""

    column: str | None
    reason: str
    key: dict[str, Any]
    category: Category
    value: Any


@dataclass
class TableCounts:
    """Rows of one table, as they went: read = loaded + rejected + filtered."""

    read: int = 0
    rejected: int = 0
    filtered: int = 0
    orphans_nulled: int = 0
    orphans_kept: int = 0
    passwords: dict[str, int] = field(default_factory=dict)


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
    if v is None or isinstance(v, bool | int | float):
        return v
    return str(v)


def from_json_value(v: Any) -> Any:
    """A value as a rejects file wrote it (`_json_value`), back to its Python value."""
    if isinstance(v, dict):
        if "$base64" in v:
            return base64.b64decode(v["$base64"])
        if "$real" in v:
            return float(v["$real"])
        if "$escaped" in v:
            return v["$escaped"]
    return v


def safe_filename(name: str) -> str:
    """A file name for a table: the name itself when it is plain, else the name with other
    characters as `_` plus a digest of the name, so that "a b" and "a_b" never share a file."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    if safe == name and not name.startswith("."):
        return name
    return f"{safe}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


class RejectSink:
    """Writes rejects/<table>.jsonl: key, column, reason and the (redacted) source row."""

    def __init__(self, directory: Path, suffix: str = "") -> None:
        self.directory = directory
        self.suffix = suffix  # a part of a table loaded in pieces writes a file of its own
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
        category: Category | None = None,
    ) -> None:
        f = self._files.get(table)
        if f is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"{safe_filename(table)}{self.suffix}.jsonl"
            # The source row may hold secrets of columns we do not know are secret: 0600.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            f = self._files[table] = open(fd, "w", encoding="utf-8")  # noqa: SIM115
            self.paths[table] = path
        record = {
            "table": table,
            "key": {k: _json_value(v) for k, v in key.items()},
            "column": column,
            "reason": reason,
            **({"category": category.name.lower()} if category is not None else {}),
            "row": {
                k: (REDACTED if k in secret_columns and v is not None else _json_value(v))
                for k, v in row.items()
            },
        }
        # ASCII only: U+0085 and U+2028 are line breaks to some readers, and one record
        # must stay one line.
        f.write(json.dumps(record, ensure_ascii=True) + "\n")

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


def read_rejects(*paths: Path) -> Iterator[dict[str, Any]]:
    """The records `RejectSink` wrote, file after file (a directory: its files in name
    order); a file that is not there has none."""
    for path in paths:
        files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
        for file in files:
            if not file.is_file():
                continue
            with file.open(encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        yield json.loads(line)


class GoneRows:
    """Keys of parent rows that will not be in PostgreSQL (rejected, filtered or skipped).

    A child row that references one is an orphan there, even though its parent exists in
    SQLite. The keys live in TEMP tables of the source connection (allowed on a read-only
    one), so orphan checks stay inside SQLite's query.
    """

    def __init__(self, src: sqlite3.Connection, tables: Sequence[Table]) -> None:
        self.src = src
        self._tables: dict[tuple[str, tuple[str, ...]], str] = {}
        for t in tables:
            for fk in t.foreign_keys:
                key = (fk.ref_table.lower(), fk.ref_columns)
                if key in self._tables or not fk.ref_columns:
                    continue
                name = f"_lite2pg_gone_{len(self._tables)}"
                cols = ", ".join(f"k{i}" for i in range(len(fk.ref_columns)))
                src.execute(f"DROP TABLE IF EXISTS temp.{name}")
                src.execute(f"CREATE TEMP TABLE {name} ({cols}, PRIMARY KEY ({cols}))")
                self._tables[key] = name

        self.recorded: dict[str, list[tuple[Any, ...]]] = {}

    def record(self, table: str, row: dict[str, Any]) -> None:
        for (parent, cols), name in self._tables.items():
            if parent == table.lower() and all(c in row for c in cols):
                key = tuple(row[c] for c in cols)
                self._insert(name, [key])
                self.recorded.setdefault(name, []).append(key)

    def _insert(self, name: str, keys: Sequence[tuple[Any, ...]]) -> None:
        if keys:
            marks = ", ".join("?" for _ in keys[0])
            self.src.executemany(f"INSERT OR IGNORE INTO temp.{name} VALUES ({marks})", keys)

    def load(self, recorded: dict[str, list[tuple[Any, ...]]]) -> None:
        """Take over keys that another process recorded (the same tables, the same names)."""
        for name, keys in recorded.items():
            self._insert(name, keys)

    def record_where_not(self, table: Table, where: str | None) -> None:
        """Rows a filter leaves behind (or the whole table, for where=None) are gone too."""
        for (parent, cols), name in self._tables.items():
            if parent == table.name.lower():
                col_list = ", ".join(quote_ident(c) for c in cols)
                # A row is kept only where the filter is true; NULL leaves it behind too.
                cond = f" WHERE NOT coalesce(({where}), 0)" if where else ""
                self.src.execute(
                    f"INSERT OR IGNORE INTO temp.{name} "
                    f"SELECT {col_list} FROM {quote_ident(table.name)}{cond}"
                )

    def expr(self, child: str, fk: ForeignKey) -> str | None:
        """SQL true when the child's key is among the gone ones (None: nothing tracked)."""
        name = self._tables.get((fk.ref_table.lower(), fk.ref_columns))
        if name is None:
            return None
        match = " AND ".join(f"g.k{i} = {child}.{quote_ident(c)}" for i, c in enumerate(fk.columns))
        return f"EXISTS (SELECT 1 FROM temp.{name} g WHERE {match})"


def gather_rejects(into: Path, pieces: Sequence[Path], *, append: bool) -> None:
    """Join rejects files written apart (parts of one table, or a later stage) into the
    table's one file (mode 0600), and remove the pieces."""
    if not pieces:
        return
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    with open(os.open(into, flags, 0o600), "wb") as out:
        for piece in pieces:
            out.write(piece.read_bytes())
            piece.unlink()


def balanced_and(preds: Sequence[str]) -> str:
    """AND many predicates as a balanced tree: SQLite limits expression depth to 1000."""
    if not preds:
        return "1"
    if len(preds) == 1:
        return preds[0]
    mid = len(preds) // 2
    return f"({balanced_and(preds[:mid])} AND {balanced_and(preds[mid:])})"


@dataclass
class _Orphans:
    fk: ForeignKey
    policy: str  # reject | null
    positions: list[int]  # positions of the FK columns among the selected source columns


@dataclass
class RowPipeline:
    """How the rows of one table are selected from SQLite and turned into target rows."""

    table: Table
    flag: str  # SQL: true when a row can go as SQLite hands it over ("1": every row)
    orphan_exprs: list[str]  # SQL per orphan-checked FK: 1 when the row is an orphan
    source_columns: list[str]
    fast: Callable[[Row], Row] | None  # for rows the flag passed (None: use them as they are)
    slow: Callable[[Row, TableCounts], Row]  # every other row; raises RowRejected
    hashed: list[tuple[int, str, PasswordPolicy]]  # (output position, source column, policy)
    constants: Row  # values of the plan's added columns, appended to every row
    secret_columns: frozenset[str]
    dump_types: list[str] | None  # psycopg COPY types of the target columns, in order
    where: str | None = None
    # Each loaded source column's own conversion (plan transforms, then the type): what
    # sync applies to a key it must delete, having no row to run through `slow`.
    steps: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    # Per orphan expression: its policy ("reject" | "null") and the positions (among the
    # source columns) that "null" sets to NULL.
    orphan_policies: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)


def build_pipeline(
    tm: TableMap,
    tp: TablePlan | None = None,
    gone: GoneRows | None = None,
    *,
    unnamed_orphans: bool = True,
) -> RowPipeline:
    """The pipeline for a table map, with a table plan's transforms when there is one.

    `unnamed_orphans=False` leaves the FKs the plan does not name unchecked here (a load
    that checks them after, in PostgreSQL, all at once: staging.py)."""
    table = tm.source
    loaded = [c for c in tm.columns if c.source is not None]
    source_columns = [c.source for c in loaded if c.source is not None]
    n = len(source_columns)
    preds: list[str] = []
    always: list[tuple[int, str, Callable[[Any], Any]]] = []
    every: list[tuple[int, str, Callable[[Any], Any]]] = []
    hashed: list[tuple[int, str, PasswordPolicy]] = []
    secret: set[str] = set()
    for i, (c, name) in enumerate(zip(loaded, source_columns, strict=True)):
        plan = tp.columns.get(name) if tp else None
        is_secret = plan is not None and plan.secret
        to_type = converter(c.pg_type, secret=is_secret, rounding=plan is not None and plan.round)
        if is_secret:
            secret.add(name)
        if plan is None:
            pred = ok_predicate(c.pg_type, quote_ident(name))
            if pred != ALWAYS:
                preds.append(pred)
            every.append((i, name, to_type))
            continue
        if plan.password is not None:
            # Hashing happens per batch on all cores; here only the steps before it.
            hashed.append((i, name, plan.password))
            fn = plan.before_hash
        else:
            fn = _then(plan.chain, to_type)
        always.append((i, name, fn))
        every.append((i, name, fn))

    orphans: list[_Orphans] = []
    orphan_exprs: list[str] = []
    for fk in table.foreign_keys:
        policy = orphan_policy(tp, fk.columns)
        if not unnamed_orphans and not orphan_named(tp, fk.columns):
            continue
        if policy == "keep" or not fk.parent_found:
            continue  # (a parent table the source lacks: the FK is not built, see keys.py)
        if not all(col in source_columns for col in fk.columns):
            continue
        orphans.append(_Orphans(fk, policy, [source_columns.index(c) for c in fk.columns]))
        orphan_exprs.append(_orphan_expr(table, fk, gone))
    if orphan_exprs:
        preds.extend(f"NOT {e}" for e in orphan_exprs)

    flag = balanced_and(preds)
    constants = tuple(
        _added_value(a.default, c.pg_type)
        for a in (tp.add if tp else ())
        for c in tm.columns
        if c.target == a.name
    )
    fast = _fast(always, n) if always else None
    return RowPipeline(
        dump_types=[DUMP_TYPES[c.pg_type.family] for c in tm.columns],
        table=table,
        flag=flag,
        orphan_exprs=orphan_exprs,
        source_columns=source_columns,
        fast=fast,
        slow=_slow(every, orphans, n, source_columns),
        hashed=hashed,
        constants=constants,
        secret_columns=frozenset(secret),
        where=tp.where if tp else None,
        steps={name: fn for _, name, fn in every},
        orphan_policies=[(o.policy, tuple(o.positions)) for o in orphans],
    )


def _then(first: Callable[[Any], Any], second: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def both(value: Any) -> Any:
        return second(first(value))

    return both


def _added_value(default: Any, pg: PgType) -> Any:
    try:
        return converter(pg)(default)
    except TransformError:
        return default  # PostgreSQL parses it, and refuses it per row if it must


def _orphan_expr(table: Table, fk: ForeignKey, gone: GoneRows | None) -> str:
    """1 when the row's FK columns are all set and no parent row that will be loaded has them."""
    child = quote_ident(table.name)
    parent = quote_ident(fk.ref_table)
    not_null = " AND ".join(f"{child}.{quote_ident(c)} IS NOT NULL" for c in fk.columns)
    match = " AND ".join(
        f"p.{quote_ident(r)} = {child}.{quote_ident(c)}"
        for c, r in zip(fk.columns, fk.ref_columns, strict=True)
    )
    missing = f"NOT EXISTS (SELECT 1 FROM {parent} p WHERE {match})"
    gone_expr = gone.expr(child, fk) if gone is not None else None
    if gone_expr is not None:
        missing = f"({missing} OR {gone_expr})"
    return f"({not_null} AND {missing})"


_Steps = list[tuple[int, str, Callable[[Any], Any]]]


def _apply(out: list[Any], steps: _Steps) -> Row:
    """Run each column's conversion in place; the first failure rejects the row."""
    for k, (i, name, fn) in enumerate(steps):
        try:
            out[i] = fn(out[i])
        except TransformError as e:
            rejected = RowRejected(name, e.reason, e.category)
            rejected.rest = (out, steps[k + 1 :])
            raise rejected from None
    return tuple(out)


def _fast(always: _Steps, n: int) -> Callable[[Row], Row]:
    def fast(raw: Row) -> Row:
        return _apply(list(raw[:n]), always)

    return fast


def _slow(
    every: _Steps,
    orphans: list[_Orphans],
    n: int,
    source_columns: list[str],
) -> Callable[[Row, TableCounts], Row]:
    def slow(raw: Row, counts: TableCounts) -> Row:
        out = list(raw[:n])
        orphan: RowRejected | None = None
        for k, o in enumerate(orphans):
            if raw[n + k]:
                if o.policy == "reject":
                    if orphan is None:
                        cols = ", ".join(o.fk.columns)
                        values = ", ".join(repr(out[p]) for p in o.positions)
                        orphan = RowRejected(
                            source_columns[o.positions[0]],
                            f"orphan: {cols} = {values} has no row in {o.fk.ref_table}",
                            Category.ORPHAN,
                        )
                    continue
                for p in o.positions:
                    out[p] = None
                counts.orphans_nulled += 1
        row = _apply(out, every)
        # A value that does not fit is named before the orphan: with the default policy a
        # parent rejected for a value orphans its children, and the value is what to fix.
        if orphan is not None:
            raise orphan
        return row

    return slow


class RowStream:
    """Streams the converted rows of one table in batches, recording rejects as it goes."""

    def __init__(
        self,
        src: sqlite3.Connection,
        pipe: RowPipeline,
        rejects: RejectSink | None,
        *,
        run_dir: Path | None = None,
        progress: Progress | None = None,
        batch_size: int = 5_000,
        hash_passwords: bool = True,
        gone: GoneRows | None = None,
        careful: bool = False,
        scope: str | None = None,
        hash_workers: int | None = None,
        keep_values: bool = False,
    ) -> None:
        self.src, self.pipe, self.rejects = src, pipe, rejects
        self.hash_workers = hash_workers  # None: all cores (sync's small rounds use one)
        self.run_dir, self.progress, self.batch_size = run_dir, progress, batch_size
        self.hash_passwords = hash_passwords
        self.gone = gone
        # Careful: every row through the Python converters (a replay after a refusal).
        self.careful = careful
        self.scope = scope  # SQL condition selecting the part of the table to stream
        self.counts = TableCounts()
        self.key_columns = [c for c in pipe.table.primary_key if c in pipe.source_columns]
        self.reject_log: list[RejectRecord] = []
        # A preflight groups rejects by value too, and notes the columns that would reject
        # a row after the first one (`also_log`); a run keeps neither in memory.
        self.keep_values = keep_values
        self.also_log: list[RejectRecord] = []
        self._report_reads = True  # False while hashing: `_hashed_progress` reports then

    def batches(self) -> Iterator[list[Row]]:
        """Converted rows, ready for COPY, in batches."""
        hashing = bool(self.pipe.hashed and self.hash_passwords)
        # Hashing reads ahead of the hashes: progress then counts rows hashed, not read, or
        # the bar would sit at its total while the hashes are still being made.
        self._report_reads = not hashing
        converted = self._converted()
        if hashing:
            rows: Iterator[Row] = (r for batch in converted for r in batch)
            for pos, column, policy in self.pipe.hashed:
                rows = self._hash(rows, pos, column, policy)
            converted = _rebatch(self._hashed_progress(rows), self.batch_size)
        elif self.pipe.hashed:
            converted = (self._screen(batch) for batch in converted)
        if self.pipe.constants:
            extra = self.pipe.constants
            converted = ([r + extra for r in batch] for batch in converted)
        yield from converted
        if self.pipe.where:
            total = count_rows(self.src, self.pipe.table.name, self.scope)
            self.counts.filtered = total - self.counts.read
            self.counts.read += self.counts.filtered

    def _hashed_progress(self, rows: Iterator[Row]) -> Iterator[Row]:
        """Pass the hashed rows on, reporting each one done (rejected rows are done too)."""
        done = 0
        name = self.pipe.table.name
        for row in rows:
            done += 1
            if self.progress is not None:
                self.progress(name, done + self.counts.rejected)
            yield row
        if self.progress is not None:
            self.progress(name, done + self.counts.rejected)

    def _converted(self) -> Iterator[list[Row]]:
        """Rows that fit as they are, untouched, then the others through Python.

        The flag is a WHERE clause, not a column: rows that pass it cross Python without a
        single per-row operation. A second scan picks up the rest (usually few rows).
        """
        pipe = self.pipe
        columns = [quote_ident(c) for c in pipe.source_columns]
        where = f"({pipe.where})" if pipe.where else "1"
        if self.scope:
            where = f"{where} AND ({self.scope})"
        no_orphans = tuple(0 for _ in pipe.orphan_exprs)
        if self.careful:
            yield from self._scan([*columns, *pipe.orphan_exprs], where, slow=True)
            return
        if pipe.flag == ALWAYS and not pipe.orphan_exprs:
            yield from self._scan(columns, where, slow=False, pad=no_orphans)
            return
        fits = f"coalesce(({pipe.flag}), 0)"
        yield from self._scan(columns, f"{where} AND {fits}", slow=False, pad=no_orphans)
        yield from self._scan([*columns, *pipe.orphan_exprs], f"{where} AND NOT {fits}", slow=True)

    def _scan(
        self, exprs: list[str], where: str, *, slow: bool, pad: Row = ()
    ) -> Iterator[list[Row]]:
        pipe, counts = self.pipe, self.counts
        fast, convert = pipe.fast, pipe.slow
        for raw_batch, decoded_slowly in stream_rows(
            self.src, pipe.table, exprs, where=where, batch_size=self.batch_size
        ):
            if not slow and not decoded_slowly and fast is None:
                out = raw_batch  # nothing to do: the common case for big tables
            else:
                out = []
                append = out.append
                # Text read with the slow decoder may be InvalidText bytes, which the
                # SQL flag cannot see: such rows take the careful path too.
                careful = slow or decoded_slowly
                for index, raw in enumerate(raw_batch):
                    try:
                        if careful:
                            append(convert(raw + pad if pad else raw, counts))
                        else:
                            append(fast(raw) if fast is not None else raw)
                    except RowRejected as e:
                        self.reject(raw, counts.read + index, e.column, e.reason, e.category)
                        if self.keep_values:
                            self._note_later(e)
            counts.read += len(raw_batch)
            if self.progress is not None and self._report_reads:
                self.progress(pipe.table.name, counts.read)
            yield out

    def _screen(self, batch: list[Row]) -> list[Row]:
        """Without hashing (a preflight): reject what the password policy would reject."""
        kept: list[Row] = []
        for row in batch:
            for pos, column, policy in self.pipe.hashed:
                settled = prepare_password(policy, row[pos])
                if isinstance(settled, HashResult) and settled.error is not None:
                    self.reject(row, None, column, settled.error.reason, settled.error.category)
                    break
            else:
                kept.append(row)
        return kept

    def _hash(
        self, rows: Iterator[Row], pos: int, column: str, policy: PasswordPolicy
    ) -> Iterator[Row]:
        pending: collections.deque[Row] = collections.deque()
        key_pos = [self.pipe.source_columns.index(k) for k in self.key_columns]

        def items() -> Iterator[tuple[object, object]]:
            for i, r in enumerate(rows):
                pending.append(r)
                key = tuple(r[p] for p in key_pos) if key_pos else i
                yield key, r[pos]

        scope = f"{self.pipe.table.name}.{column}"
        with PasswordHasher(
            policy, run_dir=self.run_dir, scope=scope, workers=self.hash_workers
        ) as hasher:
            for _key, result in hasher.hash_many(items()):
                row = pending.popleft()
                if result.error is not None:
                    self.reject(row, None, column, result.error.reason, result.error.category)
                    continue
                out = list(row)
                out[pos] = result.value
                yield tuple(out)
            stats = hasher.stats
            self.counts.passwords = {
                "hashed": stats.hashed,
                "cached": stats.cached,
                "kept": stats.kept,
                "empty": stats.empty,
                "rejected": stats.rejected,
            }

    def _note_later(self, e: RowRejected) -> None:
        """Remember the other columns that reject a row already rejected (`also_log`)."""
        key = self.reject_log[-1].key
        for column, error, value in e.later():
            if column in self.pipe.secret_columns and value is not None:
                value = REDACTED
            self.also_log.append(RejectRecord(column, error.reason, key, error.category, value))

    def reject(
        self,
        values: Row,
        ordinal: int | None,
        column: str | None,
        reason: str,
        category: Category = Category.OTHER,
    ) -> None:
        row = dict(
            zip(self.pipe.source_columns, values[: len(self.pipe.source_columns)], strict=True)
        )
        key: dict[str, Any] = {k: row[k] for k in self.key_columns}
        if not key:
            key = {"row_number": (ordinal or 0) + 1}
        self.counts.rejected += 1
        if self.gone is not None:
            self.gone.record(self.pipe.table.name, row)
        if self.rejects is not None:
            self.rejects.write(
                self.pipe.table.name, key, column, reason, row, self.pipe.secret_columns,
                category,
            )  # fmt: skip
        value: Any = None
        if self.keep_values and column is not None:
            secret = column in self.pipe.secret_columns and row.get(column) is not None
            value = REDACTED if secret else row.get(column)
        self.reject_log.append(RejectRecord(column, reason, key, category, value))


def _rebatch(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for r in rows:
        batch.append(r)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
