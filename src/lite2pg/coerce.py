"""Coerce SQLite's loosely typed values into PostgreSQL types, or reject them with a reason.

Each target type gets two things:
- a SQLite SQL predicate that is true when a stored value can go to PostgreSQL exactly as
  SQLite hands it over (evaluated in C inside SQLite, so the common case costs no Python);
- a Python converter for every other value: it returns the exact PostgreSQL value or raises
  `TransformError` with the reason. Nothing is rounded, truncated or reinterpreted silently.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from enum import Enum
from typing import Any

from lite2pg import native
from lite2pg.errors import TransformError
from lite2pg.isotime import NOT_ISO, NotIsoTime, parse_iso_datetime
from lite2pg.reasons import Category, for_value

Converter = Callable[[Any], Any]


class Family(Enum):
    """How a PostgreSQL type takes values."""

    INTEGER = "integer"
    FLOAT = "float"
    NUMERIC = "numeric"
    TEXT = "text"
    BYTEA = "bytea"
    BOOLEAN = "boolean"
    TIMESTAMPTZ = "timestamptz"
    TIMESTAMP = "timestamp"
    DATE = "date"
    TIME = "time"  # time of day without a zone
    MONEY = "money"  # scale: the currency's decimals (lc_monetary of the target)
    ENUM = "enum"
    JSONB = "jsonb"
    JSON = "json"
    UUID = "uuid"
    INTERVAL = "interval"
    INET = "inet"  # inet and cidr
    OTHER = "other"  # left to PostgreSQL to parse; failures are caught per row by the loader


INT_RANGES = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}


@dataclass(frozen=True)
class PgType:
    """A PostgreSQL column type as lite2pg needs to know it."""

    sql: str  # as written in DDL, e.g. "numeric(10,2)"
    family: Family
    precision: int | None = None  # numeric digits; fraction digits of timestamp(p)/time(p)
    scale: int | None = None
    max_length: int | None = None  # varchar(n) / char(n)
    int_range: tuple[int, int] | None = None
    labels: tuple[str, ...] = field(default=())  # enum labels

    def __str__(self) -> str:
        return self.sql


BIGINT = PgType("bigint", Family.INTEGER, int_range=INT_RANGES["bigint"])
DOUBLE = PgType("double precision", Family.FLOAT)
NUMERIC = PgType("numeric", Family.NUMERIC)
TEXT = PgType("text", Family.TEXT)
BYTEA = PgType("bytea", Family.BYTEA)
BOOLEAN = PgType("boolean", Family.BOOLEAN)
TIMESTAMPTZ = PgType("timestamptz", Family.TIMESTAMPTZ)
TIMESTAMP = PgType("timestamp", Family.TIMESTAMP)
DATE = PgType("date", Family.DATE)
JSONB = PgType("jsonb", Family.JSONB)
JSON = PgType("json", Family.JSON)
UUID = PgType("uuid", Family.UUID)
INTERVAL = PgType("interval", Family.INTERVAL)
INET = PgType("inet", Family.INET)
CIDR = PgType("cidr", Family.INET)
_NATIVE = {t.sql: t for t in (JSONB, JSON, UUID, INTERVAL, INET, CIDR)}
# The citext extension's case-insensitive text: what SQLite's COLLATE NOCASE becomes.
CITEXT = PgType("citext", Family.TEXT)

_NUMERIC_RE = re.compile(r"^(?:numeric|decimal)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?$", re.I)
_INTERVAL_RE = re.compile(r"^interval\s*\(\s*(\d)\s*\)$")
_TIMESTAMP_RE = re.compile(
    r"^(timestamptz|timestamp)\s*(?:\(\s*(\d)\s*\))?\s*(with time zone|without time zone)?$"
)
_TIME_RE = re.compile(r"^time\s*(?:\(\s*(\d)\s*\))?\s*(without time zone)?$")
# Money's decimals when the target's lc_monetary is not known (C and most locales: 2).
MONEY_SCALE = 2
_VARCHAR_RE = re.compile(
    r"^(?:character varying|varchar|character|char|bpchar)\s*(?:\(\s*(\d+)\s*\))?$", re.I
)


def parse_pg_type(sql: str, enum_labels: tuple[str, ...] | None = None) -> PgType:
    """Turn a PostgreSQL type name (as `format_type` or a user writes it) into a PgType."""
    s = " ".join(sql.strip().lower().split())
    if enum_labels is not None:
        return PgType(sql, Family.ENUM, labels=enum_labels)
    aliases = {
        "int8": "bigint", "int": "integer", "int4": "integer", "int2": "smallint",
        "float8": "double precision", "float": "double precision", "real": "real",
        "float4": "real", "bool": "boolean", "timestamp with time zone": "timestamptz",
        "timestamp without time zone": "timestamp", "bytea": "bytea",
    }  # fmt: skip
    s = aliases.get(s, s)
    if s in INT_RANGES:
        return PgType(s, Family.INTEGER, int_range=INT_RANGES[s])
    if s in ("double precision", "real"):
        return PgType(s, Family.FLOAT)
    if s == "text":
        return TEXT
    if s == "citext" or s.endswith(".citext"):  # format_type qualifies it off the path
        return PgType(sql.strip(), Family.TEXT)
    if s == "bytea":
        return BYTEA
    if s == "boolean":
        return BOOLEAN
    if s == "timestamptz":
        return TIMESTAMPTZ
    if s == "timestamp":
        return TIMESTAMP
    if s == "date":
        return DATE
    if s in _NATIVE:
        return _NATIVE[s]
    m = _INTERVAL_RE.match(s)
    if m and int(m.group(1)) <= 6:
        # interval(p) rounds to p fractional digits: values finer than that are refused.
        return PgType(f"interval({m.group(1)})", Family.INTERVAL, precision=int(m.group(1)))
    if s == "money":
        return PgType("money", Family.MONEY, scale=MONEY_SCALE)
    m = _TIMESTAMP_RE.match(s)
    if m:
        aware = m.group(1) == "timestamptz" or m.group(3) == "with time zone"
        if m.group(1) == "timestamptz" and m.group(3):
            return PgType(sql, Family.OTHER)  # "timestamptz with time zone" is no type
        p = int(m.group(2)) if m.group(2) else None
        name = "timestamptz" if aware else "timestamp"
        text = name if p is None else f"{name}({p})"
        return PgType(text, Family.TIMESTAMPTZ if aware else Family.TIMESTAMP, precision=p)
    m = _TIME_RE.match(s)
    if m:
        p = int(m.group(1)) if m.group(1) else None
        return PgType("time" if p is None else f"time({p})", Family.TIME, precision=p)
    m = _NUMERIC_RE.match(s)
    if m:
        p = int(m.group(1)) if m.group(1) else None
        sc = int(m.group(2)) if m.group(2) else (0 if p is not None else None)
        text = "numeric" if p is None else f"numeric({p},{sc})"
        return PgType(text, Family.NUMERIC, precision=p, scale=sc)
    m = _VARCHAR_RE.match(s)
    if m:
        n = int(m.group(1)) if m.group(1) else None
        if s.startswith(("character varying", "varchar")):
            return PgType(s, Family.TEXT, max_length=n)
        # char(n) pads with blanks, which changes values: treat as text with a length limit.
        return PgType(s, Family.TEXT, max_length=n or 1)
    return PgType(sql, Family.OTHER)


def _render(value: Any) -> str:
    """A short, safe rendering of a value for a reject reason."""
    if type(value).__name__ == "InvalidText":
        raw = bytes(value)
        more = "..." if len(raw) > 24 else ""
        return f"text that is not valid UTF-8 ({raw[:24]!r}{more})"
    if isinstance(value, bytes):
        head = value[:16].hex()
        return f"blob x'{head}{'...' if len(value) > 16 else ''}' ({len(value)} bytes)"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:40] + "..."
        return f"text {shown!r}"
    if isinstance(value, float):
        return f"real {value!r}"
    return f"{type(value).__name__} {value!r}"


def _storage(value: Any) -> str:
    if isinstance(value, bytes):
        return "blob"
    if isinstance(value, str):
        return "text"
    if isinstance(value, float):
        return "real"
    if isinstance(value, int):
        return "integer"
    return type(value).__name__


# How psycopg formats each family for COPY (`Copy.set_types`). These dumpers refuse a Python
# value of the wrong type (a str for int8, bytes for text, a float for numeric), so a value
# SQLite stored with another storage class can never slip through as some other value: the
# load fails, and the loader replays the table through the Python converters.
DUMP_TYPES: dict[Family, str] = {
    Family.INTEGER: "int8",
    Family.FLOAT: "float8",
    Family.NUMERIC: "numeric",
    Family.TEXT: "text",
    Family.BYTEA: "bytea",
    Family.BOOLEAN: "int8",  # 0/1 and Python bools; PostgreSQL's boolean reads '0'/'1'
    Family.TIMESTAMPTZ: "text",  # converters hand over ISO-8601 text
    Family.TIMESTAMP: "text",
    Family.DATE: "text",
    Family.TIME: "text",
    Family.MONEY: "numeric",  # COPY's text format: PostgreSQL reads '12.34' as money
    Family.ENUM: "text",
    Family.JSONB: "text",  # converters hand over text that PostgreSQL reads exactly
    Family.JSON: "text",
    Family.UUID: "text",
    Family.INTERVAL: "text",
    Family.INET: "text",
    Family.OTHER: "text",
}

ALWAYS = "1"
NEVER = "0"


def ok_predicate(pg: PgType, column_sql: str) -> str:
    """SQLite SQL that is true when the value in `column_sql` can go as SQLite hands it over.

    `ALWAYS` where the typed dumper and PostgreSQL's parser together refuse anything that is
    not exact (integers, text, bytea, enums: a refusal triggers the careful replay); `NEVER`
    where every value needs Python. Other families are checked here because a stored value
    of the wrong class is common for them, or would be accepted as some other value
    (an integer in a float8 column, loose date text).
    """
    c = column_sql
    fam = pg.family
    if fam in (Family.INTEGER, Family.BYTEA, Family.ENUM):
        return ALWAYS
    if fam is Family.FLOAT:
        if pg.sql == "real":
            return NEVER  # float4 rounds doubles: check each value in Python
        return f"typeof({c}) IN ('real','null')"
    if fam is Family.NUMERIC:
        return f"typeof({c}) IN ('integer','null')"
    if fam is Family.TEXT:
        if is_padded(pg):
            # char(n) strips trailing blanks on output: only values without them are exact.
            return f"({c} IS NULL OR {c} NOT LIKE '% ')"
        return ALWAYS
    if fam is Family.MONEY:
        # Whole numbers fit money's cents exactly within its int64 range; the rest: Python.
        lo, hi = _money_limits(pg.scale)
        return f"({c} IS NULL OR (typeof({c})='integer' AND {c} BETWEEN {lo} AND {hi}))"
    if fam is Family.TIME:
        return (
            f"({c} IS NULL OR (typeof({c})='text' AND ({c} GLOB '[01][0-9]:[0-5][0-9]:[0-5][0-9]'"
            f" OR {c} GLOB '2[0-3]:[0-5][0-9]:[0-5][0-9]')))"
        )
    if fam is Family.BOOLEAN:
        return f"typeof({c}) IN ('integer','null')"
    if fam in (Family.TIMESTAMPTZ, Family.TIMESTAMP):
        # Text shaped like 'YYYY-MM-DD HH:MM:SS' goes to PostgreSQL's own strict parser,
        # which refuses impossible dates ('2021-02-30'): the row is then replayed through
        # Python and rejected with the reason. Other ISO forms and numbers go to Python.
        # The GLOB keeps out other 19-character texts PostgreSQL reads its own way
        # ('2021-01-01 10:00 PM', '2021-01-01 10:00+05' in a timestamp column).
        return (
            f"({c} IS NULL OR (typeof({c})='text' AND length({c})=19 "
            f"AND {c} GLOB '{_STAMP_GLOB}' "
            f"AND {c} BETWEEN '0001-01-01 00:00:00' AND '9999-12-31 23:59:59'))"
        )
    if fam is Family.DATE:
        return (
            f"({c} IS NULL OR (typeof({c})='text' AND length({c})=10 "
            f"AND {c} BETWEEN '0001-01-01' AND '9999-12-31'))"
        )
    if fam in (Family.JSONB, Family.JSON) and native.SQLITE_HAS_JSON:
        # Text SQLite's json_valid() takes is RFC 8259 JSON, which json reads as it is.
        # jsonb also decodes escapes (\u0000 and lone surrogates it refuses) and holds
        # numbers as numeric (whose range it may exceed): a refusal replays the table.
        valid = f"typeof({c})='text' AND json_valid({c})"
        if fam is Family.JSONB:
            valid += f" AND NOT {native.jsonb_suspect_sql(c)}"
        return f"({c} IS NULL OR ({valid}))"
    if fam is Family.UUID:
        # The forms uuid_in reads as parse_uuid does; blobs go to Python.
        return f"({c} IS NULL OR {native.uuid_text_sql(c)})"
    return NEVER


_DIGIT = "[0-9]"
_STAMP_GLOB = "-".join([_DIGIT * 4, _DIGIT * 2, _DIGIT * 2]) + "[ T]" + ":".join([_DIGIT * 2] * 3)

_TRUE = {"1", "t", "true", "y", "yes", "on"}
_FALSE = {"0", "f", "false", "n", "no", "off"}

# How a value that needs rounding is told to the user: the plan option that allows it.
ROUND_HINT = "set round = true for the column in a plan to round it"


def converter(pg: PgType, *, secret: bool = False, rounding: bool = False) -> Converter:
    """The Python converter for values that the fast predicate did not pass.

    `rounding` (the plan's `round = true`): a value with more decimals or fraction digits
    than the column keeps is rounded half away from zero, as PostgreSQL would, instead of
    being rejected."""
    fam = pg.family
    conv: Converter
    if fam is Family.INTEGER:
        conv = _to_int(pg.int_range or INT_RANGES["bigint"], pg.sql)
    elif fam is Family.FLOAT:
        conv = _to_float(single=pg.sql == "real")
    elif fam is Family.NUMERIC:
        conv = _to_numeric(pg, rounding)
    elif fam is Family.MONEY:
        conv = _to_money(pg, rounding)
    elif fam is Family.TEXT:
        conv = _to_text(pg)
    elif fam is Family.BYTEA:
        conv = _to_bytes
    elif fam is Family.BOOLEAN:
        conv = _to_bool
    elif fam in (Family.TIMESTAMPTZ, Family.TIMESTAMP):
        conv = _to_timestamp(pg, rounding)
    elif fam is Family.DATE:
        conv = _to_date
    elif fam is Family.TIME:
        conv = _to_time(pg, rounding)
    elif fam is Family.ENUM:
        conv = _to_enum(pg.labels)
    elif fam in (Family.JSONB, Family.JSON):
        conv = _to_json(pg)
    elif fam is Family.UUID:
        conv = _to_uuid
    elif fam is Family.INTERVAL:
        conv = _to_interval(pg)
    elif fam is Family.INET:
        conv = _to_inet(pg)
    else:
        conv = _to_other
    if not secret:
        return conv

    def redacted(value: Any) -> Any:
        try:
            return conv(value)
        except TransformError as e:
            raise TransformError(
                f"secret {_storage(value)} value does not fit {pg}", e.category
            ) from None

    return redacted


def _reject(
    value: Any, pg: str, why: str = "", category: Category = Category.WRONG_STORAGE
) -> TransformError:
    return TransformError(
        f"{_render(value)} does not fit {pg}" + (f": {why}" if why else ""),
        for_value(value, category),
    )


def _to_int(rng: tuple[int, int], name: str) -> Converter:
    lo, hi = rng

    def conv(v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, bool):
            return int(v)
        if isinstance(v, int):
            if lo <= v <= hi:
                return v
            raise _reject(v, name, "out of range", Category.OUT_OF_RANGE)
        if isinstance(v, float):
            if math.isfinite(v) and v.is_integer() and lo <= v <= hi:
                return int(v)
            if not math.isfinite(v):
                raise _reject(v, name, "not finite", Category.NOT_A_NUMBER)
            if v.is_integer():
                raise _reject(v, name, "out of range", Category.OUT_OF_RANGE)
            raise _reject(v, name, "not a whole number", Category.NOT_WHOLE)
        if isinstance(v, Decimal):
            if v == v.to_integral_value() and lo <= v <= hi:
                return int(v)
            raise _reject(v, name, category=Category.NOT_WHOLE)
        raise _reject(v, name, category=_number_category(v))

    return conv


def _number_category(v: Any) -> Category:
    """Text in a number column is not a number; a blob is of the wrong storage class."""
    return Category.NOT_A_NUMBER if isinstance(v, str) else Category.WRONG_STORAGE


def _to_float(single: bool) -> Converter:
    name = "real" if single else "double precision"

    def conv(v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, float):
            f = v
        elif isinstance(v, int) and not isinstance(v, bool):
            f = float(v)
            if int(f) != v:
                raise _reject(v, name, "would lose precision", Category.NEEDS_ROUNDING)
        else:
            raise _reject(v, name, category=_number_category(v))
        if single and math.isfinite(f):
            import struct

            if struct.unpack("f", struct.pack("f", f))[0] != f:
                raise _reject(
                    v, name, "would be rounded to single precision", Category.NEEDS_ROUNDING
                )
        return f

    return conv


def _exact_decimal(v: Any, name: str) -> Decimal:
    """A number as the exact decimal it stands for; text only when it is a plain literal."""
    if isinstance(v, bool) or not isinstance(v, int | float | Decimal):
        if isinstance(v, str):
            # Only plain ASCII decimals: Decimal() also takes '1_000' and other digits.
            if not _DECIMAL_TEXT.fullmatch(v):
                raise _reject(v, name, category=Category.NOT_A_NUMBER)
            try:
                d = Decimal(v)
            except InvalidOperation:
                raise _reject(v, name, category=Category.NOT_A_NUMBER) from None
            # Text that SQLite's NUMERIC affinity did not convert is kept as written
            # only when it is an exact decimal literal.
            if not d.is_finite() or v.strip() != v:
                raise _reject(v, name, category=Category.NOT_A_NUMBER)
            return d
        raise _reject(v, name)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise _reject(v, name, "not finite", Category.NOT_A_NUMBER)
        # The shortest decimal that reads back as the same double: 0.99, not 0.98999...
        return Decimal(repr(v))
    return Decimal(v)


# Enough working precision that quantize never fails for values PostgreSQL accepts.
_CONTEXT = Context(prec=131072 + 2000, rounding=ROUND_HALF_UP)


def _fit_scale(v: Any, d: Decimal, name: str, scale: int, rounding: bool) -> Decimal:
    """`d` with at most `scale` decimals; rounded half away from zero (as PostgreSQL does)
    only when the plan says so, else rejected."""
    exp = d.as_tuple().exponent
    assert isinstance(exp, int)
    if -exp <= scale:
        return d
    rounded = d.quantize(Decimal(1).scaleb(-scale), context=_CONTEXT)
    if rounded == d:
        return d
    if not rounding:
        raise _reject(
            v,
            name,
            f"would be rounded to {scale} decimal places; {ROUND_HINT}",
            Category.NEEDS_ROUNDING,
        )
    return rounded


def _to_numeric(pg: PgType, rounding: bool) -> Converter:
    def conv(v: Any) -> Any:
        if v is None:
            return None
        d = _exact_decimal(v, pg.sql)
        if pg.precision is not None:
            scale = pg.scale or 0
            d = _fit_scale(v, d, pg.sql, scale, rounding)
            if d and d.adjusted() >= pg.precision - scale:
                raise _reject(v, pg.sql, "too many digits", Category.TOO_MANY_DIGITS)
        return d

    return conv


def _money_limits(scale: int | None) -> tuple[int, int]:
    """The whole numbers money holds: it stores an int64 count of the currency's cents."""
    unit = 10 ** (MONEY_SCALE if scale is None else scale)
    return -(2**63) // unit + 1, (2**63 - 1) // unit


def _to_money(pg: PgType, rounding: bool) -> Converter:
    scale = MONEY_SCALE if pg.scale is None else pg.scale
    quantum = Decimal(1).scaleb(-scale)

    def conv(v: Any) -> Any:
        if v is None:
            return None
        d = _fit_scale(v, _exact_decimal(v, "money"), "money", scale, rounding)
        if not -(2**63) <= d.scaleb(scale) <= 2**63 - 1:
            raise _reject(v, "money", "out of range", Category.OUT_OF_RANGE)
        # Plain digits with the currency's decimals: money's input reads no exponent.
        return d.quantize(quantum, context=_CONTEXT)

    return conv


def is_padded(pg: PgType) -> bool:
    """char(n): PostgreSQL pads the value with blanks and strips them again on output."""
    s = pg.sql.lower()
    return (
        pg.family is Family.TEXT
        and pg.max_length is not None
        and s.startswith(("char", "character", "bpchar"))
        and not s.startswith(("character varying", "varchar"))
    )


def _to_text(pg: PgType) -> Converter:
    padded = is_padded(pg)

    def conv(v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, str):
            s = v
        elif isinstance(v, bytes):
            try:
                s = bytes(v).decode("utf-8")
            except UnicodeDecodeError:
                raise _reject(v, pg.sql, "not valid UTF-8", Category.BAD_TEXT) from None
        elif isinstance(v, bool):
            raise _reject(v, pg.sql)
        elif isinstance(v, int):
            s = str(v)
        elif isinstance(v, float):
            s = repr(v)
        else:
            raise _reject(v, pg.sql)
        if "\x00" in s:
            raise _reject(
                v,
                pg.sql,
                "contains a NUL character, which PostgreSQL text cannot hold",
                Category.BAD_TEXT,
            )
        if _has_surrogate(s):
            raise _reject(
                v, pg.sql, "contains a lone surrogate, which is not valid UTF-8", Category.BAD_TEXT
            )
        if pg.max_length is not None and len(s) > pg.max_length:
            raise _reject(v, pg.sql, f"longer than {pg.max_length} characters", Category.TOO_LONG)
        if padded and s.endswith(" "):
            raise _reject(
                v,
                pg.sql,
                "ends in blanks, which char(n) strips (a strip transform removes them)",
                Category.TRAILING_BLANKS,
            )
        return s

    return conv


def _has_surrogate(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _to_bytes(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, bytes):
        return bytes(v)
    if isinstance(v, str):
        try:
            return v.encode("utf-8")
        except UnicodeEncodeError:
            raise _reject(v, "bytea", "not valid UTF-8", Category.BAD_TEXT) from None
    raise _reject(v, "bytea")


def _to_bool(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, float) and v in (0.0, 1.0):
        return bool(v)
    if isinstance(v, str):
        s = v.strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
    raise _reject(v, "boolean", category=Category.NOT_A_BOOLEAN)


_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _read_iso(v: str, name: str, rounding: bool, *, carries: bool = True) -> dt.datetime:
    """Text -> datetime by isotime's reader, or the row's rejection saying why."""
    plain = "not an ISO-8601 date" if name == "date" else "not an ISO-8601 date/time"
    try:
        return parse_iso_datetime(v, rounding=rounding, carries=carries)
    except NotIsoTime as e:
        if _DECIMAL_TEXT.fullmatch(v):
            raise _reject(v, name, _EPOCH_HINT, Category.EPOCH_AMBIGUOUS) from None
        if e.too_precise and name == "date":
            raise _reject(v, name, Category.TIME_OF_DAY.value, Category.TIME_OF_DAY) from None
        if e.too_precise:
            raise _reject(v, name, f"{e.why}; {ROUND_HINT}", Category.TOO_PRECISE) from None
        why = plain if e.why == NOT_ISO else f"{plain}: {e.why}"
        raise _reject(v, name, why, Category.NOT_A_DATE) from None
    except OverflowError:
        raise _reject(
            v, name, "outside the years 1 to 9999 in UTC", Category.OUT_OF_RANGE
        ) from None


def _fraction(v: Any, micros: int, pg: PgType, rounding: bool, *, before_2000: bool = False) -> int:
    """How many microseconds to add so that `micros` has at most the column's fraction
    digits: 0 when it has; rejected unless the plan says to round. Rounds as PostgreSQL
    does: to the nearest, a tie away from its epoch 2000-01-01 (so earlier before it)."""
    if pg.precision is None or pg.precision >= 6:
        return 0
    unit = int(10 ** (6 - pg.precision))
    extra = micros % unit
    if not extra:
        return 0
    if not rounding:
        raise _reject(
            v,
            pg.sql,
            f"more than {pg.precision} fraction digits, which PostgreSQL would round; "
            + ROUND_HINT,
            Category.TOO_PRECISE,
        )
    if 2 * extra == unit:
        return -extra if before_2000 else unit - extra
    return unit - extra if 2 * extra > unit else -extra


_PG_EPOCH = dt.datetime(2000, 1, 1)


def _before_2000(d: dt.datetime) -> bool:
    if d.tzinfo is not None:
        return d.astimezone(dt.UTC).replace(tzinfo=None) < _PG_EPOCH
    return d < _PG_EPOCH


_EPOCH_HINT = (
    "numbers in a date column are ambiguous (epoch seconds, milliseconds or "
    "Julian day?); say which with a plan `timestamp` transform"
)


def _to_timestamp(pg: PgType, rounding: bool) -> Converter:
    aware = pg.family is Family.TIMESTAMPTZ
    name = pg.sql
    # Only timestamp(p) with p < 6 can need a value's fraction cut: skip that work otherwise.
    whole = pg.precision is None or pg.precision >= 6

    def conv(v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, dt.datetime):
            parsed = v
        elif isinstance(v, str):
            parsed = _read_iso(v, name, rounding)
        elif isinstance(v, int | float) and not isinstance(v, bool):
            raise _reject(v, name, _EPOCH_HINT, Category.EPOCH_AMBIGUOUS)
        else:
            raise _reject(v, name)
        try:
            # Both types hold UTC wall time here (naive text is UTC, as everywhere).
            if not whole:
                early = _before_2000(parsed)
                shift = _fraction(v, parsed.microsecond, pg, rounding, before_2000=early)
                parsed += dt.timedelta(microseconds=shift)
            if aware:
                if parsed.tzinfo is None:
                    parsed = parsed.replace(tzinfo=dt.UTC)
                return parsed.astimezone(dt.UTC).isoformat()
            if parsed.tzinfo is not None:
                parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError:
            raise _reject(
                v, name, "outside the years 1 to 9999 in UTC", Category.OUT_OF_RANGE
            ) from None
        return parsed.isoformat()

    return conv


def _to_date(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        parsed = v
    elif isinstance(v, dt.date):
        return v.isoformat()
    elif isinstance(v, str):
        parsed = _read_iso(v, "date", False, carries=False)
    elif isinstance(v, int | float) and not isinstance(v, bool):
        raise _reject(v, "date", _EPOCH_HINT, Category.EPOCH_AMBIGUOUS)
    else:
        raise _reject(v, "date")
    if parsed.time() != dt.time(0) or (parsed.tzinfo and parsed.utcoffset()):
        raise _reject(
            v, "date", "has a time of day, which a date cannot hold", Category.TIME_OF_DAY
        )
    return parsed.date().isoformat()


_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9])(?:\.([0-9]{1,6}))?)?")


