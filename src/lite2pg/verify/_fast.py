"""The fast path of the ordered comparison, for tables keyed by an INTEGER PRIMARY KEY: the
job's key range is cut into chunks of CHUNK_ROWS rows, SQLite and PostgreSQL each render a
chunk as one canonical text in SQL (in C, on two cores at once), and Python compares the two
byte strings. A chunk whose texts differ, or that a guard below does not clear, goes through
the exact row-by-row merge (`_Ordered.compare_range`), which names rows, columns and values.

Each column of a chunk is one text: its values' texts joined by US, NULL as GS where the
empty string is a value, else empty (see `_canon`). PostgreSQL renders each value as the
canonical text of its type (`_PG_TEXT`); SQLite gives the stored value as it stands
(integers in decimal, text and blobs as their bytes, blobs in bytea columns as hex).

Why equal texts prove target value == transform(source value) for every row and column:
1. Both sides count the chunk's rows; the counts must be equal (n).
2. PostgreSQL's text of a column that holds free text must have exactly n-1 US, as many GS
   as the column has NULLs and no ESC: then none of its values contains one of these
   characters, and the text splits back into exactly its n values. (Other columns print
   only digits, signs, date and time separators or hex; jsonb, json, uuid, inet and cidr
   print no control character: JSON escapes them.)
3. SQLite's text is the same bytes, so it holds as many US; with n rows, none of its
   values contains one either, and both split into the same n fields.
4. NULL is a field of its own: GS in the columns where '' is a value, else '', which no
   PostgreSQL value of those types prints. A SQLite value could print the same (the text
   GS, or '' in a date column); in the columns that may hold text, both sides' non-NULL
   counts must agree, which rules that out (past the guards of 5, integer and bytea
   columns hold no text).
5. Every other field is the same bytes on both sides. Per column, SQLite's storage class
   must be one for which that implies transform(value) == the target value (`_guards`):
   the blob b'5' or the text '5' in an integer column, a real in a text column of another
   affinity (SQLite prints 15 digits, transform keeps 17), a number in an enum column each
   send their chunk to the slow path. Text equal to what PostgreSQL prints for jsonb, json,
   uuid (32 hex digits), inet or cidr converts to that very value (`native`).
   PostgreSQL's dates and times must lie in the years 1 to 9999 (`_PG_RANGE`) and numeric
   text be plain digits: 'infinity', BC dates or 'NaN' print text that transform rejects.
   Text that is not valid UTF-8 or holds NUL cannot equal PostgreSQL's text, which is UTF-8
   without NUL.
Tables the fast path does not take (plan transforms, passwords, added or orphan-checked
columns, float columns: SQLite cannot print a double exactly) use the row-by-row merge.

Equal chunks count their rows as present and hash PostgreSQL's text into both digests,
which is exactly the canonical text the row-by-row path hashes (lite2pg-v2), so a table's
digests do not depend on which path compared which chunk.
"""

from __future__ import annotations

import collections
import concurrent.futures
import operator
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from psycopg import sql
from psycopg.types.string import ByteaBinaryLoader

from lite2pg.source import quote_ident
from lite2pg.verify._canon import ESC, GS, US, Row, null_marker
from lite2pg.verify._content import _Ordered
from lite2pg.verify._render import FREE, TEXTUAL, is_rendered, pg_ok, pg_text, sqlite_column
from lite2pg.verify._stream import _UnitResult, _UnitSpec
from lite2pg.verify._table import _Table

# Rows per chunk. Both sides' text of one chunk is in memory at once (about 2 x 5 MB for the
# benchmark's widest table), and a chunk that differs costs this many rows of the slow path.
CHUNK_ROWS = 20_000


def fast_path_refusal(t: _Table) -> str | None:
    """Why table `t` cannot take the fast path, or None when it can."""
    if t.rowid_key is None:
        return "no INTEGER PRIMARY KEY to cut chunks by"
    if t.transformed or t.pipe.hashed or t.n_const or t.n_orph:
        return "plan transforms"
    if any(t.secret):
        return "secret columns"
    for c in t.columns:
        if not is_rendered(c.pg_type):
            return f"{c.target}: no exact text in SQLite for {c.pg_type.sql}"
    row = t.run.src.execute("PRAGMA encoding").fetchone()
    if not row or row[0] != "UTF-8":
        return "the SQLite database is not UTF-8"
    pg = t.run.pg.execute("SHOW server_encoding").fetchone()
    if not pg or pg[0] != "UTF8":
        return "the PostgreSQL database is not UTF8"
    return None


