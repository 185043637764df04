"""One column as SQLite and PostgreSQL render it in SQL for the fast paths (`_fast`,
`_sorted`), and the guards that make two equal texts a proof that target value ==
transform(source value).

Each value gets two texts. The *canonical* text (`_canon._text`) is what the row digests
hash; PostgreSQL prints it (`pg_text`). The *compare* text is what both sides print to be
compared (`sqlite_column(...).text`, `pg_compare`): for most types the canonical text, but
for DECIMAL and float columns an exact integer form that SQLite can print cheaply, since
SQLite cannot print a double's decimal digits exactly:

- a double (float columns) as M 'p' K, the integer M = value * 2**K, K chosen by the
  value's binary exponent so that M is whole (`_bits`): the double itself, bit for bit;
- a DECIMAL(p,s) value of SQLite's REAL storage as R 'e-' s with R = value * 10**s
  (s: the column's scale, else chosen by magnitude), valid only where R / 10**s, divided
  in IEEE arithmetic, is the very double (`_scaled`); whole numbers as their digits.

`Column.bad` is SQLite SQL, true for a value whose text could equal PostgreSQL's without
transform(value) being that value (the storage class, the shape): its chunk goes row by
row. The comparisons `q >= ''` (text or blob), `q >= X''` (blob) and `q < X''` (neither)
cost no function call: SQLite sorts NULL < numbers < text < blobs. They are made on `+q`,
which has no affinity (in a column of TEXT affinity, `q < ''` would compare a number as
its text, and never be true). A value neither side can
print exactly prints a marker: '?' on SQLite's side, '!' on PostgreSQL's, never equal.
`pg_ok` gives PostgreSQL's checks that its values are where its text is canonical and
transform can give them (years 1 to 9999, ...).

The arithmetic rests on IEEE-754 doubles with correctly rounded division and exact scaling
by powers of two, as on every platform lite2pg runs on (x86-64 SSE2, ARM64).
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
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
assert FREE <= TEXTUAL  # `_fast` checks the non-NULL count of every FREE column

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
    # Python's repr of the double, from PostgreSQL's shortest exact digits
    # (extra_float_digits = 1 in verify's sessions): the same but for the '.0' of a whole
    # number, and for 1e15 <= |x| < 1e16, which Python writes without an exponent.
    Family.FLOAT: (
        "CASE WHEN abs({0}::float8) >= 1e15 AND abs({0}::float8) < 1e16 "
        "THEN {0}::float8::text::numeric::text ELSE {0}::float8::text END "
        "|| CASE WHEN {0}::float8 = trunc({0}::float8) AND abs({0}::float8) < 1e16 "
        "THEN '.0' ELSE '' END"
    ),
}


@dataclass
class Column:
    """One column as SQLite renders it: its compare text, and its guards."""

    text: str
    bad: list[str] = field(default_factory=list)


def sqlite_column(c: ColumnMap, q: str, declared: str) -> Column:
    """How SQLite renders column `q` of declared type `declared` (NULL stays NULL)."""
    fam = c.pg_type.family
    # The guards compare `+q`, which has no affinity: compared with '' or X'', a column of
    # TEXT affinity would first turn its numbers (stored by the writable_schema trick)
    # into text.
    p = f"+{q}"
    if fam in (Family.INTEGER, Family.BOOLEAN):
        # The text '5' or a blob of it; a real always prints a '.' or an exponent.
        return Column(q, [f"{p} >= ''"])
    if fam in (Family.ENUM, Family.OTHER, *_NATIVE):
        # A number, a blob. The text of these types that PostgreSQL prints reads back as
        # the same value (`native`), so text equal to it converts to that value.
        return Column(q, [f"{p} < ''", f"{p} >= X''"])
    if fam is Family.DATE:
        # A number cannot print as a date; the range PostgreSQL's values are in is
        # checked on its side (`_PG_RANGE`).
        return Column(q, [f"{p} >= X''"])
    if fam in (Family.TIMESTAMPTZ, Family.TIMESTAMP):
        return Column(_trimmed_fraction(q, 20, 26), [f"{p} >= X''"])
    if fam is Family.TIME:
        return Column(_trimmed_fraction(q, 9, 15), [f"{p} >= X''"])
    if fam is Family.BYTEA:
        # Text (bytes of any encoding) and numbers are not bytes.
        return Column(f"CASE WHEN {q} IS NULL THEN NULL ELSE hex({q}) END", [f"{p} < X''"])
    if fam is Family.TEXT:
        # transform prints integers as SQLite does and decodes blobs; a real would print
        # with 15 digits where transform keeps repr's up to 17 ('0.1' and the double
        # nearest 0.1 read alike). A column of any affinity may hold reals (TEXT affinity
        # too, after the `PRAGMA writable_schema` trick that changes a declared type), so
        # a number is asked its class: cheap, since text and blobs are not numbers.
        return Column(q, [_real(q)])
    if fam is Family.NUMERIC:
        # Text that is not a plain decimal (PostgreSQL also prints 'NaN'); blobs.
        shape = _SHAPE[Family.NUMERIC].format(c=q)
        bad = [f"{p} >= X''", f"CASE WHEN {p} >= '' THEN {shape} END"]
        if affinity(declared) == "TEXT":  # reals are rare: text is compared as text
            return Column(q, [*bad, _real(q)])
        real = _scaled(p, _scale(c.pg_type))
        return Column(f"CASE WHEN typeof({q}) = 'real' THEN {real} ELSE {q} END", bad)
    if fam is Family.FLOAT:
        # transform takes a double, or an integer that converts to one exactly.
        exact = f"{p} BETWEEN -{2**53} AND {2**53}"
        # -0.0 and 0.0 compare and print alike in SQLite; any affinity may hold -0.0 (REAL
        # affinity too, after the writable_schema trick), so a zero is told by its sign as
        # PostgreSQL prints it, or, where SQLite has no atan2, sent row by row.
        zero = f"CASE WHEN atan2({p}, -1.0) < 0 THEN '-0' ELSE '0' END" if signed_zeros() else "'?'"
        real, whole = _bits(p, zero, "?"), _bits(f"({q} * 1.0)", "'0'", "?")
        # NULL stays NULL (as `_bits` keeps it on PostgreSQL's side): both print the marker.
        return Column(
            f"CASE typeof({q}) WHEN 'real' THEN {real} "
            f"WHEN 'integer' THEN CASE WHEN {exact} THEN {whole} ELSE '?' END "
            f"WHEN 'null' THEN NULL ELSE '?' END"
        )
    raise AssertionError(fam)


@functools.cache
def signed_zeros() -> bool:
    """Whether SQLite tells -0.0 from 0.0 here: atan2(-0.0, -1) is -pi, but atan2 is one of
    the math functions SQLite may be built without."""
    try:
        with contextlib.closing(sqlite3.connect(":memory:")) as conn:
            row = conn.execute("SELECT atan2(-0.0, -1.0) < 0, atan2(0.0, -1.0) > 0").fetchone()
    except sqlite3.Error:
        return False
    return bool(row and row[0] and row[1])


def _real(q: str) -> str:
    """SQLite SQL, true for a REAL in column `q`; typeof() is called for numbers only."""
    return f"CASE WHEN +{q} < '' THEN typeof({q}) = 'real' END"


def pg_compare(c: ColumnMap, declared: str) -> sql.Composable:
    """PostgreSQL's compare text of column `c` (NULL stays NULL): its canonical text, but
    for the columns `sqlite_column` compares in an exact integer form, that form."""
    col = sql.Identifier(c.target)
    fam = c.pg_type.family
    if fam is Family.NUMERIC and affinity(declared) != "TEXT":
        scaled = _pg_scaled(_scale(c.pg_type))
        return sql.SQL(
            f"CASE WHEN {{0}} = trunc({{0}}) THEN trim_scale({{0}})::text ELSE {scaled} END"
        ).format(col)
    if fam is Family.FLOAT:
        # A zero prints as '0' or '-0'.
        return sql.SQL(_bits("{0}::float8", "{0}::float8::text", "!")).format(col)
    return pg_text(c)


def compares_canonical(c: ColumnMap, declared: str) -> bool:
    """Whether the compare text of column `c` is its canonical text."""
    fam = c.pg_type.family
    return not (fam is Family.FLOAT or (fam is Family.NUMERIC and affinity(declared) != "TEXT"))


def pg_text(c: ColumnMap) -> sql.Composable:
    """PostgreSQL's canonical text of column `c` (NULL stays NULL)."""
    return sql.SQL(_PG_TEXT.get(c.pg_type.family, "{}::text")).format(sql.Identifier(c.target))


