"""The fast path for tables without a primary key: SQLite and PostgreSQL each render every
row as one text in SQL, and Python compares the two sequences of texts, first in the order
each side stores its rows (the load copies them in SQLite's order), else both sorted (in C,
on both cores at once). Equal sequences are equal multisets of rows, whatever order either
side stores them in: the order only decides which row is compared with which, so a wrong
guess costs time, never a wrong verdict. Anything not proven that way goes through the
row-by-row comparison of the multisets (`_UnorderedStream`), as before.

A row's text is each column's compare text (`_render`, as in the chunks of `_fast`)
followed by US, NULL as the column's marker, preceded by one byte: 0x01 for a row whose
every value is proven, else 0x00 (SQLite: a value some guard does not clear, a value that
prints as the NULL marker, an orphan the plan rejects) or 0x02 (PostgreSQL: a date or time
outside the canonical range, a free-text value holding ESC, GS, RS or US). Such a row
equals no row of the other side, so the sequences differ. PostgreSQL also sends the row's
canonical text (`_canon.row_text`) when a column compares in another form: the digest
hashes that.

Why equal sequences prove that the target's rows are transform(source rows), as a
multiset: the two sequences are the same texts, each of a SQLite row and of a PostgreSQL
row. A PostgreSQL text splits into its fields at US only: no free-text value holds a
control character, and no other type prints one. The SQLite text is the same bytes, so it
splits the same way. A field is the NULL marker on PostgreSQL's side only for NULL (no
value holds GS, no value of a type whose marker is '' prints ''); on SQLite's side only for
NULL too, by the guard against a value that prints as the marker. Any other field is the
same text on both sides, which by the per-column guards (`_render`, the argument of `_fast`)
means transform(value) is PostgreSQL's value. Both sequences have the same length, so
every source row has its own equal target row and there is no other.

A big table (more rows than a job takes) is cut into slices by the values of its first
integer column (`slice_column`), each a job of its own, on each side the same ranges
(`_Sorted._slice` says why slices proven equal prove the table). A slice not proven sends
the whole table row by row, in one job.
"""

from __future__ import annotations

import collections
import hashlib
import operator
from collections.abc import Generator, Iterator
from typing import Any

from psycopg import sql
from psycopg.types.string import ByteaBinaryLoader

from lite2pg.coerce import Family
from lite2pg.load import prefetch
from lite2pg.source import quote_ident
from lite2pg.verify import _fast
from lite2pg.verify._canon import _GS_FAMILIES, GS, US, _pg_canon, _text, null_marker
from lite2pg.verify._fast import rendering_refusal
from lite2pg.verify._render import (
    FREE,
    TEXTUAL,
    any_of,
    compares_canonical,
    pg_compare,
    pg_ok,
    pg_text,
    sqlite_column,
)
from lite2pg.verify._stream import _UnitResult
from lite2pg.verify._table import _Table
from lite2pg.verify._unordered import _UnorderedStream

# Rows of the first batch each side reads: a stored order that differs shows there.
PROBE_ROWS = 100
_digest = operator.methodcaller("digest")  # SHA-256 of a row's text, as bytes (big-endian)
_CONTROL = "[\x1b\x1d-\x1f]"  # ESC, GS, RS, US: what the canonical text escapes


def slice_column(t: _Table) -> int | None:
    """The column that cuts table `t` into slices (`_parallel`): its first column that
    PostgreSQL holds as an integer as loaded (no plan transform, not nulled for orphans:
    a row would then fall in other slices on the two sides), or None."""
    plan = t.tp.columns if t.tp is not None else {}
    nulled = {
        p for policy, positions in t.pipe.orphan_policies if policy == "null" for p in positions
    }
    for i, name in enumerate(t.pipe.source_columns):
        if t.columns[i].pg_type.family is Family.INTEGER and name not in plan and i not in nulled:
            return i
    return None


def sorted_refusal(t: _Table) -> str | None:
    """Why table `t` cannot be compared as sorted texts, or None when it can."""
    if t.tp is not None and any(c in t.tp.columns for c in t.pipe.source_columns):
        return "no primary key, and plan transforms: compared without order"
    return rendering_refusal(t)


