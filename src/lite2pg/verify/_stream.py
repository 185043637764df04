"""One content job (a table or a key range of it): its picklable spec and result, and the
streams and bookkeeping that the ordered and the unordered comparisons share."""

from __future__ import annotations

import collections
import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg import sql

from lite2pg import source
from lite2pg.rows import TableCounts
from lite2pg.source import quote_ident
from lite2pg.transforms.passwords import (
    CacheReader,
)
from lite2pg.verify._canon import Row, _show
from lite2pg.verify._rejects import _RunRejects
from lite2pg.verify._report import MAX_PAIRS, MAX_SHOWN
from lite2pg.verify._run import _safe
from lite2pg.verify._table import _Table

# Rows per fetch and per compared window: one C-level list comparison per window; a window
# that differs is merged row by row, so a single bad row costs at most this many slow rows.
WINDOW = 5_000


@dataclass(frozen=True)
class _UnitSpec:
    """One content job, picklable: a table, or one key range of it."""

    run_dir: str
    dsn: str
    pg_snapshot: str | None
    table: str
    unit: int
    lo: int | None  # key range [lo, hi) of an INTEGER PRIMARY KEY; None: unbounded
    hi: int | None
    gone: dict[str, list[Row]]
    sample: int
    seed: int
    tolerance: float
    # A table without a key: compare its rows as texts first (`_Sorted`; False when a
    # slice of it was not proven that way: then row by row at once).
    texts: bool = True