def time_text(t: dt.time) -> str:
    """A time of day as PostgreSQL prints it: fraction digits without trailing zeros."""
    text = f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    return text + (f".{t.microsecond:06d}".rstrip("0") if t.microsecond else "")


def _to_time(pg: PgType, rounding: bool) -> Converter:
    # PostgreSQL's time also reads '1:2', 'allballs' and '04:05 PM', and rounds digits past
    # the microsecond: only the ISO form is taken, so that every value lands as written.
    def conv(v: Any) -> Any:
        if v is None:
            return None
        m = _TIME.fullmatch(v) if isinstance(v, str) else None
        if m is None:
            category = Category.NOT_A_TIME if isinstance(v, str | int | float) else None
            raise _reject(
                v,
                pg.sql,
                "not an ISO-8601 time of day (HH:MM:SS[.ffffff])",
                category or Category.WRONG_STORAGE,
            )
        hour, minute, second, fraction = m.groups()
        micros = int((fraction or "").ljust(6, "0"))
        micros += _fraction(v, micros, pg, rounding)
        total = dt.timedelta(
            hours=int(hour), minutes=int(minute), seconds=int(second or 0), microseconds=micros
        )
        if total >= dt.timedelta(days=1):
            return "24:00:00"  # a carry from 23:59:59.9...; PostgreSQL's time holds it
        return time_text((dt.datetime.min + total).time())

    return conv


