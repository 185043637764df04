"""The fast path of the ordered comparison, for tables keyed by an INTEGER PRIMARY KEY: the
job's key range is cut into chunks of CHUNK_ROWS rows, SQLite and PostgreSQL each render a
chunk as one text per column in SQL (in C, on two cores at once), and Python compares the
byte strings. A chunk whose texts differ, or that a guard below does not clear, goes through
the exact row-by-row merge (`_Ordered.compare_range`), which names rows, columns and values.

Each column of a chunk is one text: its values' compare texts joined by US, NULL as GS where
the empty string is a value, else empty (see `_canon`). The compare text of a value is its
canonical text, except in DECIMAL and float columns, where it is an exact integer form
(`_render`); PostgreSQL then sends the canonical text as well, for the digests. SQLite gives
a stored value as it stands (integers in decimal, text and blobs as their bytes, blobs in
bytea columns as hex), a timestamp or time with the fraction's trailing zeros cut, a REAL in
its exact integer form. A column with plan transforms is rendered by Python instead, from
the snapshot's values through the run's own steps (`_Transformed`); a column the plan adds
is its value n times; an FK column the plan nulls for orphans is NULL where SQLite's orphan
test says so, and an orphan the plan rejects sends its chunk row by row.

Why equal texts prove target value == transform(source value) for every row and column:
1. Both sides count the chunk's rows; the counts must be equal (n).
2. PostgreSQL's text of a column that holds free text must have exactly n-1 US, as many GS
   as the column has NULLs and no ESC: then none of its values contains one of these
   characters, and the text splits back into exactly its n values. (Other columns print
   only digits, signs, date and time separators, hex or the markers of `_render`; jsonb,
   json, uuid, inet and cidr print no control character: JSON escapes them.)
3. SQLite's text is the same bytes, so it holds as many US; with n rows, none of its
   values contains one either, and both split into the same n fields.
4. NULL is a field of its own: GS in the columns where '' is a value, else '', which no
   PostgreSQL value of those types prints. A SQLite value could print the same (the text
   GS, or '' in a date column); in the columns that may hold text, both sides' non-NULL
   counts must agree, which rules that out (past the guards of 5, integer, bytea and float
   columns print no '').
5. Every other field is the same bytes on both sides. Per column, SQLite's storage class
   and shape must be one for which that implies transform(value) == the target value
   (`_render`): the blob b'5' or the text '5' in an integer column, a real in a text column
   of any affinity (SQLite prints 15 digits, transform keeps 17), a number in an enum
   column each send their chunk to the slow path. Text equal to what PostgreSQL prints for
   jsonb, json, uuid (32 hex digits), inet or cidr converts to that very value (`native`).
   PostgreSQL's dates and times must lie in the years 1 to 9999 and numeric text be plain
   digits: 'infinity', BC dates or 'NaN' print text that transform rejects. Text that is
   not valid UTF-8 or holds NUL cannot equal PostgreSQL's text, which is UTF-8 without NUL.
   A transformed column's text is that of transform(value) itself, by construction.
Tables the fast path does not take (password columns: each row's hash is checked against
the run's cache; types without an exact text in SQL: interval, money; more columns than one
query holds) use the row-by-row merge.

Equal chunks count their rows as present and hash PostgreSQL's canonical text into both
digests, which is exactly the canonical text the row-by-row path hashes (lite2pg-v2), so a
table's digests do not depend on which path compared which chunk. They also count the
value distribution of `map` columns; rows per FK value of these tables come from
the snapshot (less the slow chunks' rows), or for FK columns the plan transforms or nulls
from their texts.
"""

from __future__ import annotations

import collections
import concurrent.futures
import operator
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from decimal import InvalidOperation
from typing import Any

from psycopg import sql
from psycopg.types.string import ByteaBinaryLoader

from lite2pg.coerce import Family, PgType
from lite2pg.errors import TransformError
from lite2pg.source import quote_ident
from lite2pg.verify._canon import (
    ESC,
    GS,
    RS,
    US,
    Row,
    _show,
    _text,
    null_marker,
    shortest_doubles,
)
from lite2pg.verify._content import _Ordered
from lite2pg.verify._render import (
    FREE,
    TEXTUAL,
    any_of,
    compares_canonical,
    is_rendered,
    pg_compare,
    pg_ok,
    pg_text,
    sqlite_column,
)
from lite2pg.verify._report import MAX_PAIRS
from lite2pg.verify._stream import _UnitResult, _UnitSpec
from lite2pg.verify._table import _Table

