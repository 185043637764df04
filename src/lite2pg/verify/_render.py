"""The canonical text of one column, rendered in SQL by SQLite and by PostgreSQL, and the
guards that make two equal texts a proof that target value == transform(source value).

Used by the fast paths (`_fast`, `_sorted`). For each family:

- `Column.text`: SQLite SQL giving the canonical text of the stored value (NULL stays NULL);
  it may use the helper columns of `Column.inner` (computed once per row in a subquery).
- `Column.bad`: SQLite SQL, true for a value whose text could equal PostgreSQL's without
  transform(value) being that value (the storage class, the shape): its chunk goes row by
  row. The comparisons `q >= ''` (text or blob), `q >= X''` (blob) and `q < X''` (neither)
  cost no function call: SQLite sorts NULL < numbers < text < blobs.
- `pg_text(c)`: PostgreSQL SQL giving the canonical text of the target value, which is also
  what the row digests hash (`_canon._text`).
- `pg_ok(c)`: PostgreSQL aggregates, true when every value of a chunk lies where
  PostgreSQL's text is canonical and transform can give it (years 1 to 9999, ...).

The arithmetic guards of REAL values rest on IEEE-754 doubles with correctly rounded
division, as on every platform lite2pg runs on (x86-64 SSE2, ARM64).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg import sql

from lite2pg.coerce import Family, PgType
from lite2pg.schema import ColumnMap
from lite2pg.verify._canon import _SHAPE

# The families rendered in SQL; INTERVAL and MONEY are not (yet): their canonical forms
# are computed in Python.
FAMILIES = frozenset(
    {
        Family.INTEGER,
        Family.BOOLEAN,
        Family.NUMERIC,
        Family.TEXT,
        Family.ENUM,
        Family.OTHER,
        Family.TIMESTAMPTZ,
        Family.TIMESTAMP,
        Family.DATE,
        Family.TIME,
        Family.BYTEA,
        Family.JSONB,
        Family.JSON,
        Family.UUID,
        Family.INET,
    }
)
# Families whose non-NULL SQLite values may print as the NULL marker (text, or a blob
# that is one character): their non-NULL counts must agree on both sides.
TEXTUAL = FAMILIES - {Family.INTEGER, Family.BOOLEAN, Family.BYTEA}
# Families whose PostgreSQL text is free text (may hold any character but NUL).
FREE = frozenset({Family.TEXT, Family.ENUM, Family.OTHER})

_NATIVE = (Family.JSONB, Family.JSON, Family.UUID, Family.INET)

# PostgreSQL prints its dates and times canonically (4-digit year, AD, finite) only in
# this range, which is also where transform's values are: 'infinity', BC dates and years
# past 9999 print text that transform rejects, so a chunk holding one takes the slow path.
# time prints '24:00:00', which transform never gives.
_PG_RANGE = {
    Family.TIMESTAMPTZ: ("0001-01-01 00:00:00+00", "10000-01-01 00:00:00+00", "timestamptz"),
    Family.TIMESTAMP: ("0001-01-01 00:00:00", "10000-01-01 00:00:00", "timestamp"),
    Family.DATE: ("0001-01-01", "10000-01-01", "date"),
    Family.TIME: (None, "24:00:00", "time"),
}

# PostgreSQL side: each column as its canonical text (what `_canon._text` gives for the
# canonical value); DateStyle is ISO for verify's sessions.
_PG_TEXT = {
    Family.BOOLEAN: "{}::int::text",
    Family.NUMERIC: "trim_scale({})::text",
    Family.BYTEA: "upper(encode({}, 'hex'))",
    Family.TIMESTAMPTZ: "({} AT TIME ZONE 'UTC')::text",
    Family.UUID: "replace({}::text, '-', '')",
}


@dataclass
class Column:
    """One column of a chunk as SQLite renders it (see the module doc)."""

    text: str
    bad: list[str] = field(default_factory=list)
    inner: list[tuple[str, str]] = field(default_factory=list)  # (alias, SQL) per row


def sqlite_column(c: ColumnMap, q: str, declared: str, alias: str) -> Column:
    """How SQLite renders column `q` (an expression of the row: a column or the alias of
    one in the subquery) of declared type `declared`; `alias` names its helper columns."""
    fam = c.pg_type.family
    if fam in (Family.INTEGER, Family.BOOLEAN):
        # The text '5' or a blob of it; a real always prints a '.' or an exponent.
        return Column(q, [f"{q} >= ''"])
    if fam in (Family.ENUM, Family.OTHER, *_NATIVE):
        # A number, a blob. The text of these types that PostgreSQL prints reads back as
        # the same value (`native`), so text equal to it converts to that value.
        return Column(q, [f"{q} < ''", f"{q} >= X''"])
    if fam is Family.DATE:
        # A number cannot print as a date; the range PostgreSQL's values are in is
        # checked on its side (`_PG_RANGE`).
        return Column(q, [f"{q} >= X''"])
    if fam in (Family.TIMESTAMPTZ, Family.TIMESTAMP):
        return Column(_trimmed_fraction(q, 20, 26), [f"{q} >= X''"])
    if fam is Family.TIME:
        return Column(_trimmed_fraction(q, 9, 15), [f"{q} >= X''"])
    if fam is Family.BYTEA:
        # Text (bytes of any encoding) and numbers are not bytes.
        return Column(f"CASE WHEN {q} IS NULL THEN NULL ELSE hex({q}) END", [f"{q} < X''"])
    if fam is Family.TEXT:
        # transform prints integers as SQLite does and decodes blobs; a real would print
        # with 15 digits where transform keeps 17. TEXT affinity stores no reals.
        return Column(q, [] if affinity(declared) == "TEXT" else [f"typeof({q}) = 'real'"])
    if fam is Family.NUMERIC:
        shape = _SHAPE[Family.NUMERIC].format(c=q)
        bad = [f"typeof({q}) IN ('real', 'blob')", f"(typeof({q}) = 'text' AND {shape})"]
        return Column(q, bad)
    raise AssertionError(fam)


def _trimmed_fraction(q: str, dot: int, longest: int) -> str:
    """Text of a timestamp ('YYYY-MM-DD HH:MM:SS.ffffff', dot at 20) or a time of day
    ('HH:MM:SS.ffffff', dot at 9) with the fraction's trailing zeros cut (and the dot
    when nothing is left), as PostgreSQL prints it; other text as it stands.

    Why this is exact: the cut applies only to 1 to 6 digits after the dot, so a value
    whose text then equals PostgreSQL's is PostgreSQL's text followed by zeros (or by a
    dot and zeros), which transform reads as the very same instant: Python reads 1 to 6
    fraction digits as microseconds, and has no digits to drop for timestamp(p) or
    time(p) since PostgreSQL printed at most p. Text left as it stands is compared as it
    stands, as before. Only values ending in '0' pay for the checks."""
    cut = f"rtrim({q}, '0')"
    return (
        f"CASE WHEN substr({q}, -1) = '0' AND substr({q}, {dot}, 1) = '.' "
        f"AND length({q}) <= {longest} AND ltrim(substr({q}, {dot + 1}), '0123456789') = '' "
        f"THEN substr({cut}, 1, CASE length({cut}) WHEN {dot} THEN {dot - 1} "
        f"ELSE {longest} END) ELSE {q} END"
    )


def affinity(declared: str) -> str:
    """SQLite's column affinity of a declared type (its rules, in their order)."""
    d = declared.upper()
    if "INT" in d:
        return "INTEGER"
    if any(k in d for k in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in d or not d.strip():
        return "BLOB"
    if any(k in d for k in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def pg_text(c: ColumnMap) -> sql.Composable:
    """PostgreSQL's canonical text of column `c` (NULL stays NULL)."""
    return sql.SQL(_PG_TEXT.get(c.pg_type.family, "{}::text")).format(sql.Identifier(c.target))


def pg_ok(c: ColumnMap) -> list[sql.Composable]:
    """Aggregates over a chunk, each true when its values are where PostgreSQL's text is
    canonical and transform can give them."""
    r = _PG_RANGE.get(c.pg_type.family)
    if r is None:
        return []
    col = sql.Identifier(c.target)
    lo, hi, typ = r
    out: list[sql.Composable] = []
    if lo is not None:
        out.append(
            sql.SQL("coalesce(min({}) >= {}::{}, true)").format(col, sql.Literal(lo), sql.SQL(typ))
        )
    out.append(
        sql.SQL("coalesce(max({}) < {}::{}, true)").format(col, sql.Literal(hi), sql.SQL(typ))
    )
    return out


def is_rendered(pg: PgType) -> bool:
    """Whether both sides render this type's canonical text in SQL."""
    return pg.family in FAMILIES