def _to_enum(labels: tuple[str, ...]) -> Converter:
    allowed = set(labels)

    def conv(v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, str) and v in allowed:
            return v
        raise _reject(v, "enum", f"not one of {', '.join(labels)}", Category.NOT_A_LABEL)

    return conv


def _not_utf8(v: Any) -> bool:
    """Text SQLite holds that is not valid UTF-8 (source.InvalidText): bytes, but no blob."""
    return type(v).__name__ == "InvalidText"


def _to_json(pg: PgType) -> Converter:
    binary = pg.family is Family.JSONB

    def conv(v: Any) -> Any:
        if v is None:
            return None
        if _not_utf8(v):
            raise _reject(v, pg.sql, "not valid UTF-8")
        if isinstance(v, str):
            try:
                native.parse_json(v, binary=binary)
            except native.NotExact as e:
                raise _reject(v, pg.sql, str(e), Category.NOT_JSON) from None
            return v
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)  # a JSON number: a column of NUMERIC affinity stores '5' as 5
        if isinstance(v, float) and math.isfinite(v):
            return repr(v)
        if isinstance(v, bytes):
            raise _reject(v, pg.sql, "a blob is not JSON text")
        raise _reject(v, pg.sql, "not JSON")

    return conv


def _to_uuid(v: Any) -> Any:
    if v is None:
        return None
    if _not_utf8(v):
        raise _reject(v, "uuid", "not valid UTF-8")  # text, even when it has 16 bytes
    try:
        return str(native.parse_uuid(v))
    except native.NotExact as e:
        raise _reject(v, "uuid", str(e), Category.NOT_A_UUID) from None