# Rows per chunk. Both sides' text of one chunk is in memory at once (about 2 x 5 MB for the
# benchmark's widest table), and a chunk that differs costs this many rows of the slow path.
CHUNK_ROWS = 20_000
# Distinct source values whose canonical text a transformed column remembers: a `map`
# column has a few, a column of timestamps as many as rows (then the memory is bounded).
MEMO_VALUES = 100_000
# The widest table the fast paths take: a chunk query has about three entries per column,
# PostgreSQL takes at most 1,664 and SQLite 2,000 (wider tables go row by row).
MAX_COLUMNS = 400


def fast_path_refusal(t: _Table) -> str | None:
    """Why table `t` cannot take the fast path, or None when it can."""
    if t.rowid_key is None:
        return "no INTEGER PRIMARY KEY to cut chunks by"
    if t.tp is not None and t.rowid_key in t.tp.columns:
        return "the plan transforms the key"
    return rendering_refusal(t)


def rendering_refusal(t: _Table) -> str | None:
    """Why SQL cannot render the rows of table `t` (the columns, the encodings)."""
    if t.pipe.hashed or any(t.secret):
        return "password columns: each row's hash is checked against the run's"
    if len(t.columns) > MAX_COLUMNS:
        return f"{len(t.columns)} columns, more than one query of the fast path holds"
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


# The text of a value transform rejects (PostgreSQL's texts hold no NUL): its chunk goes
# row by row.
_REJECTED = b"\x00rejected"

_Rendered = tuple[bytes, int, "collections.Counter[tuple[str, bytes]] | None", dict[str, Any]]


