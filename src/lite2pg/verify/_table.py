"""One table as verify sees it: the run's own row pipeline, the SQL that renders both sides
as canonical rows, and the key that orders them."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from decimal import InvalidOperation
from typing import Any

from psycopg import sql

from lite2pg.coerce import Family, converter
from lite2pg.errors import TransformError
from lite2pg.layout import table_plan
from lite2pg.plan import TablePlan
from lite2pg.rows import GoneRows, RowPipeline, RowRejected, TableCounts, build_pipeline
from lite2pg.rows import balanced_and as _and
from lite2pg.source import quote_ident
from lite2pg.transforms.passwords import (
    CacheReader,
    HashResult,
    prepare,
)
from lite2pg.verify._canon import (
    _SHAPE,
    _TEXTUAL,
    Row,
    _canon_fn,
    _pg_canon,
    _show,
    _sort_key,
    _sqlite_literal,
)
from lite2pg.verify._passwords import _Password
from lite2pg.verify._run import _Run


class _Table:
    """One table as verify sees it: the run's pipeline, and both sides' canonical rows."""

    def __init__(self, run: _Run, name: str, gone: dict[str, list[Row]]) -> None:
        self.run = run
        self.tm = next(m for m in run.maps if m.source.name == name)
        tm = self.tm
        plan = run.opts.plan
        self.tp: TablePlan | None = table_plan(plan, name)
        self.gone = GoneRows(run.src, run.layout.tables)
        self.gone.load(gone)
        for t in run.layout.skipped:
            self.gone.record_where_not(t, None)
        for t in run.layout.tables:
            other = table_plan(plan, t.name)
            if t.name != name and other is not None and other.where:
                self.gone.record_where_not(t, other.where)
        # A table the run says it took whole (no row rejected or filtered) has no row the
        # default policy rejected as an orphan: its unnamed FKs need no check per row. An
        # orphan loaded all the same fails the FK check; a false report, the counts.
        whole = name in run.whole
        self.pipe: RowPipeline = build_pipeline(tm, self.tp, self.gone, unnamed_orphans=not whole)
        pipe = self.pipe
        self.columns = tm.columns
        self.canon = [_canon_fn(c.pg_type) for c in tm.columns]
        self.secret = [
            c.secret or (c.source is not None and c.source in pipe.secret_columns)
            for c in tm.columns
        ]
        self.n = len(pipe.source_columns)
        self.n_const = len(pipe.constants)
        self.n_orph = len(pipe.orphan_exprs)
        self.consts = tuple(self.canon[self.n + i](v) for i, v in enumerate(pipe.constants))
        transformed = self.tp is not None and any(c in self.tp.columns for c in pipe.source_columns)
        self.transformed = transformed
        # The source's flag: 1 when the row's raw values may be compared as they stand.
        flags: list[str] = []
        if transformed:
            flags.append("0")
        loaded = tm.columns[: self.n]
        for c, name_ in zip(loaded, pipe.source_columns, strict=True):
            q = quote_ident(name_)
            if c.pg_type.family is Family.FLOAT:
                # 0.0 == -0.0 in Python: zeros take the slow path, which compares bits.
                flags.append(f"({q} IS NULL OR {q} <> 0)")
            shape = _SHAPE.get(c.pg_type.family)
            if shape is not None and not transformed:
                # Text PostgreSQL also prints ('NaN', 'infinity') is no proof of equality.
                flags.append(f"(typeof({q}) <> 'text' OR NOT {shape.format(c=q)})")
        flags.extend(f"NOT coalesce({e}, 0)" for e in pipe.orphan_exprs)
        exprs: list[str] = []
        for c, name_ in zip(loaded, pipe.source_columns, strict=True):
            q = quote_ident(name_)
            if c.pg_type.family is Family.NUMERIC and not transformed:
                exprs.append(f"CASE typeof({q}) WHEN 'integer' THEN CAST({q} AS TEXT) ELSE {q} END")
            else:
                exprs.append(q)
        self.sqlite_select = [
            _and(flags),
            *exprs,
            *(_sqlite_literal(v) for v in self.consts),
            *pipe.orphan_exprs,
        ]
        self.pg_select = sql.SQL(", ").join(
            [
                sql.SQL("1::int8"),
                *(_pg_canon(c) for c in tm.columns),
                *(sql.SQL("0::int8") for _ in range(self.n_orph)),
            ]
        )
        # The key: the source primary key, when every column of it is loaded.
        key_src = [c for c in tm.source.primary_key if c in pipe.source_columns]
        if key_src and len(key_src) == len(tm.source.primary_key):
            self.key_s = [pipe.source_columns.index(c) for c in key_src]
        else:
            self.key_s = []
        self.key_names = [tm.columns[i].target for i in self.key_s]
        self.key_numeric = [tm.columns[i].pg_type.family is Family.NUMERIC for i in self.key_s]
        self.key_conv = [(converter(tm.columns[i].pg_type), self.canon[i]) for i in self.key_s]
        self.sqlite_order = [quote_ident(pipe.source_columns[i]) for i in self.key_s]
        order_parts: list[sql.Composable] = []
        for i in self.key_s:
            c = tm.columns[i]
            expr: sql.Composable
            if c.pg_type.family in _TEXTUAL:
                expr = sql.SQL('({}) COLLATE "C"').format(_pg_canon(c))
            else:
                expr = sql.Identifier(c.target)
            order_parts.append(sql.SQL("{} NULLS FIRST").format(expr))
        self.pg_order = sql.SQL(", ").join(order_parts)
        alias = tm.source.rowid_alias
        self.rowid_key = (
            alias
            if alias is not None
            and self.key_s
            and len(self.key_s) == 1
            and (pipe.source_columns[self.key_s[0]] == alias)
            and tm.columns[self.key_s[0]].pg_type.family is Family.INTEGER
            else None
        )
        # FK columns (source positions) for the rows-per-parent distributions.
        self.fk_positions = sorted(
            {
                pipe.source_columns.index(fk.columns[0])
                for fk in tm.source.foreign_keys
                if len(fk.columns) == 1 and fk.columns[0] in pipe.source_columns
            }
        )
        # FK columns whose value in the target is the source value as the type converts it
        # (no plan transform, no orphan policy that nulls it): their rows per value can be
        # counted on the snapshot.
        nulled = {p for policy, positions in pipe.orphan_policies if policy == "null"
                  for p in positions}  # fmt: skip
        self.plain_fks = [
            i
            for i in self.fk_positions
            if i not in nulled
            and (self.tp is None or pipe.source_columns[i] not in self.tp.columns)
        ]
        self.map_positions = [
            i
            for i, name_ in enumerate(pipe.source_columns)
            if self.tp is not None
            and name_ in self.tp.columns
            and any(s.name == "map" for s in self.tp.columns[name_].specs)
            and not self.secret[i]
        ]
        self.qualified = sql.SQL("{}.{}").format(
            sql.Identifier(run.opts.schema), sql.Identifier(tm.target)
        )

    # -- keys -------------------------------------------------------------------------

    def key_of_target(self, row: Row) -> tuple[Any, ...]:
        return _sort_key([row[1 + i] for i in self.key_s], self.key_numeric)

    def key_of_source(self, raw: Row, expected: Row | None) -> tuple[Any, ...]:
        if expected is not None:
            values = [expected[1 + i] for i in self.key_s]
        else:
            values = []
            for i, (conv, canon) in zip(self.key_s, self.key_conv, strict=True):
                v = raw[1 + i]
                with contextlib.suppress(TransformError, ValueError, TypeError, InvalidOperation):
                    v = canon(conv(v))
                values.append(v)
        return _sort_key(values, self.key_numeric)

    def key_display(self, values: Sequence[Any]) -> dict[str, str]:
        return {
            name: _show(v, self.secret[i])
            for name, i, v in zip(self.key_names, self.key_s, values, strict=True)
        }

    # -- the pipeline -------------------------------------------------------------------

    def expect(
        self, raw: Row, counts: TableCounts, cache: CacheReader | None, pw_index: list[int]
    ) -> tuple[Row | None, str | None, str | None]:
        """The canonical row transform(source) gives, or None with the reject reason/column."""
        values = raw[1 : 1 + self.n] + raw[1 + self.n + self.n_const :]
        try:
            out = list(self.pipe.slow(values, counts))
        except RowRejected as e:
            return None, e.reason, e.column
        canon: list[Any] = [1]
        hashed = {pos: (column, policy) for pos, column, policy in self.pipe.hashed}
        for k, (pos, column, policy) in enumerate(self.pipe.hashed):
            prepared = prepare(policy, out[pos])
            if isinstance(prepared, HashResult):
                if prepared.error is not None:
                    return None, prepared.error.reason, column
                if prepared.source == "kept":
                    out[pos] = prepared.value
                elif prepared.value is None:
                    out[pos] = None
                else:
                    out[pos] = _Password("unusable", policy)
                continue
            if self.key_s:
                key: object = tuple(out[p] for p in self.key_s)
            else:
                key = pw_index[k]
                pw_index[k] += 1
            scope = f"{self.pipe.table.name}.{column}"
            stored = cache.lookup(scope, repr(key), prepared, policy) if cache else None
            if stored is not None:
                out[pos] = _Password("hash", policy, hash=stored, plaintext=prepared)
            else:
                out[pos] = _Password("plain", policy, plaintext=prepared)
        for i, v in enumerate(out):
            canon.append(v if i in hashed else self.canon[i](v))
        canon.extend(self.consts)
        canon.extend([0] * self.n_orph)
        return tuple(canon), None, None


class _Unordered(Exception):
    """The source's keys do not come in the target's key order (mixed storage classes)."""