def pg_ok(c: ColumnMap, per_row: bool = False) -> list[sql.Composable]:
    """Aggregates over a chunk (or with `per_row`, tests of one row's value), each true
    when the values are where PostgreSQL's text is canonical and transform can give them."""
    r = _PG_RANGE.get(c.pg_type.family)
    if r is None:
        return []
    col = sql.Identifier(c.target)
    lo, hi, typ = r
    low: sql.Composable = col if per_row else sql.SQL("min({})").format(col)
    high: sql.Composable = col if per_row else sql.SQL("max({})").format(col)
    out: list[sql.Composable] = []
    if lo is not None:
        out.append(
            sql.SQL("coalesce({} >= {}::{}, true)").format(low, sql.Literal(lo), sql.SQL(typ))
        )
    out.append(sql.SQL("coalesce({} < {}::{}, true)").format(high, sql.Literal(hi), sql.SQL(typ)))
    return out


def any_of(preds: list[str]) -> str:
    """SQL OR of many predicates as a balanced tree: SQLite limits expression depth to 1000."""
    if len(preds) == 1:
        return preds[0]
    mid = len(preds) // 2
    return f"({any_of(preds[:mid])} OR {any_of(preds[mid:])})"


def is_rendered(pg: PgType) -> bool:
    """Whether both sides render this type's text in SQL."""
    return pg.family in FAMILIES


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