class _Sorted(_UnorderedStream):
    """A table without a key: its rows sorted and compared as texts, else as a multiset."""

    def run(self) -> None:
        t = self.t
        self.declared = {c.name: c.declared_type for c in t.tm.source.columns}
        refusal = sorted_refusal(t)
        if refusal is None and self.rejects.refused_rows:
            refusal = "rows PostgreSQL refused in the run: compared without order"
        # Stored order first: the load copies rows in SQLite's order, and a sequence equal
        # to the other is an equal multiset just as well, without sorting.
        texts = refusal is None and self.spec.texts
        if texts and (self._compare(ordered=False) or self._compare(ordered=True)):
            return
        if self.spec.lo is not None or self.spec.hi is not None:
            # A slice of a big table (`_parallel`) not proven: the whole table is compared
            # row by row in one job (the multisets need every row). Its sorted texts would
            # differ too: equal tables make equal slices.
            self.res.whole_again = True
            return
        self.res = self._restart(refusal)
        super().run()

    def _slice(self) -> tuple[str, sql.Composable | None]:
        """The slice's rows on each side (SQLite SQL, a PostgreSQL WHERE), cut by the
        values of `slice_column` at the job's bounds [lo, hi); the whole table when the
        job has none. The first slice also takes NULL, the last one text and blobs.

        Why slices proven equal prove the table: on each side the slices partition the
        rows (NULL is below every bound on both sides, a number lies in exactly one range,
        and SQLite sorts text and blobs above every number), so equal multisets slice by
        slice make equal multisets. A row may fall in another slice on each side (an
        orphan the plan nulls, a value a guard refuses): then a slice differs, and the
        whole table is compared row by row; never a wrong verdict."""
        lo, hi = self.spec.lo, self.spec.hi
        if lo is None and hi is None:
            return "1", None
        i = slice_column(self.t)
        assert i is not None  # `_main` cuts only tables that have one
        q = "+" + quote_ident(self.t.pipe.source_columns[i])  # no affinity: as stored
        col = sql.Identifier(self.t.columns[i].target)
        parts: list[str] = []
        pg: list[sql.Composable] = []
        if lo is not None:
            parts.append(f"{q} >= {int(lo)}")
            pg.append(sql.SQL("{} >= {}").format(col, sql.Literal(int(lo))))
        if hi is not None:
            below = f"{q} < {int(hi)}"
            pg_below = sql.SQL("{} < {}").format(col, sql.Literal(int(hi)))
            if lo is None:
                below = f"coalesce({below}, 1)"
                pg_below = sql.SQL("coalesce({}, true)").format(pg_below)
            parts.append(below)
            pg.append(pg_below)
        return " AND ".join(parts), sql.SQL(" WHERE ") + sql.SQL(" AND ").join(pg)

    def _restart(self, refusal: str | None) -> _UnitResult:
        """A fresh result for the row-by-row comparison, which starts over."""
        old = self.res
        # Compared in one piece: one slow chunk, unless the fast path was not tried.
        res = _UnitResult(old.table, old.unit, refusal=refusal, chunks_slow=int(refusal is None))
        res.passwords, res.mapped, res.pairs = old.passwords, old.mapped, old.pairs
        res.fk_shared, res.fk_source, res.fk_target = old.fk_shared, old.fk_source, old.fk_target
        for counters in (*res.fk_shared.values(), *res.fk_source.values(), *res.fk_target.values()):
            counters.clear()
        return res

    def _compare(self, ordered: bool) -> bool:
        """Compare both sides' row texts, in stored order or sorted; True (with the results
        recorded) when the sequences are equal."""
        t, res = self.t, self.res
        res.mode = "unordered"
        within, pg_within = self._slice()
        src = t.run.src.execute(self._sqlite_rows(ordered, within))
        pg_rows = self._pg_rows(ordered, pg_within)
        # In stored order, the first few rows before the rest is read ahead: PostgreSQL's
        # order, when not SQLite's, shows there at once, before it renders batches no one
        # compares. Sorted, both sides sort at once (the first row waits for the sort).
        ahead: Generator[list[Any], None, None] | None = None
        batches: Iterator[list[Any]] = pg_rows
        if ordered:
            batches = ahead = prefetch(pg_rows, depth=2)
        size = PROBE_ROWS
        first = operator.itemgetter(0)
        total = 0
        rows = 0
        equal = True
        try:
            while True:
                s = src.fetchmany(size)
                p: list[Any] = next(batches, [])
                if len(s) != len(p) or list(map(first, s)) != list(map(first, p)):
                    equal = False
                    break
                if not s:
                    break
                rows += len(s)
                # The digest hashes the canonical text: PostgreSQL's, the same on both sides.
                texts = map(operator.itemgetter(1), p) if len(p[0]) > 1 else (r[1:] for (r,) in s)
                total += sum(map(int.from_bytes, map(_digest, map(hashlib.sha256, texts))))
                size = _fast.CHUNK_ROWS
                if ahead is None:
                    batches = ahead = prefetch(pg_rows, depth=2)
        finally:
            src.close()
            if ahead is not None:
                ahead.close()  # the reading thread ends
            pg_rows.close()  # then its cursor is closed, in this thread
        if not equal:
            return False
        res.chunks_fast += -(-rows // _fast.CHUNK_ROWS)
        digest = (total % (1 << 256)).to_bytes(32, "big")
        res.source_digest = res.target_digest = digest
        res.streamed = res.target_rows = res.present = res.fast = rows
        res.orphans_nulled = self._orphans_nulled(within)
        if self.spec.lo is None:  # once per table: the first slice, or the whole table
            self._count_foreign_keys()
        return True

    def _sqlite_rows(self, ordered: bool, within: str = "1") -> str:
        t = self.t
        nulled_by: dict[int, list[int]] = collections.defaultdict(list)
        nulls_any = any(policy == "null" for policy, _ in t.pipe.orphan_policies)
        flags = [f"_o{k}" if nulls_any else f"({e})" for k, e in enumerate(t.pipe.orphan_exprs)]
        bad: list[str] = []
        for k, (policy, positions) in enumerate(t.pipe.orphan_policies):
            if policy == "null":
                for p in positions:
                    nulled_by[p].append(k)
            else:
                bad.append(flags[k])
        fields: list[str] = []
        for i, name in enumerate(t.pipe.source_columns):
            c = t.columns[i]
            q = quote_ident(name)
            col = sqlite_column(c, q, self.declared.get(name, ""))
            bad.extend(col.bad)
            null = null_marker(c.pg_type)
            if c.pg_type.family in TEXTUAL or c.pg_type.family in _GS_FAMILIES:
                # A value that prints as the NULL marker.
                marker = "X'1D'" if null == GS else "X''"
                bad.append(f"CAST({q} AS BLOB) = {marker}")
            text = col.text
            if nulled_by.get(i):
                orphan = " OR ".join(flags[k] for k in nulled_by[i])
                text = f"CASE WHEN {orphan} THEN NULL ELSE {text} END"
            fields.append(f"coalesce({text}, '{null}')")
        for k, v in enumerate(t.consts):
            c = t.columns[t.n + k]
            fields.append(_literal(_text(v, null_marker(c.pg_type))))
        flag = f"CASE WHEN {any_of(bad)} THEN X'00' ELSE X'01' END" if bad else "X'01'"
        # printf: cheaper than a concatenation per field; at most 127 arguments each.
        pieces = [flag]
        for k in range(0, len(fields), 100):
            group = fields[k : k + 100]
            template = "%s\x1f" * len(group)
            pieces.append(f"printf('{template}', {', '.join(group)})")
        row = f"CAST({' || '.join(pieces)} AS BLOB)"
        where = f"({t.pipe.where})" if t.pipe.where else "1"
        source = f"{quote_ident(t.pipe.table.name)} WHERE {where} AND {within}"
        if nulls_any:
            orphans = ", ".join(f"{e} AS _o{k}" for k, e in enumerate(t.pipe.orphan_exprs))
            source = f"(SELECT *, {orphans} FROM {source} LIMIT -1)"
        if not ordered:
            return f"SELECT {row} FROM {source}"
        # MATERIALIZED: else SQLite computes each row's text twice, to sort and to return it.
        return (
            f"WITH m AS MATERIALIZED (SELECT {row} AS r FROM {source}) SELECT r FROM m ORDER BY r"
        )

    def _pg_rows(
        self, ordered: bool, where: sql.Composable | None = None
    ) -> Generator[list[Any], None, None]:
        """PostgreSQL's rows in stored order or sorted by compare text: (compare text,
        canonical text) when a column is compared in another form, else (compare text,)."""
        t = self.t
        ok: list[sql.Composable] = []
        fields: list[sql.Composable] = []
        canonical: list[sql.Composable] = []
        both = False
        for j, c in enumerate(t.columns):
            col = sql.Identifier(c.target)
            ok.extend(pg_ok(c, per_row=True))
            if c.pg_type.family in FREE:
                ok.append(sql.SQL("coalesce({} !~ {}, true)").format(col, sql.Literal(_CONTROL)))
            null = sql.Literal(null_marker(c.pg_type))
            # SQLite renders the loaded columns in their compare form, added ones as text.
            declared = self.declared.get(c.source or "", "")
            by_sql = j < t.n and not compares_canonical(c, declared)
            both = both or by_sql
            fields.append(
                sql.SQL("coalesce({}, {}), {}").format(
                    pg_compare(c, declared) if by_sql else pg_text(c), null, sql.Literal(US)
                )
            )
            canonical.append(
                sql.SQL("coalesce({}, {}), {}").format(pg_text(c), null, sql.Literal(US))
            )
        flag = (
            sql.SQL("CASE WHEN {} THEN chr(1) ELSE chr(2) END").format(sql.SQL(" AND ").join(ok))
            if ok
            else sql.SQL("chr(1)")
        )
        extra = sql.SQL(", {}").format(_concat(canonical)) if both else sql.SQL("")
        query = sql.SQL("SELECT {} || {} AS r{} FROM {}{}").format(
            flag, _concat(fields), extra, t.qualified, where or sql.SQL("")
        )
        if ordered:
            query = sql.SQL('SELECT * FROM ({}) AS s ORDER BY r COLLATE "C"').format(query)
        name = f"lite2pg_rows_{self.spec.unit}_{'sorted' if ordered else 'stored'}"
        with t.run.pg.cursor(name=name, binary=True) as cur:
            cur.adapters.register_loader("text", ByteaBinaryLoader)
            cur.itersize = _fast.CHUNK_ROWS
            cur.execute(query)
            size = PROBE_ROWS  # then CHUNK_ROWS: as `_compare` reads SQLite's
            while batch := cur.fetchmany(size):
                yield batch
                size = _fast.CHUNK_ROWS

    def _orphans_nulled(self, within: str = "1") -> int:
        t = self.t
        nulling = [
            t.pipe.orphan_exprs[k]
            for k, (policy, _) in enumerate(t.pipe.orphan_policies)
            if policy == "null"
        ]
        if not nulling:
            return 0
        where = f" WHERE ({t.pipe.where}) AND {within}" if t.pipe.where else f" WHERE {within}"
        sums = " + ".join(f"total({e})" for e in nulling)
        row = t.run.src.execute(
            f"SELECT {sums} FROM {quote_ident(t.pipe.table.name)}{where}"
        ).fetchone()
        return int(row[0]) if row else 0

    def _count_foreign_keys(self) -> None:
        """Rows per FK value, the same on both sides: from PostgreSQL."""
        t = self.t
        for i in t.fk_positions:
            c = t.columns[i]
            with t.run.pg.cursor(binary=True) as cur:
                rows = cur.execute(
                    sql.SQL("SELECT {}, count(*) FROM {} GROUP BY 1").format(
                        _pg_canon(c), t.qualified
                    )
                ).fetchall()
            self.res.fk_shared[c.target].update({value: int(n) for value, n in rows})


def _concat(parts: list[sql.Composable]) -> sql.Composable:
    """concat() of many texts (a function takes at most 100 arguments)."""
    groups = [
        sql.SQL("concat({})").format(sql.SQL(", ").join(parts[k : k + 90]))
        for k in range(0, len(parts), 90)
    ]
    return sql.SQL(" || ").join(groups) if groups else sql.SQL("''")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
