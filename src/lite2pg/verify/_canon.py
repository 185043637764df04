"""Canonical values: how PostgreSQL renders each column in SQL and how a converted source
value becomes the same Python value; row encoding, digests and short displays."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from psycopg import sql

from lite2pg import native
from lite2pg.artifacts import file_sha256
from lite2pg.coerce import Family, PgType
from lite2pg.schema import ColumnMap

Row = tuple[Any, ...]
REDACTED = "<redacted>"

_TEXTUAL = (
    Family.TEXT,
    Family.ENUM,
    Family.OTHER,
    Family.JSONB,
    Family.JSON,
    Family.UUID,
    Family.INTERVAL,
    Family.INET,
    Family.TIMESTAMPTZ,
    Family.TIMESTAMP,
    Family.DATE,
    Family.TIME,
)

_TIME = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]"
# SQLite SQL, true for text in column {c} that does NOT have the shape PostgreSQL prints
# for values of the family that transform can give: PostgreSQL also prints 'NaN',
# 'infinity', BC dates and five-digit years, which transform rejects, so source text that
# reads the same must not be taken as equal without the pipeline.
_NOT_TIME = (
    f"NOT ({{c}} GLOB '{_TIME}' OR ({{c}} GLOB '{_TIME}.[0-9]*' "
    "AND substr({c}, 21) NOT GLOB '*[^0-9]*'))"
)
_SHAPE = {
    Family.NUMERIC: "{c} GLOB '*[^0-9.-]*'",
    Family.TIMESTAMPTZ: _NOT_TIME,
    Family.TIMESTAMP: _NOT_TIME,
    Family.DATE: "NOT {c} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'",
    # PostgreSQL's time also prints '24:00:00'.
    Family.TIME: "NOT ({c} GLOB '[01][0-9]:*' OR {c} GLOB '2[0-3]:*')",
}

# PostgreSQL side: each column rendered as the canonical Python value (see the module doc).
# An interval's three fields exactly, as `native.Interval.canonical` prints them (extract
# gives numeric from PostgreSQL 14 on; the time splits into hours, minutes, microseconds).
INTERVAL_CANON = (
    "((extract(year from {0}) * 12 + extract(month from {0}))::int8::text || ' mons ' || "
    "extract(day from {0})::int8::text || ' days ' || (extract(hour from {0}) * 3600000000 "
    "+ extract(minute from {0}) * 60000000 + extract(microseconds from {0}))::int8::text "
    "|| ' microseconds')"
)

_PG_CANON = {
    Family.INTEGER: "{}::int8",
    Family.BOOLEAN: "{}::int::int8",
    Family.FLOAT: "{}::float8",
    Family.NUMERIC: "trim_scale({})::text",
    Family.MONEY: "trim_scale({}::numeric)::text",  # money prints in the locale's format
    Family.BYTEA: "{}",
    Family.TIMESTAMPTZ: "({} AT TIME ZONE 'UTC')::text",
    # jsonb::text is canonical (keys ordered, one spacing, numbers as numeric prints them);
    # json, inet and cidr (::text always shows the prefix) are their text.
    Family.UUID: "replace({}::text, '-', '')",
    Family.INTERVAL: INTERVAL_CANON,
}


def _pg_canon(c: ColumnMap, alias: str | None = None) -> sql.Composable:
    col: sql.Composable = sql.Identifier(c.target)
    if alias:
        col = sql.SQL("{}.{}").format(sql.Identifier(alias), col)
    return sql.SQL(_PG_CANON.get(c.pg_type.family, "{}::text")).format(col)


def _is_padded(pg: PgType) -> bool:
    s = pg.sql.lower()
    return s.startswith(("char", "character", "bpchar")) and not s.startswith(
        ("character varying", "varchar")
    )


def numeric_text(value: Any) -> str:
    """A number as PostgreSQL's `trim_scale(x)::text` prints it: no exponent, no trailing
    zeros after the point, "0" for any zero."""
    d = (
        value
        if isinstance(value, Decimal)
        else Decimal(repr(value) if isinstance(value, float) else str(value))
    )
    if d == 0:
        return "0"
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def timestamp_text(value: Any) -> str:
    """A timestamp as PostgreSQL prints `(ts AT TIME ZONE 'UTC')::text`: UTC wall time,
    microseconds with trailing zeros trimmed (none when zero). Naive values are UTC."""
    d = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    if d.tzinfo is not None:
        d = d.astimezone(dt.UTC).replace(tzinfo=None)
    text = f"{d.year:04d}-{d.month:02d}-{d.day:02d} {d.hour:02d}:{d.minute:02d}:{d.second:02d}"
    if d.microsecond:
        text += f".{d.microsecond:06d}".rstrip("0")
    return text


def _canon_fn(pg: PgType) -> Callable[[Any], Any]:
    """Converted value (what the run's converters hand to COPY) -> canonical value."""
    fam = pg.family
    padded = _is_padded(pg)
    cidr = pg.sql == "cidr"

    def canon(v: Any) -> Any:
        if v is None:
            return None
        if fam is Family.INTEGER:
            return int(v)
        if fam is Family.BOOLEAN:
            return int(bool(v))
        if fam is Family.FLOAT:
            return float(v)
        if fam in (Family.NUMERIC, Family.MONEY):
            return numeric_text(v)
        if fam is Family.BYTEA:
            return bytes(v) if isinstance(v, bytes) else str(v).encode("utf-8")
        if fam in (Family.TIMESTAMPTZ, Family.TIMESTAMP):
            return timestamp_text(v)
        if fam is Family.JSONB:
            return native.jsonb_text(native.parse_json(str(v), binary=True))
        if fam is Family.UUID:
            return native.parse_uuid(v).hex
        if fam is Family.INTERVAL:
            return native.parse_interval(v).canonical()
        if fam is Family.INET:
            return native.inet_text(native.parse_inet(v, cidr=cidr))
        if fam is Family.DATE:
            if isinstance(v, dt.datetime):
                return v.date().isoformat()
            if isinstance(v, dt.date):
                return v.isoformat()
            return dt.date.fromisoformat(str(v)[:10]).isoformat()
        text = v if isinstance(v, str) else str(v)
        return text.rstrip(" ") if padded else text

    return canon


def _sqlite_literal(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("9e999" if v > 0 else "-9e999")
    if isinstance(v, bytes):
        return f"X'{v.hex()}'"
    return "'" + str(v).replace("'", "''") + "'"


def _show(value: Any, secret: bool = False, limit: int = 60) -> str:
    """A short display of a canonical or raw value for reports; never a secret."""
    if value is None:
        return "NULL"
    if secret:
        return REDACTED
    if isinstance(value, bytes):
        head = value[:24].hex()
        return f"\\x{head}{'...' if len(value) > 24 else ''} ({len(value)} bytes)"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= limit else text[: limit - 4] + "...'"
    return str(value)


# The canonical text of a column, which the per-table digests hash (lite2pg-v2) and which
# the fast path has SQLite and PostgreSQL render in SQL: each value's text followed by US.
# An integer is its decimal digits, a boolean 0/1, a float Python's repr, bytea upper-case
# hex, text itself with ESC put before each of ESC, GS, RS and US (so the encoding is
# injective), other types their canonical text (see the module doc). NULL is GS in the
# columns where the empty string is a value (text, enums, other types, bytea), else empty.
US, RS, GS, ESC = "\x1f", "\x1e", "\x1d", "\x1b"
_CONTROL = re.compile("[\x1b\x1d\x1e\x1f]")
_GS_FAMILIES = (Family.TEXT, Family.ENUM, Family.OTHER, Family.BYTEA)


def null_marker(pg: PgType) -> str:
    """How NULL reads in the canonical text of a column of this type."""
    return GS if pg.family in _GS_FAMILIES else ""


def _text(v: Any, null: str) -> str:
    if v is None:
        return null
    if isinstance(v, str):
        return _CONTROL.sub(lambda m: ESC + m.group(), v) if _CONTROL.search(v) else v
    if isinstance(v, bytes):
        return v.hex().upper()
    if isinstance(v, float):
        return repr(v)
    return str(v)


class _Digests:
    """SHA-256 of each side's canonical rows: one hash per column over the column's
    canonical text in key order (so chunks may be rendered column by column), combined as
    SHA-256 of the column digests in column order. Shared while both sides are equal."""

    def __init__(self, nulls: Sequence[str]) -> None:
        self.nulls = list(nulls)
        self.shared: list[Any] | None = [hashlib.sha256() for _ in self.nulls]
        self.src: list[Any] = []
        self.pg: list[Any] = []

    def _update(self, hashes: list[Any], rows: Sequence[Row]) -> None:
        for j, null in enumerate(self.nulls):
            text = "".join([_text(row[1 + j], null) + US for row in rows])
            hashes[j].update(text.encode("utf-8", "surrogatepass"))

    def both_text(self, j: int, data: bytes) -> None:
        """Column j's canonical text of some rows (the fast path), equal on both sides."""
        for hashes in (self.shared,) if self.shared is not None else (self.src, self.pg):
            hashes[j].update(data)

    def both(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        if self.shared is not None:
            self._update(self.shared, rows)
        else:
            self._update(self.src, rows)
            self._update(self.pg, rows)

    def apart(self, src_rows: Sequence[Row], pg_rows: Sequence[Row]) -> None:
        if self.shared is not None:
            self.src, self.pg = [h.copy() for h in self.shared], self.shared
            self.shared = None
        if src_rows:
            self._update(self.src, src_rows)
        if pg_rows:
            self._update(self.pg, pg_rows)

    def result(self) -> tuple[bytes, bytes]:
        def combine(hashes: list[Any]) -> bytes:
            return hashlib.sha256(b"".join(h.digest() for h in hashes)).digest()

        if self.shared is not None:
            d = combine(self.shared)
            return d, d
        return combine(self.src), combine(self.pg)


# PostgreSQL prints some whole doubles from 2**54 on with 17 digits where fewer read back
# as the same double (2.6623065601343488e+16, Python's 2.662306560134349e+16): exact, but
# not the shortest text, which is what the canonical text of a double is.
_LONG_DOUBLE = re.compile(rb"-?[0-9]\.[0-9]{16}e\+[0-9]+")


def shortest_doubles(text: bytes) -> bytes:
    """PostgreSQL's canonical text of a float column (values joined by US) with each double
    as Python's repr prints it; a regular-expression scan, Python only for those found."""
    if b"e+" not in text:
        return text
    return _LONG_DOUBLE.sub(lambda m: repr(float(m.group())).encode(), text)


def row_text(row: Row, nulls: Sequence[str]) -> bytes:
    """A canonical row (its flag first; after its columns, the orphan flags verify adds) as
    one text: each column's canonical text followed by US, as the column digests hash them.
    A table without a key has the sum of its rows' `row_hash` as digest (lite2pg-v2)."""
    columns = row[1 : 1 + len(nulls)]
    text = "".join([_text(v, null) + US for v, null in zip(columns, nulls, strict=True)])
    return text.encode("utf-8", "surrogatepass")


def row_hash(text: bytes) -> int:
    """SHA-256 of a row's text as an integer: an unordered table's digest is their sum
    mod 2**256, the same whatever the order of the rows."""
    return int.from_bytes(hashlib.sha256(text).digest(), "big")


def snapshot_sha256(path: Path) -> str:
    """SHA-256 (hex) of the run's snapshot."""
    return file_sha256(path)


def _sort_key(values: Sequence[Any], numeric: Sequence[bool]) -> tuple[Any, ...]:
    out: list[tuple[Any, ...]] = []
    for v, num in zip(values, numeric, strict=True):
        if v is None:
            out.append((0,))
        elif num:
            try:
                out.append((1, Decimal(str(v))))
            except InvalidOperation:
                out.append((1, v))
        else:
            out.append((1, v))
    return tuple(out)


def _cmp(a: tuple[Any, ...], b: tuple[Any, ...]) -> int:
    if a < b:
        return -1
    if a > b:
        return 1
    return 0