def _to_interval(pg: PgType) -> Converter:
    # interval(p) keeps p fractional digits of a second: finer values would be rounded.
    step = 10 ** (6 - pg.precision) if pg.precision is not None else 1

    def conv(v: Any) -> Any:
        if v is None:
            return None
        try:
            interval = native.parse_interval(v)
        except native.NotExact as e:
            unitless = isinstance(v, int | float) or native.UNIT_HINT in str(e)
            category = Category.NO_UNIT if unitless else Category.NOT_AN_INTERVAL
            raise _reject(v, pg.sql, str(e), category) from None
        if interval.micros % step:
            raise _reject(v, pg.sql, f"would be rounded to {pg.precision} fractional digits")
        return interval.pg_text()

    return conv


def _to_inet(pg: PgType) -> Converter:
    cidr = pg.sql == "cidr"

    def conv(v: Any) -> Any:
        if v is None:
            return None
        try:
            # PostgreSQL's own text: Python's str() of an IPv6 address differs by version.
            return native.inet_text(native.parse_inet(v, cidr=cidr))
        except native.NotExact as e:
            raise _reject(v, pg.sql, str(e), Category.NOT_AN_ADDRESS) from None

    return conv


def _to_other(v: Any) -> Any:
    # PostgreSQL parses these (uuid, json, ...) from text; a value it refuses is rejected
    # by the loader.
    if v is None:
        return None
    if isinstance(v, str):
        if "\x00" in v:
            raise _reject(v, "text", "contains a NUL character", Category.BAD_TEXT)
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    raise _reject(v, "this type")
