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
        Family.FLOAT,
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
TEXTUAL = FAMILIES - {Family.INTEGER, Family.BOOLEAN, Family.BYTEA, Family.FLOAT}
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
    # Python's repr of the double: PostgreSQL prints the same shortest digits (extra_float_digits
    # >= 1 for verify's sessions) and, from 0.0001 to 1e15, the same fixed notation, less
    # the '.0' of a whole number. Outside that range SQLite's side has no text (`_real`).
    Family.FLOAT: (
        "CASE WHEN ({0})::float8 = trunc(({0})::float8) THEN ({0})::float8::text || '.0' "
        "ELSE ({0})::float8::text END"
    ),
}


@dataclass
class Column:
    """One column of a chunk as SQLite renders it (see the module doc)."""

    text: str
    bad: list[str] = field(default_factory=list)
    # Helper values per row, (alias, SQL): `inner` ones may use the row's columns, `middle`
    # ones also the inner helpers; `text` and `bad` may use both.
    inner: list[tuple[str, str]] = field(default_factory=list)
    middle: list[tuple[str, str]] = field(default_factory=list)


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
        bad = [f"{q} >= X''", f"(typeof({q}) = 'text' AND {shape})"]
        if affinity(declared) == "TEXT":  # stores no reals
            return Column(q, [*bad, f"typeof({q}) = 'real'"])
        scale = c.pg_type.scale
        real = _real(q, alias, scale if scale is not None and scale <= _MAX_SCALE else None)
        text = f"CASE typeof({q}) WHEN 'real' THEN {real.text} ELSE {q} END"
        return Column(text, [*bad, *real.bad], real.inner, real.middle)
    if fam is Family.FLOAT:
        real = _real(q, alias, None, point_zero=True)
        bad = [
            f"{q} >= ''",  # transform takes no text, nor blobs
            # An integer prints as Python prints the double it converts to exactly.
            f"(typeof({q}) = 'integer' AND {q} NOT BETWEEN -{2**53} AND {2**53})",
            *real.bad,
        ]
        if affinity(declared) != "REAL":
            # -0.0 prints as 0.0; only REAL affinity stores every zero as +0.0.
            bad.append(f"(typeof({q}) = 'real' AND {q} = 0)")
        text = f"CASE typeof({q}) WHEN 'real' THEN {real.text} WHEN 'integer' THEN {q} || '.0' END"
        return Column(text, bad, real.inner, real.middle)
    raise AssertionError(fam)


# The largest R and the most decimals of `_real`: R * 10**-s has at most 15 significant
# digits, and 10**s is an INTEGER literal (below 2**63), which converts to a double exactly.
_MAX_R = 10**15 - 1
_MAX_SCALE = 17


def _real(q: str, alias: str, scale: int | None, point_zero: bool = False) -> Column:
    """The text of a REAL `q` as the decimal Q = R / 10**s it is the double nearest to,
    where Q has at most 15 significant digits: s is the column's scale, or else chosen by
    the magnitude of `q`; R = round(q * 10**s). Valid only where the guard holds:
    |R| <= _MAX_R and R / 10**s, divided in IEEE arithmetic (correctly rounded), is `q`.

    Why this is exact: the guard says `q` is the double nearest to Q. A decimal of at most
    15 significant digits is the only one of that length that rounds to its double (15
    digits survive a round trip through a double), so Q is the shortest decimal that
    reads back as `q`, which is Python's repr(q): transform's Decimal(repr(q)) for a
    numeric column, the float itself for a float column. The text is Q's canonical text
    (no trailing zeros; a numeric column's trim_scale), with '.0' on a whole number for a
    float column (repr). It is built from the integer R by integer arithmetic only; none
    of SQLite's own float printing, which is not exact, is used."""
    p = f"{alias}_p"
    r = f"{alias}_r"
    if scale is None:
        # The 10**s that leaves 15 integer digits: s = 15 - k for |q| in [10**(k-1), 10**k).
        bands = [(10 ** (k - 1), 10 ** (15 - k)) for k in range(-2, 16)]
        power = f"CASE WHEN typeof({q}) = 'real' THEN {_ladder(f'abs({q})', bands)} END"
    else:
        power = str(10**scale)
    sign = f"CASE WHEN {r} < 0 THEN '-' ELSE '' END"
    whole = f"(abs({r}) / {p})"
    digits = f"rtrim(substr(abs({r}) % {p} + {p}, 2), '0')"
    if point_zero:
        fraction = f"'.' || CASE WHEN {r} % {p} = 0 THEN '0' ELSE {digits} END"
    else:
        fraction = f"CASE WHEN {r} % {p} = 0 THEN '' ELSE '.' || {digits} END"
    in_range = f"{r} BETWEEN -{_MAX_R} AND {_MAX_R}"
    exact = f"({in_range} AND CAST({r} AS REAL) / {p} = {q})"
    return Column(
        f"CASE WHEN {in_range} THEN {sign} || {whole} || {fraction} END",
        [f"(typeof({q}) = 'real' AND NOT coalesce({exact}, 0))"],
        [(p, power)],
        [(r, f"CAST(round({q} * {p}) AS INTEGER)")],
    )


def _ladder(a: str, bands: list[tuple[float, int]]) -> str:
    """SQL choosing, for `a` >= 0, the value of the band [lower, next lower) it falls in
    (bands ascending; NULL below the first and from 10**15 on; 1 for 0), as a binary tree
    of comparisons. The choice only decides how often the guard holds, not what it proves."""

    def tree(lo: int, hi: int) -> str:
        if lo == hi:
            least, value = bands[lo]
            return str(value) if lo else f"CASE WHEN {a} >= {least} THEN {value} END"
        mid = (lo + hi + 1) // 2
        above, below = tree(mid, hi), tree(lo, mid - 1)
        return f"CASE WHEN {a} >= {bands[mid][0]} THEN {above} ELSE {below} END"

    top = f"{a} >= {10**15}"
    return f"CASE WHEN {a} = 0 THEN 1 WHEN {top} THEN NULL ELSE {tree(0, len(bands) - 1)} END"


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