# -- timestamps and times ------------------------------------------------------------------


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


# -- doubles, bit for bit ----------------------------------------------------------------

# Bands of binary exponents e (2**e <= |x| < 2**(e+10)), each with the K that makes
# x * 2**K whole and below 2**62: x's 53-bit significand ends at bit e - 52, so
# K = 52 - (the band's lowest e) does. From 2**-64 to 2**63; beyond, a marker.
_BANDS = [(e, 52 - e) for e in range(-64, 63, 10)]


def _bits(x: str, zero: str, marker: str) -> str:
    """SQL text M 'p' K of the double `x` (a SQL expression, evaluated more than once),
    with x = M * 2**-K exactly: equal texts are equal doubles. The same SQL serves SQLite
    and PostgreSQL: a product with a power of two (an integer literal, exact as a double)
    is exact, a whole double below 2**62 converts to an integer exactly. `zero` is the
    text of a zero, `marker` that of what no band holds (or NaN, infinities); NULL stays NULL."""
    a = f"abs({x})"

    def at_least(e: int) -> str:  # |x| >= 2**e, exactly
        if e >= 0:
            return f"{a} >= {2**e}"
        return f"{a} * 4294967296 * 4294967296 >= {2 ** (e + 64)}"

    def leaf(k: int) -> str:
        e, scale = _BANDS[k]
        factors: list[str] = []
        left = scale
        while left > 62:
            factors.append(str(2**62))
            left -= 62
        if left > 0:
            factors.append(str(2**left))
        product = f"{x} * {' * '.join(factors)}" if factors else f"{x} / {2**-left}"
        text = f"CAST(CAST({product} AS BIGINT) AS TEXT) || 'p{scale}'"
        return text if k else f"CASE WHEN {at_least(e)} THEN {text} ELSE '{marker}' END"

    def tree(lo: int, hi: int) -> str:
        if lo == hi:
            return leaf(lo)
        mid = (lo + hi + 1) // 2
        above, below = tree(mid, hi), tree(lo, mid - 1)
        return f"CASE WHEN {at_least(_BANDS[mid][0])} THEN {above} ELSE {below} END"

    return (
        f"CASE WHEN {x} IS NULL THEN NULL WHEN {x} = 0 THEN {zero} "
        f"WHEN NOT ({a} < {2**63}) THEN '{marker}' ELSE {tree(0, len(_BANDS) - 1)} END"
    )


