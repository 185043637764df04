"""COLLATE NOCASE kept: the unique keys PostgreSQL compares without case, and the source
values that would collide there.

SQLite's NOCASE folds A-Z only; PostgreSQL's lower() (and so citext) folds every letter.
Keys that SQLite keeps apart, 'É' and 'é', become one in PostgreSQL: the preflight finds
such groups before anything is written, instead of a unique index failing after the load.
"""

from __future__ import annotations

import sqlite3
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from lite2pg.errors import CaseCollisionError, TransformError
from lite2pg.plan import Plan
from lite2pg.schema import TableMap, fold_name
from lite2pg.source import Index, quote_ident

# Values lowered by PostgreSQL per round trip.
FOLD_BATCH = 5_000
# Values shown per group: enough to recognise them, short enough for one line.
SHOWN = 4

Fold = Callable[[Sequence[str]], list[str]]


@dataclass(frozen=True)
class CaseCollision:
    """Keys of one unique key that SQLite holds apart and PostgreSQL would make one."""

    table: str
    key: str  # e.g. "unique key (name)"
    column: str  # the first column of the key whose case PostgreSQL folds
    values: tuple[tuple[Any, ...], ...]  # the distinct keys, as stored in SQLite

    def __str__(self) -> str:
        shown = ", ".join(
            _show(v[0]) if len(v) == 1 else "(" + ", ".join(map(_show, v)) + ")"
            for v in self.values[:SHOWN]
        )
        shown += ", ..." if len(self.values) > SHOWN else ""
        return f"table {self.table}: {self.key}: {shown} are one value in PostgreSQL"

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "key": self.key, "values": [list(v) for v in self.values]}


def _show(value: Any) -> str:
    """A value as Python writes it, with the code points of letters that look like A-Z
    (the Kelvin sign U+212A prints as K)."""
    shown = repr(value)
    if isinstance(value, str):
        alike = [c for c in value if not c.isascii() and unicodedata.normalize("NFKC", c).isascii()]
        if alike:
            shown += " (" + ", ".join(f"U+{ord(c):04X}" for c in alike) + ")"
    return shown


def python_lower(values: Sequence[str]) -> list[str]:
    """lower() as a UTF-8 PostgreSQL database does it, near enough, when there is none."""
    return [v.lower() for v in values]


def pg_lower(conn: psycopg.Connection[Any]) -> Fold:
    """lower() by the target itself: exactly what its citext and lower() indexes compare."""

    def fold(values: Sequence[str]) -> list[str]:
        out: list[str] = []
        for i in range(0, len(values), FOLD_BATCH):
            row = conn.execute(
                "SELECT array_agg(lower(v) ORDER BY n) FROM unnest(%s::text[])"
                " WITH ORDINALITY AS u(v, n)",
                (list(values[i : i + FOLD_BATCH]),),
            ).fetchone()
            out.extend(row[0] if row and row[0] else [])
        return out

    return fold


def refuse(collisions: Sequence[CaseCollision]) -> None:
    """Stop the run before anything is written when `collisions` holds any."""
    if not collisions:
        return
    first = collisions[0]
    raise CaseCollisionError(
        [str(c) for c in collisions],
        "SQLite's COLLATE NOCASE folds A-Z only; make these values differ in more than "
        f"case in SQLite, or load the column case-sensitively: --cast {first.table}.{first.column}"
        "=text",
    )


def caseless_keys(tm: TableMap) -> list[tuple[Index, list[bool]]]:
    """The unique keys of a table that PostgreSQL compares without case, with, per column,
    whether its values are folded: a COLLATE NOCASE text column (citext, or the key on
    lower()), or a citext column."""
    out: list[tuple[Index, list[bool]]] = []
    for ix in tm.source.indexes:
        if not ix.unique or not ix.plain or not all(tm.has(c) for c in ix.columns):
            continue
        collations = ix.collations or ("BINARY",) * len(ix.columns)
        folded = [tm.folds_case(c, coll) for c, coll in zip(ix.columns, collations, strict=True)]
        if any(folded):
            out.append((ix, folded))
    return out