class _Transformed:
    """A column with plan transforms: Python renders its canonical text from the source
    values, by the very functions the run applied (`RowPipeline.steps`: the plan's chain,
    then the type's conversion), each distinct text or blob once."""

    def __init__(self, t: _Table, i: int, nulled_by: list[int]) -> None:
        name = t.pipe.source_columns[i]
        self.step = t.pipe.steps[name]
        self.canon = t.canon[i]
        self.null = null_marker(t.columns[i].pg_type)
        self.null_text = (self.null + US).encode()
        self.nulled_by = nulled_by  # positions of the orphan flags that make it NULL
        self.mapped = i in t.map_positions
        # Texts by source value, for NULL, text and blobs only: numbers are equal across
        # types (1 == 1.0, 0.0 == -0.0) where transform may tell them apart.
        self.texts: dict[Any, bytes] = {}
        self.canonical: dict[bytes, Any] = {}  # the canonical value of a text (map columns)

    def _text(self, value: Any) -> bytes:
        try:
            canonical = self.canon(self.step(value))
        except (TransformError, ValueError, TypeError, InvalidOperation, OverflowError):
            text = _REJECTED
        else:
            text = (_text(canonical, self.null) + US).encode("utf-8", "surrogatepass")
            if self.mapped:
                self.canonical[text] = canonical
        if value is None or value.__class__ in (str, bytes):
            self.texts[value] = text
        return text

    def render(self, values: Sequence[Any], shown: Sequence[Any]) -> _Rendered | None:
        """The column's text (values joined by US) and non-NULL count; for a `map` column
        also its rows per (source value's repr, text) and a source value of each repr
        (`shown`: the values before orphans were nulled). None when transform rejects a
        value."""
        if len(self.texts) >= MEMO_VALUES:
            self.texts.clear()
            self.canonical.clear()
        texts: list[Any] = list(map(self.texts.get, values))
        if None in texts:
            for k, text in enumerate(texts):
                if text is None:
                    texts[k] = self._text(values[k])
        if _REJECTED in texts:
            return None
        nonnull = len(texts) - texts.count(self.null_text)
        counted: collections.Counter[tuple[str, bytes]] | None = None
        originals: dict[str, Any] = {}
        if self.mapped:
            reprs = list(map(repr, shown))
            counted = collections.Counter(zip(reprs, texts, strict=True))
            originals = dict(zip(reprs, shown, strict=True))
        return b"".join(texts)[: -len(_US)], nonnull, counted, originals


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
        self.textual = {j for j, c in enumerate(t.columns) if c.pg_type.family in TEXTUAL}
        self.doubles = {j for j, c in enumerate(t.columns) if c.pg_type.family is Family.FLOAT}
        self.key_q = quote_ident(t.rowid_key or "")
        self.key_pg = sql.Identifier(t.columns[t.key_s[0]].target)
        self.table_q = quote_ident(t.pipe.table.name)
        # Orphan flags: a "reject" one sends its chunk row by row, a "null" one nulls the
        # FK columns of its rows, as the run did.
        nulled_by: dict[int, list[int]] = collections.defaultdict(list)
        self.rejecting: list[int] = []
        self.nulling: list[int] = []
        for k, (policy, positions) in enumerate(t.pipe.orphan_policies):
            if policy == "null":
                self.nulling.append(k)
                for p in positions:
                    nulled_by[p].append(k)
            else:
                self.rejecting.append(k)
        plan_columns = t.tp.columns if t.tp is not None else {}
        self.python: dict[int, _Transformed] = {
            i: _Transformed(t, i, nulled_by.get(i, []))
            for i, name in enumerate(t.pipe.source_columns)
            if name in plan_columns
        }
        # Columns the plan adds: every row holds the same value (its text, whether not NULL).
        self.constants = {
            t.n + k: (
                (_text(v, self.nulls[t.n + k]) + US).encode("utf-8", "surrogatepass"),
                v is not None,
            )
            for k, v in enumerate(t.consts)
        }
        self.flag_at: dict[int, int] = {}
        self.declared = {c.name: c.declared_type for c in t.tm.source.columns}
        self._sqlite_sql, self.counted = self._sqlite_select(nulled_by)
        self._python_sql = self._python_select()
        # Columns compared in another form than their canonical text: PostgreSQL sends
        # that too, for the digests (position among its extra texts).
        self.canonical_at: dict[int, int] = {}
        self._pg_parts = self._pg_select()
        # Rows per raw value of the plain FK columns of the slow chunks' source rows (see
        # `_UnitResult`); the other FK columns are counted in equal chunks from their text:
        # (position, the text of NULL, the canonical value of a text, both sides' counter).
        self.fk_raw: list[tuple[Callable[[Row], Any], collections.Counter[Any]]] = []
        res.fk_raw_slow = {}
        for i in t.plain_fks:
            counter = res.fk_raw_slow[t.columns[i].target] = collections.Counter()
            self.fk_raw.append((operator.itemgetter(1 + i), counter))
        self.fk_texts = [
            (i, null_marker(t.columns[i].pg_type).encode(), _value_of(t.columns[i].pg_type),
             res.fk_shared[t.columns[i].target])
            for i in t.fk_positions
            if i not in t.plain_fks
        ]  # fmt: skip

    # -- SQL ------------------------------------------------------------------------------

    def _sqlite_select(self, nulled_by: dict[int, list[int]]) -> tuple[str, dict[int, int]]:
        """The chunk query: row count, number of values no guard clears, FK references set
        to NULL as orphans, the non-NULL count of each column that may hold text (the
        positions of those it counts are returned, with their place in the row), and the
        text of each column SQL renders. Orphan flags that more than one expression uses
        are computed once, in a subquery; the chunk's WHERE goes in place of `_WHERE`."""
        t = self.t
        not_null = {c.name for c in t.tm.source.columns if c.not_null}
        texts: list[str] = []
        counts: list[str] = []
        counted: dict[int, int] = {}
        # Orphan flags: in a subquery when several expressions use them, else inline.
        nulls_any = bool(self.nulling)
        flags = [f"_o{k}" if nulls_any else f"({e})" for k, e in enumerate(t.pipe.orphan_exprs)]
        bad: list[str] = [flags[k] for k in self.rejecting]
        for i, name in enumerate(t.pipe.source_columns):
            if i in self.python:
                continue
            c = t.columns[i]
            q = quote_ident(name)
            if name == t.rowid_key:
                texts.append(f"CAST(group_concat({q}, '{US}') AS BLOB)")  # never NULL
                continue
            col = sqlite_column(c, q, self.declared.get(name, ""))
            text, value = col.text, q
            if nulled_by.get(i):
                orphan = " OR ".join(flags[k] for k in nulled_by[i])
                text = f"CASE WHEN {orphan} THEN NULL ELSE {text} END"
                value = f"CASE WHEN {orphan} THEN NULL ELSE {q} END"
            texts.append(f"CAST(group_concat(coalesce({text}, '{self.nulls[i]}'), '{US}') AS BLOB)")
            bad.extend(col.bad)
            # A column SQLite keeps NOT NULL has n values; PostgreSQL's must then have no NULL.
            if c.pg_type.family in TEXTUAL and (name not in not_null or nulled_by.get(i)):
                counted[i] = len(counts)
                counts.append(f"count({value})")
        nulled = " + ".join(f"total({flags[k]})" for k in self.nulling) or "0"
        parts = ["count(*)", f"total({any_of(bad)})" if bad else "0", nulled, *counts, *texts]
        source = f"{self.table_q} WHERE {_WHERE}"
        if nulls_any:
            # LIMIT keeps SQLite from flattening the subquery into the aggregate (which
            # would compute each flag once per use); rows keep the table's order.
            orphans = ", ".join(f"{e} AS _o{k}" for k, e in enumerate(t.pipe.orphan_exprs))
            source = f"(SELECT *, {orphans} FROM {source} LIMIT -1)"
        return f"SELECT {', '.join(parts)} FROM {source}", counted

    def _python_select(self) -> str | None:
        """The source values of the transformed columns, in key order, with the orphan
        flags that null them."""
        if not self.python:
            return None
        t = self.t
        exprs = [quote_ident(t.pipe.source_columns[i]) for i in self.python]
        flags = sorted({k for col in self.python.values() for k in col.nulled_by})
        self.flag_at = {k: len(exprs) + n for n, k in enumerate(flags)}
        exprs.extend(t.pipe.orphan_exprs[k] for k in flags)
        return f"SELECT {', '.join(exprs)} FROM {self.table_q} WHERE {_WHERE} ORDER BY {self.key_q}"

    def _pg_select(self) -> sql.Composable:
        """Row count, the non-NULL count of each column that may hold text, whether dates
        and times are in the canonical range, and each column's text."""
        t = self.t
        ranges: list[sql.Composable] = []
        texts: list[sql.Composable] = []
        canonical: list[sql.Composable] = []
        for j, (c, null) in enumerate(zip(t.columns, self.nulls, strict=True)):
            ranges.extend(pg_ok(c))
            declared = self.declared.get(c.source or "", "")
            by_sql = j < t.n and j not in self.python
            text = pg_compare(c, declared) if by_sql else pg_text(c)
            texts.append(_string_agg(text, null))
            if by_sql and not compares_canonical(c, declared):
                self.canonical_at[j] = len(canonical)
                canonical.append(_string_agg(pg_text(c), null))
        # Non-NULL counts only where `_equal` checks them (the columns that may hold text):
        # each costs a step per row.
        self.pg_counted = {j: k for k, j in enumerate(sorted(self.textual))}
        parts: list[sql.Composable] = [
            sql.SQL("count(*)"),
            *(
                sql.SQL("count({})").format(sql.Identifier(t.columns[j].target))
                for j in self.pg_counted
            ),
            sql.SQL(" AND ").join(ranges) if ranges else sql.SQL("true"),
            *texts,
            *canonical,
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

    def _sqlite_chunk(self, lo: int | None, hi: int | None) -> _Chunk | None:
        where, _ = self._bounds(lo, hi)
        if self.t.pipe.where:
            where = f"({self.t.pipe.where}) AND {where}"
        src = self.t.run.src
        try:
            row = src.execute(self._sqlite_sql.replace(_WHERE, where)).fetchone()
            values = (
                src.execute(self._python_sql.replace(_WHERE, where)).fetchall()
                if self._python_sql is not None
                else []
            )
        except sqlite3.Error:
            # A value SQLite cannot render this way, text that is not UTF-8: the slow
            # path reads it.
            return None
        if not row:
            return None
        rendered: dict[int, _Rendered] = {}
        if self.python:
            columns = list(zip(*values, strict=True)) if values else []
            for k, (i, col) in enumerate(self.python.items()):
                raw: Sequence[Any] = columns[k] if columns else ()
                shown = raw
                if col.nulled_by:
                    flags = [columns[self.flag_at[f]] for f in col.nulled_by]
                    raw = [None if any(f[r] for f in flags) else v for r, v in enumerate(raw)]
                out = col.render(raw, shown)
                if out is None:
                    return None
                rendered[i] = out
        return _Chunk(tuple(row), len(values), rendered)

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

    def _equal(self, chunk: _Chunk | None, target: Sequence[Any]) -> bool:
        """Record the chunk and return True when its two texts prove it equal."""
        if chunk is None:
            return False
        source = chunk.row
        k = self.width
        n, bad, nulled = source[0], source[1], source[2]
        s_counts = source[3 : 3 + len(self.counted)]
        s_texts = iter(source[3 + len(self.counted) :])
        c = len(self.pg_counted)
        n_pg, pg_counts, in_range = target[0], target[1 : 1 + c], target[1 + c]
        p_texts = target[2 + c : 2 + c + k]
        p_canonical = target[2 + c + k :]
        if n != n_pg or bad or not in_range or (self.python and chunk.rows != n):
            return False
        texts: list[bytes] = []
        for j in range(k):
            const = self.constants.get(j)
            if const is not None:
                s_text, nonnull = (const[0] * n)[: -len(_US)], n if const[1] else 0
            elif j in chunk.rendered:
                s_text, nonnull, _, _ = chunk.rendered[j]
            else:
                raw = next(s_texts)
                s_text = b"" if raw is None else bytes(raw)
                nonnull = s_counts[self.counted[j]] if j in self.counted else n
            p_text = b"" if p_texts[j] is None else bytes(p_texts[j])
            if s_text != p_text:
                return False
            counted = self.pg_counted.get(j)
            if counted is not None and nonnull != pg_counts[counted]:
                return False
            if j in self.free:
                # PostgreSQL's text of this column: the values may hold control characters.
                # RS too: the canonical text puts ESC before it, PostgreSQL's does not, and
                # the digests hash the canonical text. (FREE is part of TEXTUAL: counted.)
                if _ESC in p_text or _RS in p_text or (n and p_text.count(_US) != n - 1):
                    return False
                if self.nulls[j] and p_text.count(_GS) != n - pg_counts[self.pg_counted[j]]:
                    return False
            at = self.canonical_at.get(j)
            if at is not None:
                p_text = b"" if p_canonical[at] is None else bytes(p_canonical[at])
                if j in self.doubles:
                    p_text = shortest_doubles(p_text)
            texts.append(p_text)
        res = self.res
        res.streamed += n
        res.target_rows += n
        res.present += n
        res.fast += n
        res.orphans_nulled += int(nulled)
        if n:
            for j, text in enumerate(texts):
                self.digests.both_text(j, text)
                self.digests.both_text(j, _US)
            for i, null, value_of, shared in self.fk_texts:
                for text, count in collections.Counter(texts[i].split(_US)).items():
                    shared[None if text == null else value_of(text)] += count
        self._count_mapped(chunk)
        return True

    def _count_mapped(self, chunk: _Chunk) -> None:
        """The value distribution of each `map` column over an equal chunk's rows, and the
        pairs before -> after, as the row-by-row path counts them (`_observe`)."""
        for i, (_, _, counted, originals) in chunk.rendered.items():
            if counted is None:
                continue
            col = self.python[i]
            target = self.t.columns[i].target
            mapped, pairs = self.res.mapped[target], self.res.pairs[target]
            for (shown, text), count in counted.items():
                canonical = col.canonical[text]
                mapped[canonical] += count
                pair = (_show(originals[shown], limit=40), _show(canonical, limit=40))
                if pair in pairs or len(pairs) < MAX_PAIRS:
                    pairs[pair] += count


def _value_of(pg: PgType) -> Callable[[bytes], Any]:
    """The canonical value (as the row-by-row path holds it) of a canonical text."""
    if pg.family in (Family.INTEGER, Family.BOOLEAN):
        return int
    if pg.family is Family.FLOAT:
        return float
    if pg.family is Family.BYTEA:
        return lambda text: bytes.fromhex(text.decode())
    return operator.methodcaller("decode")


def _string_agg(text: sql.Composable, null: str) -> sql.Composable:
    return sql.SQL("string_agg(coalesce({}, {}), {})").format(
        text, sql.Literal(null), sql.Literal(US)
    )


class _Chunk:
    """SQLite's side of a chunk: the aggregate row, and the transformed columns' texts."""

    __slots__ = ("rendered", "row", "rows")

    def __init__(
        self,
        row: tuple[Any, ...],
        rows: int,
        rendered: dict[int, _Rendered],
    ) -> None:
        self.row = row
        self.rows = rows  # rows of the transformed columns' query
        self.rendered = rendered


_US, _GS, _RS, _ESC = US.encode(), GS.encode(), RS.encode(), ESC.encode()
_WHERE = "/*lite2pg:where*/"