# -- DECIMAL values SQLite stores as REAL ------------------------------------------------

# The largest R of `_scaled`: R * 10**-s has at most 15 significant digits; and the most
# decimals: 10**s is an INTEGER literal (below 2**63), which converts to a double exactly.
_MAX_R = 10**15 - 1
_MAX_SCALE = 17
# Without a scale, the 10**s that leaves 15 digits: s = 15 - k for |x| in [10**(k-1), 10**k).
_DECIMAL_BANDS = [(k, 15 - k) for k in range(-2, 16)]


def _scale(pg: PgType) -> int | None:
    s = pg.scale
    return s if s is not None and s <= _MAX_SCALE else None


def _scaled(q: str, scale: int | None) -> str:
    """SQLite SQL: the text R 'e-' s of a REAL `q` where R = round(q * 10**s) and R / 10**s,
    divided in IEEE arithmetic (correctly rounded), is `q` with |R| <= _MAX_R; else '?'.

    Why this is exact: the check says `q` is the double nearest to Q = R / 10**s, a decimal
    of at most 15 significant digits. Such a decimal is the only one of that length that
    rounds to its double (15 digits survive a round trip through a double), so Q is the
    shortest decimal that reads back as `q`: Python's repr(q), whose Decimal is what
    transform gives. PostgreSQL prints R 'e-' s of a value with decimals (`_pg_scaled`),
    so equal texts are equal values. None of SQLite's own float printing, which is not
    exact, is used: only products, a rounding and a division whose result is checked."""

    def at(s: int) -> str:
        p = 10**s
        r = f"CAST(round({q} * {p}) AS INTEGER)"
        exact = f"{r} BETWEEN -{_MAX_R} AND {_MAX_R} AND CAST({r} AS REAL) / {p} = {q}"
        return f"CASE WHEN {exact} THEN {r} || 'e-{s}' ELSE '?' END"

    if scale is not None:
        return at(scale)
    return _decimal_ladder(f"abs({q})", at, "'?'")


def _pg_scaled(scale: int | None) -> str:
    """PostgreSQL SQL (a format string of the column {0}) for R 'e-' s of a numeric with
    decimals, s chosen as SQLite's `_scaled` chooses it; not a whole R when it has more."""

    def at(s: int) -> str:
        return f"trim_scale({{0}} * {10**s})::text || 'e-{s}'"

    if scale is not None:
        return at(scale)
    return _decimal_ladder("abs({0})", at, "'!'")


def _decimal_ladder(a: str, at: object, beyond: str) -> str:
    """SQL choosing by `a` (>= 0) the band [10**(k-1), 10**k) and giving `at(s)` for it, as
    a binary tree of comparisons; `beyond` below 0.001 and from 10**15 on. The choice of
    band only decides how often a value is proven, not what the proof says."""
    assert callable(at)
    bands = _DECIMAL_BANDS

    def tree(lo: int, hi: int) -> str:
        if lo == hi:
            k, s = bands[lo]
            return at(s) if lo else f"CASE WHEN {a} >= 0.001 THEN {at(s)} ELSE {beyond} END"
        mid = (lo + hi + 1) // 2
        k = bands[mid][0]
        least = str(10 ** (k - 1)) if k >= 1 else f"0.{'0' * -k}1"
        above, below = tree(mid, hi), tree(lo, mid - 1)
        return f"CASE WHEN {a} >= {least} THEN {above} ELSE {below} END"

    return f"CASE WHEN {a} >= {10**15} THEN {beyond} ELSE {tree(0, len(bands) - 1)} END"