class _Fast(_Ordered):
    """One content job through the fast path: chunk after chunk, equal texts counted and
    hashed, any other chunk merged row by row."""

    def __init__(self, t: _Table, spec: _UnitSpec, res: _UnitResult) -> None:
        super().__init__(t, spec, res)
        self.width = len(t.columns)
        self.nulls = [null_marker(c.pg_type) for c in t.columns]
        # Columns whose PostgreSQL text is free text: the others print only digits, signs,
        # separators of dates and times, or hex, never a control character.
        self.free = {j for j, c in enumerate(t.columns) if c.pg_type.family in FREE}
        self.key_q = quote_ident(t.rowid_key or "")
        self.key_pg = sql.Identifier(t.columns[t.key_s[0]].target)
        self.table_q = quote_ident(t.pipe.table.name)
        self.required: list[bool] = []
        self._sqlite_sql, self.textual = self._sqlite_select()
        self.n_counted = self.required.count(False)
        self._pg_parts = self._pg_select()
        # Rows per raw FK value of the slow chunks' source rows (see `_UnitResult`).
        self.fk_raw: list[tuple[Callable[[Row], Any], collections.Counter[Any]]] = []
        res.fk_raw_slow = {}
        for i in t.fk_positions:
            counter = res.fk_raw_slow[t.columns[i].target] = collections.Counter()
            self.fk_raw.append((operator.itemgetter(1 + i), counter))

    # -- SQL ------------------------------------------------------------------------------

    def _sqlite_select(self) -> tuple[str, list[int]]:
        """The chunk query: row count, number of values no guard clears, the non-NULL
        count of each column that may hold text (their positions are returned), and each
        column's text. Helper values of a row (`_render.Column.inner`) are computed once,
        in a subquery; the chunk's WHERE goes in place of `_WHERE`."""
        t = self.t
        declared = {c.name: c.declared_type for c in t.tm.source.columns}
        not_null = {c.name for c in t.tm.source.columns if c.not_null}
        texts: list[str] = []
        bad: list[str] = []
        textual: list[int] = []
        inner: list[str] = []
        middle: list[str] = []
        for i, (c, name) in enumerate(zip(t.columns, t.pipe.source_columns, strict=True)):
            q = quote_ident(name)
            null = self.nulls[i]
            if name == t.rowid_key:
                texts.append(f"CAST(group_concat({q}, '{US}') AS BLOB)")  # never NULL
                continue
            col = sqlite_column(c, q, declared.get(name, ""), f"_h{i}")
            inner.extend(f"{expr} AS {alias}" for alias, expr in col.inner)
            middle.extend(f"{expr} AS {alias}" for alias, expr in col.middle)
            texts.append(f"CAST(group_concat(coalesce({col.text}, '{null}'), '{US}') AS BLOB)")
            bad.extend(col.bad)
            if c.pg_type.family in TEXTUAL:
                textual.append(i)
        # A column SQLite keeps NOT NULL has n values; PostgreSQL's must then have no NULL.
        self.required = [t.pipe.source_columns[i] in not_null for i in textual]
        counts = [
            f"count({quote_ident(t.pipe.source_columns[i])})"
            for i, required in zip(textual, self.required, strict=True)
            if not required
        ]
        parts = ["count(*)", f"total({' OR '.join(bad)})" if bad else "0", *counts, *texts]
        source = f"{self.table_q} WHERE {_WHERE}"
        # LIMIT keeps SQLite from flattening a subquery into the aggregate (which would
        # compute each helper once per use); rows keep the table's order.
        if inner:
            source = f"(SELECT *, {', '.join(inner)} FROM {source} LIMIT -1)"
        if middle:
            source = f"(SELECT *, {', '.join(middle)} FROM {source} LIMIT -1)"
        return f"SELECT {', '.join(parts)} FROM {source}", textual

    def _pg_select(self) -> sql.Composable:
        """Row count, every column's non-NULL count, whether dates and times are in the
        canonical range, and each column's text."""
        t = self.t
        ranges: list[sql.Composable] = []
        texts: list[sql.Composable] = []
        for c, null in zip(t.columns, self.nulls, strict=True):
            ranges.extend(pg_ok(c))
            texts.append(
                sql.SQL("string_agg(coalesce({}, {}), {})").format(
                    pg_text(c), sql.Literal(null), sql.Literal(US)
                )
            )
        parts: list[sql.Composable] = [
            sql.SQL("count(*)"),
            *(sql.SQL("count({})").format(sql.Identifier(c.target)) for c in t.columns),
            sql.SQL(" AND ").join(ranges) if ranges else sql.SQL("true"),
            *texts,
        ]
        return sql.SQL(", ").join(parts)

    def _bounds(self, lo: int | None, hi: int | None) -> tuple[str, sql.Composable]:
        parts: list[str] = []
        pg: list[sql.Composable] = []
        if lo is not None:
            parts.append(f"{self.key_q} >= {int(lo)}")
            pg.append(sql.SQL("{} >= {}").format(self.key_pg, sql.Literal(lo)))
        if hi is not None:
            parts.append(f"{self.key_q} < {int(hi)}")
            pg.append(sql.SQL("{} < {}").format(self.key_pg, sql.Literal(hi)))
        where = " AND ".join(parts) or "1"
        pg_where = sql.SQL("WHERE ") + sql.SQL(" AND ").join(pg) if pg else sql.SQL("")
        return where, pg_where

    # -- the chunks -----------------------------------------------------------------------

    def run(self) -> None:
        start = self.spec.lo
        with concurrent.futures.ThreadPoolExecutor(1, "lite2pg-verify-pg") as pool:
            while True:
                nxt = self._next_start(start)
                end = self.spec.hi if nxt is None else nxt
                target = pool.submit(self._pg_chunk, start, end)
                try:
                    source = self._sqlite_chunk(start, end)
                finally:
                    target_row = target.result()
                if self._equal(source, target_row):
                    self.res.chunks_fast += 1
                else:
                    self.res.chunks_slow += 1
                    self.lo, self.hi = start, end
                    self.compare_range()
                if nxt is None:
                    break
                start = nxt
        self._finish()

    def _source_batches(self, ordered: bool) -> Iterator[list[Row]]:
        for rows in super()._source_batches(ordered):
            for get, counter in self.fk_raw:
                counter.update(map(get, rows))
            yield rows

    def _next_start(self, start: int | None) -> int | None:
        """The key that starts the chunk after the one starting at `start` (None: last)."""
        where, _ = self._bounds(start, self.spec.hi)
        row = self.t.run.src.execute(
            f"SELECT {self.key_q} FROM {self.table_q} WHERE {where} "
            f"ORDER BY {self.key_q} LIMIT 1 OFFSET {CHUNK_ROWS}"
        ).fetchone()
        return None if row is None else int(row[0])

    def _sqlite_chunk(self, lo: int | None, hi: int | None) -> Sequence[Any] | None:
        where, _ = self._bounds(lo, hi)
        if self.t.pipe.where:
            where = f"({self.t.pipe.where}) AND {where}"
        try:
            row = self.t.run.src.execute(self._sqlite_sql.replace(_WHERE, where)).fetchone()
        except sqlite3.Error:
            return None  # a value SQLite cannot render this way: the slow path reads it
        return tuple(row) if row else None

    def _pg_chunk(self, lo: int | None, hi: int | None) -> Sequence[Any]:
        _, pg_where = self._bounds(lo, hi)
        query = sql.SQL("SELECT {} FROM (SELECT * FROM {} {} ORDER BY {}) AS s").format(
            self._pg_parts, self.t.qualified, pg_where, self.key_pg
        )
        with self.t.run.pg.cursor(binary=True) as cur:
            # The texts as bytes, as they come: no decoding, no copy.
            cur.adapters.register_loader("text", ByteaBinaryLoader)
            row = cur.execute(query).fetchone()
        assert row is not None  # an aggregate without GROUP BY returns one row
        return tuple(row)

    def _equal(self, source: Sequence[Any] | None, target: Sequence[Any]) -> bool:
        """Record the chunk and return True when its two texts prove it equal."""
        if source is None:
            return False
        k = self.width
        n, bad = source[0], source[1]
        counted = iter(source[2 : 2 + self.n_counted])
        s_counts = [n if required else next(counted) for required in self.required]
        s_texts = source[2 + self.n_counted :]
        n_pg, pg_counts, in_range = target[0], target[1 : 1 + k], target[1 + k]
        p_texts = target[2 + k :]
        if n != n_pg or bad or not in_range:
            return False
        if any(s != pg_counts[i] for i, s in zip(self.textual, s_counts, strict=True)):
            return False
        texts: list[bytes] = []
        for j in range(k):
            s_text = b"" if s_texts[j] is None else bytes(s_texts[j])
            p_text = b"" if p_texts[j] is None else bytes(p_texts[j])
            if s_text != p_text:
                return False
            if j in self.free:
                # PostgreSQL's text of this column: the values may hold control characters.
                if _ESC in p_text or (n and p_text.count(_US) != n - 1):
                    return False
                if self.nulls[j] and p_text.count(_GS) != n - pg_counts[j]:
                    return False
            texts.append(p_text)
        res = self.res
        res.streamed += n
        res.target_rows += n
        res.present += n
        res.fast += n
        if n:
            for j, text in enumerate(texts):
                self.digests.both_text(j, text)
                self.digests.both_text(j, _US)
        return True


_US, _GS, _ESC = US.encode(), GS.encode(), ESC.encode()
_WHERE = "/*lite2pg:where*/"