def preflight(
    src: sqlite3.Connection, maps: Sequence[TableMap], plan: Plan | None, fold: Fold
) -> list[CaseCollision]:
    """Every group of keys that a unique key compared without case keeps apart in SQLite
    and that PostgreSQL would find equal (values as the plan's transforms make them)."""
    found: list[CaseCollision] = []
    for tm in maps:
        for ix, folded in caseless_keys(tm):
            found.extend(_collisions(src, tm, plan, ix, folded, fold))
    return found


def _non_ascii(q: str) -> str:
    return f"({q} GLOB '*[^' || char(1) || '-' || char(127) || ']*')"


def _collisions(
    src: sqlite3.Connection,
    tm: TableMap,
    plan: Plan | None,
    ix: Index,
    folded: list[bool],
    fold: Fold,
) -> list[CaseCollision]:
    cols = [quote_ident(c) for c in ix.columns]
    # Per column: SQLite compares it without case (A-Z only); PostgreSQL does (`folded`).
    nocase = [c == "NOCASE" for c in ix.collations or ("BINARY",) * len(cols)]
    tp = plan.table(tm.source.name) if plan is not None else None
    chains = [tp.chain(c) if tp is not None else None for c in ix.columns]
    present = " AND ".join(f"{q} IS NOT NULL" for q in cols)  # NULLs never collide
    # A value PostgreSQL may fold otherwise than SQLite: a letter beyond A-Z, or any
    # capital where SQLite compares with case (a text column that became citext).
    odd = " OR ".join(
        _non_ascii(q) if n else f"({_non_ascii(q)} OR {q} GLOB '*[A-Z]*')"
        for q, f, n in zip(cols, folded, nocase, strict=True)
        if f
    )
    where = f"({tp.where}) AND " if tp is not None and tp.where else ""
    base = f"SELECT {', '.join(cols)} FROM {quote_ident(tm.source.name)} WHERE {where}{present}"

    def keys(query: str) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...]]]:
        """(key as loaded, key as SQLite compares it) of each row the query gives."""
        for row in src.execute(query):
            try:
                loaded = tuple(
                    c(v) if c is not None else v for c, v in zip(chains, row, strict=True)
                )
            except TransformError:
                continue  # the load rejects the row
            yield (
                loaded,
                tuple(
                    fold_name(v) if n and isinstance(v, str) else v
                    for v, n in zip(loaded, nocase, strict=True)
                ),
            )

    # Only such values can collide otherwise than in SQLite: find them first (rare), then
    # stream the other rows for keys that fold to the same.
    odd_rows = list(keys(f"{base} AND ({odd})"))
    if not odd_rows:
        return []
    to_fold = sorted(
        {v for loaded, _ in odd_rows for v, f in zip(loaded, folded, strict=True) if f} - {None},
        key=str,
    )
    lowered = dict(zip(to_fold, fold([str(v) for v in to_fold]), strict=True))
    groups: dict[tuple[Any, ...], dict[tuple[Any, ...], tuple[Any, ...]]] = {}
    for loaded, sqlite_key in odd_rows:
        pg_key = tuple(
            lowered[v] if f and v in lowered else v for v, f in zip(loaded, folded, strict=True)
        )
        groups.setdefault(pg_key, {}).setdefault(sqlite_key, loaded)
    for loaded, sqlite_key in keys(f"{base} AND NOT ({odd})"):
        # A-Z only, and capitals only where SQLite folds them too: PostgreSQL folds alike.
        pg_key = tuple(
            fold_name(v) if f and isinstance(v, str) else v
            for v, f in zip(loaded, folded, strict=True)
        )
        if pg_key in groups:
            groups[pg_key].setdefault(sqlite_key, loaded)
    what = "primary key" if ix.origin == "pk" else "unique key"
    label = f"{what} ({', '.join(ix.columns)})"
    column = next(c for c, f in zip(ix.columns, folded, strict=True) if f)
    return [
        CaseCollision(tm.source.name, label, column, tuple(sorted(g.values(), key=str)))
        for g in groups.values()
        if len(g) > 1
    ]