@dataclass
class _UnitResult:
    table: str
    unit: int
    mode: str = "by key"
    streamed: int = 0
    fast: int = 0
    slow: int = 0
    # The fast path: chunks whose two texts proved them equal, chunks merged row by row;
    # why the job took the row-by-row path instead (None: it took the fast path).
    chunks_fast: int = 0
    chunks_slow: int = 0
    refusal: str | None = None
    present: int = 0
    rejected: int = 0
    refused: int = 0
    missing: int = 0
    extra: int = 0
    changed: int = 0
    rejected_present: int = 0
    target_rows: int = 0
    orphans_nulled: int = 0
    source_digest: bytes = b""
    target_digest: bytes = b""
    differences: list[dict[str, Any]] = field(default_factory=list)
    passwords: dict[str, collections.Counter[str]] = field(default_factory=dict)
    mapped: dict[str, collections.Counter[Any]] = field(default_factory=dict)
    pairs: dict[str, collections.Counter[tuple[str, str]]] = field(default_factory=dict)
    # Rows per FK value: counted once for windows equal on both sides, apart otherwise.
    fk_shared: dict[str, collections.Counter[Any]] = field(default_factory=dict)
    fk_source: dict[str, collections.Counter[Any]] = field(default_factory=dict)
    fk_target: dict[str, collections.Counter[Any]] = field(default_factory=dict)
    # The fast path: rows per raw value of its plain FK columns (`_Table.plain_fks`) in the
    # source rows of its slow chunks; the equal chunks' rows of those columns are counted
    # once per table, from the snapshot (`_FkTotals`).
    fk_raw_slow: dict[str, collections.Counter[Any]] | None = None
    gone: dict[str, list[Row]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # A slice of a table without a key that its stored order did not prove: the whole
    # table is compared again in one job, and this result is dropped.
    whole_again: bool = False


class _Stream:
    """One content job's two streams, source rows (through the pipeline) and PostgreSQL's
    canonical rows, and what both comparisons record about them."""

    def __init__(self, t: _Table, spec: _UnitSpec, res: _UnitResult) -> None:
        self.t = t
        self.spec = spec
        self.res = res
        # The key range streamed: the job's, or one chunk of it (the fast path's slow chunks).
        self.lo: int | None = spec.lo
        self.hi: int | None = spec.hi
        self.counts = TableCounts()
        self.cache = CacheReader.open(Path(spec.run_dir)) if t.pipe.hashed else None
        self.pw_index = [0] * len(t.pipe.hashed)
        self.rejects = _RunRejects(
            Path(spec.run_dir) / "rejects" / f"{_safe(t.pipe.table.name)}.jsonl", t
        )
        for _pos, column, _policy in t.pipe.hashed:
            res.passwords[column] = collections.Counter()
        for i in t.map_positions:
            res.mapped[t.columns[i].target] = collections.Counter()
            res.pairs[t.columns[i].target] = collections.Counter()
        self.fk_getters: list[
            tuple[
                Callable[[Row], Any],
                collections.Counter[Any],
                collections.Counter[Any],
                collections.Counter[Any],
            ]
        ] = []
        for i in t.fk_positions:
            name = t.columns[i].target
            shared = res.fk_shared[name] = collections.Counter()
            src = res.fk_source[name] = collections.Counter()
            tgt = res.fk_target[name] = collections.Counter()
            self.fk_getters.append((operator.itemgetter(1 + i), shared, src, tgt))

    def run(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()

    # -- the streams ----------------------------------------------------------------------

    def _where(self) -> tuple[str | None, sql.Composable]:
        t = self.t
        parts = [f"({t.pipe.where})"] if t.pipe.where else []
        pg_parts: list[sql.Composable] = []
        if t.rowid_key is not None:
            q = quote_ident(t.rowid_key)
            col = sql.Identifier(t.columns[t.key_s[0]].target)
            if self.lo is not None:
                parts.append(f"{q} >= {int(self.lo)}")
                pg_parts.append(sql.SQL("{} >= {}").format(col, sql.Literal(self.lo)))
            if self.hi is not None:
                parts.append(f"{q} < {int(self.hi)}")
                pg_parts.append(sql.SQL("{} < {}").format(col, sql.Literal(self.hi)))
        pg_where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(pg_parts) if pg_parts else sql.SQL("")
        return (" AND ".join(parts) or None), pg_where

    def _source_batches(self, ordered: bool) -> Iterator[list[Row]]:
        t = self.t
        where, _ = self._where()
        for rows, slowly in source.stream_rows(
            t.run.src,
            t.pipe.table,
            t.sqlite_select,
            where=where,
            batch_size=WINDOW,
            order_by=t.sqlite_order if ordered else None,
        ):
            self.res.streamed += len(rows)
            # InvalidText may sit in any text value of a slowly decoded batch: no fast path.
            yield [(0, *r[1:]) for r in rows] if slowly else rows

    def _target_batches(self, ordered: bool) -> Iterator[list[Row]]:
        t = self.t
        _, pg_where = self._where()
        query = sql.SQL("SELECT {} FROM {}{}").format(t.pg_select, t.qualified, pg_where)
        if ordered:
            query = sql.SQL("{} ORDER BY {}").format(query, t.pg_order)
        with t.run.pg.cursor(name=f"lite2pg_verify_{self.spec.unit}", binary=True) as cur:
            cur.itersize = WINDOW
            cur.execute(query)
            while batch := cur.fetchmany(WINDOW):
                self.res.target_rows += len(batch)
                yield batch

    def _expect(self, raw: Row) -> tuple[Row | None, str | None, str | None]:
        before = self.counts.orphans_nulled
        out = self.t.expect(raw, self.counts, self.cache, self.pw_index)
        self.res.orphans_nulled += self.counts.orphans_nulled - before
        return out

    def _gone(self, raw: Row) -> None:
        t = self.t
        row = dict(zip(t.pipe.source_columns, raw[1 : 1 + t.n], strict=True))
        t.gone.record(t.pipe.table.name, row)

    def _observe(self, raw: Row, expected: Row) -> None:
        """Distributions of an expected row: map columns' values, FK deltas."""
        t, res = self.t, self.res
        for i in t.map_positions:
            target = t.columns[i].target
            value = expected[1 + i]
            res.mapped[target][value] += 1
            pairs = res.pairs[target]
            pair = (_show(raw[1 + i], limit=40), _show(value, limit=40))
            if pair in pairs or len(pairs) < MAX_PAIRS:
                pairs[pair] += 1
        for get, _shared, src, _tgt in self.fk_getters:
            src[get(expected)] += 1

    def _count_target(self, rows: Sequence[Row]) -> None:
        for get, _shared, _src, tgt in self.fk_getters:
            tgt.update(map(get, rows))

    def _difference(
        self,
        kind: str,
        key: tuple[Any, ...],
        *,
        columns: list[dict[str, str]] | None = None,
        reason: str | None = None,
        column: str | None = None,
    ) -> None:
        if len(self.res.differences) >= MAX_SHOWN:
            return
        values = [k[1] if len(k) > 1 else None for k in key]
        entry: dict[str, Any] = {"kind": kind, "key": self.t.key_display(values)}
        if columns:
            entry["columns"] = columns
        if reason:
            entry["reason"] = reason
        if column:
            entry["column"] = column
        self.res.differences.append(entry)
