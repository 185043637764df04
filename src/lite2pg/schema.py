"""SQLite declared types, names and defaults -> PostgreSQL (pure functions)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import string
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from lite2pg import native
from lite2pg.coerce import (
    BIGINT,
    BOOLEAN,
    BYTEA,
    CITEXT,
    DATE,
    DOUBLE,
    INTERVAL,
    JSONB,
    TEXT,
    TIMESTAMPTZ,
    UUID,
    Family,
    PgType,
    converter,
    parse_pg_type,
)
from lite2pg.errors import TransformError
from lite2pg.plan import ColumnPlan, TablePlan
from lite2pg.source import Column, Stored, Table, typed_by_values, unquote_ident
from lite2pg.transforms import Transform

# PostgreSQL truncates identifiers to NAMEDATALEN-1 bytes.
MAX_IDENT_BYTES = 63

# GeoPackage / SpatiaLite geometry columns hold binary geometry blobs (GPKG header), and
# "POINT" contains "INT", so SQLite's own affinity rule would call it an integer.
GEOMETRY_TYPES = frozenset(
    {
        "GEOMETRY", "POINT", "LINESTRING", "POLYGON", "MULTIPOINT", "MULTILINESTRING",
        "MULTIPOLYGON", "GEOMETRYCOLLECTION", "CIRCULARSTRING", "COMPOUNDCURVE",
        "CURVEPOLYGON", "MULTICURVE", "MULTISURFACE", "CURVE", "SURFACE",
    }
)  # fmt: skip

NUMERIC = PgType("numeric", Family.NUMERIC)
_NUMERIC_DECL = re.compile(r"\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)")


def map_declared_type(declared: str, stored: Stored | None = None) -> PgType:
    """PostgreSQL type for a SQLite declared type, after SQLite's own affinity rules.

    Declared sizes such as VARCHAR(20) are not carried over: SQLite never enforced them, so
    the data may not fit, and text is lossless. A type that says nothing (`MONEY`, `LONG`:
    NUMERIC affinity by SQLite's last rule) is typed by what the column holds (`stored`).
    A column meant for JSON (declared JSON or JSONB, or CHECKed with json_valid) is jsonb,
    and one declared UUID is uuid, when every value it holds converts exactly.
    """
    d = " ".join(declared.upper().replace('"', " ").split())
    base = d.split("(")[0].strip()
    if stored is not None and stored.json_invalid == 0:
        return JSONB  # meant for JSON (declared so, or CHECKed), and every value is
    if stored is not None and stored.uuid_invalid == 0:
        return UUID
    if not d:
        return TEXT
    if base in GEOMETRY_TYPES:
        return BYTEA
    if "BOOL" in d:
        return BOOLEAN
    if "DATETIME" in d or "TIMESTAMP" in d:
        return TIMESTAMPTZ
    if base == "DATE":
        return DATE
    if "INT" in d:
        return BIGINT
    if "CHAR" in d or "CLOB" in d or "TEXT" in d:
        return TEXT
    if "BLOB" in d:
        return BYTEA
    if "REAL" in d or "FLOA" in d or "DOUB" in d:
        return DOUBLE
    if "NUMERIC" in d or "DECIMAL" in d:
        m = _NUMERIC_DECL.search(d)
        if m:
            p = int(m.group(1))
            s = int(m.group(2) or 0)
            if 1 <= p <= 1000 and 0 <= s <= p:
                return PgType(f"numeric({p},{s})", Family.NUMERIC, precision=p, scale=s)
        return NUMERIC
    if stored is not None and typed_by_values(declared):
        return _stored_type(stored)
    return TEXT


def inference_note(table: str, col: Column) -> str:
    """Why a column meant for JSON or uuids was not given that type, or what it became."""
    stored = col.stored
    if stored is None:
        return ""
    if stored.json_invalid:
        return (
            f"column {col.name!r} is meant for JSON but {stored.json_invalid} value(s) are not "
            "JSON that jsonb holds exactly: kept as text (lite2pg check --cast "
            f"{table}.{col.name}=jsonb lists them)"
        )
    if stored.uuid_invalid:
        return (
            f"column {col.name!r} is declared {col.declared_type} but {stored.uuid_invalid} "
            "value(s) are no uuid: not made uuid"
        )
    if stored.json_invalid == 0:
        return f"column {col.name!r} made jsonb: it is meant for JSON, and every value is"
    if stored.uuid_invalid == 0:
        return f"column {col.name!r} made uuid: every value is one"
    return ""


def _stored_type(stored: Stored) -> PgType:
    """The type that holds every value of a NUMERIC-affinity column exactly, and sorts and
    compares them as the app saw them: integers stay integers, not text."""
    classes = stored.classes
    if "text" in classes:
        return TEXT  # blobs and numbers beside it read as text, as they would print
    if "blob" in classes:
        return BYTEA if classes == {"blob"} else TEXT
    if classes == {"integer"}:
        return BIGINT
    if "real" in classes:
        # Reals are doubles already; integers beside them only when a double holds them.
        return DOUBLE if stored.ints_fit_double else NUMERIC
    return NUMERIC  # nothing stored yet: numeric takes whatever the app writes next


def _truncate_bytes(name: str, limit: int) -> str:
    b = name.encode("utf-8")[:limit]
    return b.decode("utf-8", errors="ignore")


class NameAllocator:
    """Hands out PostgreSQL identifiers that are unique (case-sensitively) and fit 63 bytes.

    A name that fits and is free is kept as it is; otherwise it is shortened and given a
    short digest of the full name, so distinct long names stay distinct and stable.
    """

    def __init__(self, taken: Iterable[str] = ()) -> None:
        self._taken: set[str] = set(taken)

    def rename(self, current: str, wanted: str) -> str:
        """Give back `current` and take `wanted` instead."""
        if current == wanted:
            return current
        self._taken.discard(current)
        return self.take(wanted)

    def free(self, name: str) -> bool:
        """Whether `name` is not handed out yet."""
        return name not in self._taken

    def take(self, wanted: str) -> str:
        name = unique_name(wanted, self._taken.__contains__)
        self._taken.add(name)
        return name


def unique_name(wanted: str, taken: Callable[[str], bool]) -> str:
    """`wanted` when it fits 63 bytes and is not taken, else a shortened form of it with a
    short digest of it (stable: the same wanted name and taken names give the same result)."""
    name = wanted
    if len(name.encode("utf-8")) > MAX_IDENT_BYTES or taken(name):
        digest = hashlib.sha1(wanted.encode("utf-8")).hexdigest()
        for n in range(8, 41):
            suffix = "_" + digest[:n]
            name = _truncate_bytes(wanted, MAX_IDENT_BYTES - len(suffix)) + suffix
            if not taken(name):
                break
    return name


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def is_citext(pg: PgType) -> bool:
    """Whether `pg` is the citext extension's type (maybe schema-qualified)."""
    return pg.sql == CITEXT.sql or pg.sql.endswith((".citext", '."citext"'))


def fold_name(name: str) -> str:
    """A name as PostgreSQL reads it unquoted: A-Z in lower case, every other character as
    it is (PostgreSQL folds no other letter of a UTF-8 name, and SQLite compares names
    without case only in A-Z)."""
    return name.translate(_ASCII_LOWER)


def pg_name(name: str, quoted: bool, names: str = "fold") -> str:
    """The PostgreSQL name of a SQLite name: one declared unquoted folds to lower case with
    `names="fold"`, as PostgreSQL reads the app's own unquoted SQL; one declared quoted,
    and every name with `names="keep"`, keeps its case."""
    return name if quoted or names == "keep" else fold_name(name)


def _folded(
    name: str, quoted: bool, names: str, free: Callable[[str], bool], what: str, notes: list[str]
) -> str:
    """`pg_name`, or the declared name when folding would take a name already taken."""
    folded = pg_name(name, quoted, names)
    if folded == name or free(folded):
        return folded
    notes.append(
        f"{what} {name!r} keeps its declared case: {folded!r}, its lower-case form, is taken"
    )
    return name


@dataclass
class ColumnMap:
    """How one source column lands in the target."""

    source: str | None  # None for a column the plan adds
    target: str
    pg_type: PgType
    not_null: bool
    default: sql.Composable | None = None
    identity: bool = False
    secret: bool = False
    # Declared COLLATE NOCASE: compared without case on SQLite, so unique keys on it must
    # be too (citext does it; on text, a unique index on lower()).
    nocase: bool = False


@dataclass
class TableMap:
    """How one source table lands in the target: names, types, defaults, notes."""

    source: Table
    target: str
    columns: list[ColumnMap]
    notes: list[str] = field(default_factory=list)
    # What the app will see behave differently (a default not carried over), for the
    # summary's "behaviour change" lines.
    changes: list[str] = field(default_factory=list)
    # The CHECKs to build, by position in `source.checks`, as translated (`translate_check`);
    # None: every CHECK as SQLite has it.
    check_sql: dict[int, str] | None = None
    names: str = "fold"  # how the table's undeclared-quoted names became PostgreSQL names

    @property
    def target_columns(self) -> list[str]:
        return [c.target for c in self.columns]

    def pg_name(self, name: str) -> str:
        """The PostgreSQL name of a CONSTRAINT or index name this table's DDL declares."""
        return pg_name(name, name in self.source.quoted_names, self.names)

    def column_map(self, source_column: str) -> ColumnMap:
        for c in self.columns:
            if c.source == source_column:
                return c
        raise KeyError(source_column)

    def folds_case(self, source_column: str, collation: str) -> bool:
        """Whether PostgreSQL compares a column of a key without case: citext, or text
        that a key compares with `collation` NOCASE. A column declared NOCASE that a cast
        makes plain text compares with case (the index inherited its collation)."""
        cm = self.column_map(source_column)
        if cm.pg_type.family is not Family.TEXT or cm.secret:
            return False
        declared = self.source.column(source_column).collation == "NOCASE"
        return is_citext(cm.pg_type) or (collation == "NOCASE" and (cm.nocase or not declared))

    def sql_names(self) -> dict[str, str]:
        """Lower-case SQLite name -> PostgreSQL name, of the table and its columns, for
        `sqlite_sql_to_pg` (SQLite matches names without case)."""
        out = {c.source.lower(): c.target for c in self.columns if c.source is not None}
        out.setdefault(self.source.name.lower(), self.target)
        return out

    def has(self, source_column: str) -> bool:
        """Whether a source column is loaded (a plan may drop it)."""
        return any(c.source == source_column for c in self.columns)

    def target_of(self, source_column: str) -> str:
        for c in self.columns:
            if c.source == source_column:
                return c.target
        raise KeyError(source_column)


_STRING = re.compile(r"^'((?:[^']|'')*)'$", re.S)
_DQ_STRING = re.compile(r'^"((?:[^"]|"")*)"$', re.S)
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_BLOB = re.compile(r"^[xX]'([0-9a-fA-F]*)'$")
_NUMERIC_FAMILIES = (Family.INTEGER, Family.FLOAT, Family.NUMERIC, Family.BOOLEAN)
_TEMPORAL = (Family.TIMESTAMPTZ, Family.TIMESTAMP, Family.DATE)

# A "now" default is evaluated in Python at this instant (every field distinct) to see what
# the column's type and transforms make of it, and which PostgreSQL expression gives that.
_SAMPLE = dt.datetime(2001, 2, 3, 4, 5, 6, 789_000, tzinfo=dt.UTC)
_UTC_NOW = "(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')"
# SQLite's random() is a signed 64-bit integer over the whole range; PostgreSQL's random()
# is a double in [0, 1). 64 bits of an MD5 of one make a bigint over the whole range.
_RANDOM_BIGINT = "('x' || substr(md5(random()::text), 1, 16))::bit(64)::bigint"
_EPOCH = "floor(extract(epoch FROM CURRENT_TIMESTAMP))::bigint"  # SQLite truncates too
_JULIAN = "(extract(epoch FROM CURRENT_TIMESTAMP)::float8 / 86400 + 2440587.5)"
# The text of SQLite's clock functions, as strftime formats.
_CLOCK_WORDS = {
    "CURRENT_TIMESTAMP": "%Y-%m-%d %H:%M:%S",
    "CURRENT_DATE": "%Y-%m-%d",
    "CURRENT_TIME": "%H:%M:%S",
}
_CLOCK_FUNCS = {"datetime": "%Y-%m-%d %H:%M:%S", "date": "%Y-%m-%d", "time": "%H:%M:%S"}
# strftime conversions PostgreSQL's to_char can spell; %f is seconds with milliseconds.
_TO_CHAR = {
    "Y": "YYYY", "m": "MM", "d": "DD", "H": "HH24", "M": "MI", "S": "SS", "f": 'SS"."MS',
    "j": "DDD",
}  # fmt: skip
_CALL = re.compile(r"^([A-Za-z_]\w*)\s*\((.*)\)$", re.S)
_CAST = re.compile(r"^(.*)\s+AS\s+([A-Za-z_][\w ]*)$", re.S | re.I)
_ARG = re.compile(r"\s*'((?:[^']|'')*)'\s*(,|$)", re.S)
_SIGN_SPACE = re.compile(r"^([+-])\s+")


@dataclass(frozen=True)
class _Clock:
    """A SQLite default that reads the clock or the random generator."""

    kind: str  # "stamp" (strftime text), "epoch" (seconds), "julian" (day number), "random"
    fmt: str = ""  # the strftime format of a "stamp"
    text: bool = False  # an "epoch" that SQLite gives as text (strftime('%s', 'now'))

    def sample(self) -> Any:
        """What SQLite gives at `_SAMPLE`."""
        if self.kind == "stamp":
            return _strftime(self.fmt, _SAMPLE)
        if self.kind == "epoch":
            seconds = int(_SAMPLE.timestamp())
            return str(seconds) if self.text else seconds
        if self.kind == "julian":
            return _SAMPLE.timestamp() / 86400 + 2440587.5
        return 2**62 + 12345  # random(): any 64-bit integer


def _strftime(fmt: str, t: dt.datetime) -> str:
    out: list[str] = []
    i = 0
    while i < len(fmt):
        if fmt[i] == "%" and i + 1 < len(fmt):
            spec = fmt[i + 1]
            if spec == "f":
                out.append(f"{t.second:02d}.{t.microsecond // 1000:03d}")
            elif spec == "%":
                out.append("%")
            else:
                out.append(t.strftime("%" + spec))
            i += 2
        else:
            out.append(fmt[i])
            i += 1
    return "".join(out)


def _to_char_format(fmt: str) -> str | None:
    """PostgreSQL's to_char spelling of a SQLite strftime format, or None."""
    out: list[str] = []
    literal: list[str] = []
    i = 0
    while i < len(fmt):
        if fmt[i] != "%":
            literal.append(fmt[i])
            i += 1
            continue
        spec = fmt[i + 1] if i + 1 < len(fmt) else ""
        i += 2
        if spec == "%":
            literal.append("%")
            continue
        if spec not in _TO_CHAR:
            return None
        out += [_quoted_literal(literal), _TO_CHAR[spec]]
        literal = []
    return "".join([*out, _quoted_literal(literal)])


def _quoted_literal(chars: list[str]) -> str:
    """Text that to_char copies as it is (a double-quoted run), or nothing."""
    text = "".join(chars)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"' if text else ""


def _string_args(inner: str) -> list[str] | None:
    """The arguments of a call when every one is a string literal, else None."""
    args: list[str] = []
    pos = 0
    while pos < len(inner):
        m = _ARG.match(inner, pos)
        if not m:
            return None
        args.append(m.group(1).replace("''", "'"))
        pos = m.end()
    return args


def _clock(text: str) -> _Clock | str | None:
    """The clock default `text` reads, a reason it cannot be translated, or None when it is
    not a clock default."""
    upper = text.upper()
    if upper in _CLOCK_WORDS:
        return _Clock("stamp", _CLOCK_WORDS[upper])
    m = _CALL.match(text)
    if not m:
        return None
    name, inner = m.group(1).lower(), m.group(2).strip()
    if name == "random":
        return None if inner else _Clock("random")
    if name == "cast":
        cast = _CAST.match(inner)
        inside = _clock(_unwrap(cast.group(1))) if cast else None
        if cast is None or not isinstance(inside, _Clock):
            return inside
        if inside.kind == "epoch" and "INT" in cast.group(2).upper():
            return _Clock("epoch")
        return f"CAST({inside.kind} AS {cast.group(2)}) not translated"
    if name not in (*_CLOCK_FUNCS, "strftime", "julianday", "unixepoch"):
        return None
    args = _string_args(inner)
    if args is None:
        return None
    fmt = ""
    if name == "strftime":
        if not args:
            return None
        fmt, args = args[0], args[1:]
    if name == "unixepoch" and not args:
        args = ["now"]
    if not args or args[0].strip().lower() != "now":
        return None
    for modifier in args[1:]:
        if modifier.strip().lower() == "localtime":
            return (
                "'localtime' is the local time of the app's host, which PostgreSQL does not "
                "know; not translated"
            )
        return f"modifier {modifier!r} not translated"
    if name == "julianday":
        return _Clock("julian")
    if name == "unixepoch":
        return _Clock("epoch")
    if name != "strftime":
        return _Clock("stamp", _CLOCK_FUNCS[name])
    if fmt == "%s":
        return _Clock("epoch", text=True)
    if _to_char_format(fmt) is None:
        return f"strftime format {fmt!r} not translated"
    return _Clock("stamp", fmt)


def _cast(expr: str, pg: PgType) -> sql.Composable:
    if pg.sql == "bigint" and expr in (_EPOCH, _RANDOM_BIGINT):
        return sql.SQL(expr)
    return sql.SQL("CAST({} AS {})").format(sql.SQL(expr), sql.SQL(pg.sql))


def _clock_sql(clock: _Clock, pg: PgType) -> sql.Composable | None:
    """The PostgreSQL expression that gives a `pg` column what `clock` gave on SQLite, as
    the load converts it; None when there is none."""
    fam = pg.family
    if clock.kind == "stamp":
        fmt = _to_char_format(clock.fmt)
        assert fmt is not None
        text = sql.SQL("to_char({}, {})").format(sql.SQL(_UTC_NOW), sql.Literal(fmt))
        sample = clock.sample()
        if fam is Family.TEXT:
            return text
        if fam is Family.BYTEA:
            return sql.SQL("convert_to({}, 'UTF8')").format(text)
        if fam in (Family.INTEGER, Family.FLOAT, Family.NUMERIC) and sample.isdigit():
            return sql.SQL("CAST({} AS {})").format(text, sql.SQL(pg.sql))
        if fam in _TEMPORAL:
            try:
                return _instant_sql(converter(pg)(sample), pg)
            except TransformError:
                return None
        return None
    if clock.kind == "epoch":
        if fam in (Family.INTEGER, Family.FLOAT, Family.NUMERIC):
            return _cast(_EPOCH, pg)
        return sql.SQL(_EPOCH + "::text") if fam is Family.TEXT else None
    if clock.kind == "julian":
        if fam in (Family.FLOAT, Family.NUMERIC):
            return _cast(_JULIAN, pg)
        if fam is Family.TEXT:  # SQLite prints a real with 15 significant digits
            return sql.SQL(f"trim_scale(round({_JULIAN}::numeric, 8))::text")
        return None
    if (fam is Family.INTEGER and pg.sql == "bigint") or fam in (Family.FLOAT, Family.NUMERIC):
        return _cast(_RANDOM_BIGINT, pg)
    return sql.SQL(_RANDOM_BIGINT + "::text") if fam is Family.TEXT else None


def _instant_sql(converted: Any, pg: PgType) -> sql.Composable | None:
    """The clock expression for a date/time column whose value, at `_SAMPLE`, the load made
    `converted` (ISO text): now (to the second or finer), or today at midnight UTC."""
    if not isinstance(converted, str):
        return None
    if pg.family is Family.DATE:
        return sql.SQL(_UTC_NOW + "::date") if converted == _SAMPLE.date().isoformat() else None
    got = dt.datetime.fromisoformat(converted)
    sample = _SAMPLE if pg.family is Family.TIMESTAMPTZ else _SAMPLE.replace(tzinfo=None)
    midnight = sample.replace(hour=0, minute=0, second=0, microsecond=0)
    if got in (sample, sample.replace(microsecond=0)):
        now = "CURRENT_TIMESTAMP" if pg.family is Family.TIMESTAMPTZ else _UTC_NOW
        return sql.SQL(now)
    if got == midnight:
        today = f"date_trunc('day', {_UTC_NOW})"
        if pg.family is Family.TIMESTAMPTZ:
            today = f"({today} AT TIME ZONE 'UTC')"
        return sql.SQL(today)
    return None


def _unwrap(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    return text


_NOT_CONSTANT = object()


def _constant(text: str) -> Any:
    """The value of a SQLite constant (string, number with its sign, blob, TRUE/FALSE), or
    `_NOT_CONSTANT`."""
    text = _SIGN_SPACE.sub(r"\1", text)
    upper = text.upper()
    if m := _STRING.match(text):
        return m.group(1).replace("''", "'")
    if m := _DQ_STRING.match(text):
        return m.group(1).replace('""', '"')
    if _NUMBER.match(text):
        return float(text) if any(ch in text for ch in ".eE") else int(text)
    if m := _BLOB.match(text):
        return bytes.fromhex(m.group(1))
    if upper in ("TRUE", "FALSE"):
        return 1 if upper == "TRUE" else 0
    return _NOT_CONSTANT


def sqlite_affinity(declared: str) -> str:
    """SQLite's affinity for a declared type (datatype3.html, section 3.1)."""
    d = declared.upper()
    if "INT" in d:
        return "INTEGER"
    if "CHAR" in d or "CLOB" in d or "TEXT" in d:
        return "TEXT"
    if "BLOB" in d or not d.strip():
        return "BLOB"
    if "REAL" in d or "FLOA" in d or "DOUB" in d:
        return "REAL"
    return "NUMERIC"


def _stored_as(value: Any, declared: str) -> Any:
    """A default's value as a column of `declared` type stores it (its affinity)."""
    affinity = sqlite_affinity(declared)
    if isinstance(value, str) and affinity in ("INTEGER", "REAL", "NUMERIC"):
        v = value.strip()
        if _NUMBER.match(v):
            return float(v) if any(ch in v for ch in ".eE") else int(v)
    if isinstance(value, int) and affinity == "TEXT":
        return str(value)
    return value


def translate_default(
    default_sql: str | None,
    pg: PgType,
    *,
    declared: str | None = None,
    chain: Transform | None = None,
) -> tuple[sql.Composable | None, str]:
    """PostgreSQL DEFAULT for a SQLite default expression, or None and the reason why not.

    The DEFAULT gives an app's insert on PostgreSQL what it got on SQLite, as the load
    converts it: a clock read in UTC in the same shape, a random 64-bit integer, a constant.
    With `chain` (the plan transforms the column), a constant goes through the chain, and a
    clock default is kept when the chain leaves its value alone or makes the same instant
    of it. `declared` (the source type) gives the column's affinity.
    """
    if default_sql is None:
        return None, ""
    text = _unwrap(default_sql)
    if text.upper() == "NULL":
        return None, ""
    clock = _clock(text)
    if isinstance(clock, str):
        return None, f"default {default_sql} dropped: {clock}"
    if clock is not None:
        return _translate_clock(default_sql, clock, pg, declared, chain)
    value = _constant(text)
    if value is _NOT_CONSTANT:
        return None, f"default {default_sql} dropped: an expression lite2pg does not translate"
    if declared is not None:
        value = _stored_as(value, declared)
    if (
        chain is None
        and isinstance(value, str)
        and pg.family in _NUMERIC_FAMILIES
        and _NUMBER.match(value.strip())
    ):
        # The column's affinity, or a --cast to a number: '0' in an INTEGER column is 0.
        v = value.strip()
        value = float(v) if any(ch in v for ch in ".eE") else int(v)
    if chain is not None:
        try:
            value = chain(value)
        except TransformError as e:
            why = f"the plan's transforms refuse it ({e.reason})"
            return None, f"default {default_sql} dropped: {why}"
    try:
        converted = converter(pg)(value)
    except TransformError as e:
        return None, f"default {default_sql} dropped: {e.reason}"
    return sql.Literal(converted), ""


def _translate_clock(
    default_sql: str, clock: _Clock, pg: PgType, declared: str | None, chain: Transform | None
) -> tuple[sql.Composable | None, str]:
    if chain is not None:
        stored = _stored_as(clock.sample(), declared or "")
        try:
            out = chain(stored)
        except TransformError as e:
            return (
                None,
                f"default {default_sql} dropped: the plan's transforms refuse it ({e.reason})",
            )
        if out != stored:
            expr = None
            if pg.family in _TEMPORAL:
                try:
                    expr = _instant_sql(converter(pg)(out), pg)
                except TransformError:
                    expr = None
            if expr is None:
                return None, (
                    f"default {default_sql} dropped: the plan's transforms change its value in "
                    "a way no PostgreSQL expression repeats"
                )
            return expr, ""
    expr = _clock_sql(clock, pg)
    if expr is None:
        return None, f"default {default_sql} dropped: what it gives does not fit a {pg} column"
    return expr, ""


# What a plan transform leaves in a column, for the type of a column lite2pg creates
# (None: the type stays what it was).
_RESULT_TYPES: dict[str, PgType | None] = {
    "hash_password": TEXT,
    "map": TEXT,
    "strip": TEXT,
    "lower": TEXT,
    "timestamp": TIMESTAMPTZ,
    "interval": INTERVAL,
    "boolean": BOOLEAN,
    "integer": BIGINT,
    "numeric": NUMERIC,
    "nullif": None,
    "default": None,
    "required": None,
}


def transformed_type(
    declared: str, transform_names: Sequence[str], stored: Stored | None = None
) -> PgType:
    """The PostgreSQL type of a column after its plan transforms."""
    pg = map_declared_type(declared, stored)
    for name in transform_names:
        pg = _RESULT_TYPES.get(name) or pg
    return pg


def plan_table(
    table: Table,
    allocator: NameAllocator,
    casts: dict[str, PgType] | None = None,
    tp: TablePlan | None = None,
    *,
    names: str = "fold",
    citext: str | None = CITEXT.sql,
    reserved: Collection[str] = (),
) -> TableMap:
    """Target names, types and defaults for a table to be created by lite2pg.

    `names`: "fold" or "keep" (see `pg_name`); a plan's `target` and `rename` are taken as
    written. `citext`: the citext type as the target spells it, for COLLATE NOCASE
    columns, or None when the target cannot have it. `reserved`: table names a plan gives
    other tables, which a folded name leaves to them.
    """
    casts = casts or {}
    notes: list[str] = []
    changes: list[str] = []
    if tp is not None and tp.target_given:
        wanted = tp.target
    else:
        wanted = _folded(
            table.name,
            table.quoted,
            names,
            lambda n: allocator.free(n) and n not in reserved,
            "table",
            notes,
        )
    target = allocator.take(wanted)
    if target != wanted:
        notes.append(f"table renamed to {target!r}: {wanted!r} is too long or taken")
    col_names = NameAllocator()
    given = set(tp.rename.values()) | {a.name for a in tp.add} if tp is not None else set()
    columns: list[ColumnMap] = []
    for col in table.columns:
        if tp is not None and col.name in tp.drop:
            continue
        pg = casts.get(col.name)
        cast = pg is not None or (tp is not None and col.name in tp.cast)
        if pg is None and tp is not None:
            if col.name in tp.cast:
                pg = parse_pg_type(tp.cast[col.name])
            elif col.name in tp.columns:
                spec_names = [spec.name for spec in tp.columns[col.name].specs]
                pg = transformed_type(col.declared_type, spec_names, col.stored)
        cp = tp.columns.get(col.name) if tp is not None else None
        if tp is not None and col.name in tp.rename:
            col_wanted = tp.rename[col.name]
        else:
            col_wanted = _folded(
                col.name,
                col.quoted,
                names,
                lambda n: col_names.free(n) and n not in given,
                "column",
                notes,
            )
        column = _plan_column(table, col, col_names, col_wanted, pg, notes, changes, cp)
        _collation(col, column, cast, citext, changes)
        if tp is not None:
            column.secret = tp.is_secret(col.name)
        columns.append(column)
    for added in tp.add if tp else ():
        pg = parse_pg_type(added.type)
        default = None if added.default is None else sql.Literal(added.default)
        columns.append(ColumnMap(None, col_names.take(added.name), pg, False, default))
    caseless_pk = [
        c.target
        for c in columns
        if c.source in table.primary_key and c.nocase and not is_citext(c.pg_type)
    ]
    if caseless_pk:
        changes.append(
            f"primary key ({', '.join(caseless_pk)}): COLLATE NOCASE not kept: PostgreSQL's "
            "primary key compares with case"
        )
    tm = TableMap(table, target, columns, notes, changes, names=names)
    tm.check_sql = translate_checks(tm)
    return tm


def translate_checks(tm: TableMap) -> dict[int, str]:
    """The table's CHECKs that PostgreSQL can hold, in SQLite SQL still (keys.py quotes them),
    by position; notes and behaviour changes of `tm` say what became of the others."""
    jsonb = {
        c.source.lower()
        for c in tm.columns
        if c.source is not None and c.pg_type.family in (Family.JSONB, Family.JSON)
    }
    out: dict[int, str] = {}
    for n, expr in enumerate(tm.source.checks):
        translated, why = translate_check(expr, jsonb)
        if translated is not None:
            out[n] = translated
            if why:
                tm.notes.append(f"CHECK ({expr}): {why}")
        elif why.startswith("redundant"):
            tm.notes.append(f"CHECK ({expr}) not built: {why}")
        else:
            tm.changes.append(f"CHECK ({expr}) not kept: {why}")
    return out


# SQLite functions whose PostgreSQL namesake does the same to the values a CHECK sees.
_SAME_FUNCTIONS = frozenset(
    {
        "abs", "coalesce", "length", "lower", "ltrim", "nullif", "replace", "round", "rtrim",
        "substr", "trim", "upper",
    }
)  # fmt: skip
# Words a '(' may follow in a CHECK without being a function call.
_NOT_CALLS = frozenset(
    {
        "and", "or", "not", "in", "is", "exists", "between", "like", "cast", "case", "when",
        "then", "else", "as", "check", "values", "select", "numeric", "decimal", "varchar",
        "char", "character", "integer", "int", "text", "real", "float", "double", "precision",
    }
)  # fmt: skip
_CHECK_TOKEN = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`(?:[^`]|``)*`|\[[^\]]*\]"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_$]*)(?P<call>\s*\()?",
    re.S,
)
_JSON_VALID = re.compile(
    r"\bjson_valid\s*\(\s*(\"(?:[^\"]|\"\")*\"|`(?:[^`]|``)*`|\[[^\]]*\]|[A-Za-z_]\w*)\s*\)"
    r"(?:\s*==?\s*1\b)?",
    re.I,
)
_STRING_LITERAL = re.compile(r"('(?:[^']|'')*')", re.S)
# `json_valid(c) OR c IS NULL` (Django's JSONField): nothing left to check. (Alone,
# json_valid(c) also refuses NULL, which is kept.)
_ONLY_JSON_VALID = re.compile(
    r"\(*\s*json_valid\s*\(\s*(?P<c>[^()]+?)\s*\)\s*\)*"
    r"\s+OR\s+\(*\s*(?P<n>[^()]+?)\s+IS\s+NULL\s*\)*\s*",
    re.I | re.S,
)


def translate_check(expr: str, jsonb: Collection[str]) -> tuple[str | None, str]:
    """A SQLite CHECK expression as PostgreSQL can hold it, and what was changed, or None
    and why not. `jsonb` names the columns (lower case) that are jsonb or json, which hold
    valid JSON only: their json_valid() is redundant."""
    whole = _ONLY_JSON_VALID.fullmatch(expr)
    if whole is not None:
        column = unquote_ident(whole.group("c")).lower()
        if column in jsonb and unquote_ident(whole.group("n")).lower() == column:
            return None, f"redundant: column {unquote_ident(whole.group('c'))!r} holds JSON only"
    replaced: list[str] = []

    def true_if_jsonb(m: re.Match[str]) -> str:
        # What json_valid(c) gives on a column that holds only JSON: true, and for NULL
        # what this SQLite gives (0 in older versions, NULL in newer), so NULLs pass as they did.
        column = unquote_ident(m.group(1))
        if column.lower() not in jsonb:
            return m.group(0)
        replaced.append(column)
        null = "" if native.JSON_VALID_OF_NULL == 0 else " OR NULL"
        return f"({m.group(1)} IS NOT NULL{null})"

    # Outside string literals only: '...json_valid(x)...' is text.
    text = "".join(
        part if part.startswith("'") else _JSON_VALID.sub(true_if_jsonb, part)
        for part in _STRING_LITERAL.split(expr)
    )
    for m in _CHECK_TOKEN.finditer(text):
        word = m.group("word")
        if word is None or m.group("call") is None:
            continue
        name = word.lower()
        if name not in _SAME_FUNCTIONS and name not in _NOT_CALLS:
            return None, f"uses the SQLite function {word}(), which lite2pg does not translate"
    why = ""
    if replaced:
        names = ", ".join(repr(c) for c in replaced)
        why = f"json_valid() of {names} dropped: the type holds JSON only"
    return text, why


def _collation(
    col: Column, column: ColumnMap, cast: bool, citext: str | None, changes: list[str]
) -> None:
    """Keep a column's COLLATE NOCASE (citext; else unique keys on lower()), or list the
    collation PostgreSQL will not have. An explicit cast (`cast`) decides the type: to
    text, the column compares with case."""
    if col.collation == "RTRIM":
        changes.append(
            f"column {col.name!r}: COLLATE RTRIM not kept: PostgreSQL compares trailing "
            "spaces ('a ' <> 'a')"
        )
    if col.collation != "NOCASE":
        return
    pg = column.pg_type
    if is_citext(pg) or (pg.family is Family.TEXT and not cast):
        column.nocase = True
    if is_citext(pg):
        return
    if column.nocase and citext is not None:
        column.pg_type = PgType(citext, Family.TEXT)
        return
    why = (
        "the citext extension cannot be created on the target; its unique keys compare "
        "lower() values"
        if column.nocase
        else f"it is made {pg}"
    )
    changes.append(
        f"column {col.name!r}: COLLATE NOCASE not kept ({why}): PostgreSQL compares it with case"
    )


def _plan_column(
    table: Table,
    col: Column,
    names: NameAllocator,
    wanted: str,
    pg: PgType | None,
    notes: list[str],
    changes: list[str],
    cp: ColumnPlan | None = None,
) -> ColumnMap:
    if pg is None:
        pg = map_declared_type(col.declared_type, col.stored)
        if note := inference_note(table.name, col):
            notes.append(note)
    target = names.take(wanted)
    if target != wanted:
        notes.append(
            f"column {col.name!r} renamed to {target!r}: PostgreSQL names are at most "
            f"{MAX_IDENT_BYTES} bytes and the shortened name collides"
        )
    identity = table.rowid_alias == col.name
    if identity:
        default, why = None, ""  # the identity gives the value
    elif cp is not None and cp.secret:
        default = None
        why = (
            f"default {col.default_sql} dropped: the column is hashed, and a default "
            "would be stored unhashed"
            if col.default_sql is not None and _unwrap(col.default_sql).upper() != "NULL"
            else ""
        )
    else:
        chain = cp.chain if cp is not None else None
        default, why = translate_default(
            col.default_sql, pg, declared=col.declared_type, chain=chain
        )
    if why:
        changes.append(f"column {col.name!r}: {why}")
    if col.generated:
        notes.append(
            f"column {col.name!r} is a generated column in SQLite; loaded as a plain column "
            "(its expression is SQLite SQL and is not translated)"
        )
    return ColumnMap(
        source=col.name,
        target=target,
        pg_type=pg,
        not_null=col.not_null or identity,
        default=default,
        identity=identity,
    )


def create_table_sql(tm: TableMap, schema: str) -> sql.Composed:
    """CREATE TABLE without keys or indexes (they are built after the data)."""
    parts: list[sql.Composable] = []
    for c in tm.columns:
        piece: list[sql.Composable] = [sql.Identifier(c.target), sql.SQL(" " + c.pg_type.sql)]
        if c.identity:
            piece.append(sql.SQL(" GENERATED BY DEFAULT AS IDENTITY"))
        if c.default is not None:
            piece += [sql.SQL(" DEFAULT "), c.default]
        if c.not_null:
            piece.append(sql.SQL(" NOT NULL"))
        parts.append(sql.Composed(piece))
    return sql.SQL("CREATE TABLE {}.{} ({})").format(
        sql.Identifier(schema), sql.Identifier(tm.target), sql.SQL(", ").join(parts)
    )


# Words that stay bare even when a table or column has the same name.
_SQL_WORDS = frozenset(
    [
        "ALL",
        "AND",
        "AS",
        "ASC",
        "BETWEEN",
        "BY",
        "CASE",
        "CAST",
        "CREATE",
        "CROSS",
        "DESC",
        "DISTINCT",
        "ELSE",
        "END",
        "EXCEPT",
        "EXISTS",
        "FROM",
        "FULL",
        "GROUP",
        "HAVING",
        "IF",
        "IN",
        "INNER",
        "INTERSECT",
        "IS",
        "JOIN",
        "LEFT",
        "LIKE",
        "LIMIT",
        "NATURAL",
        "NOT",
        "NULL",
        "OFFSET",
        "ON",
        "OR",
        "ORDER",
        "OUTER",
        "RIGHT",
        "SELECT",
        "THEN",
        "UNION",
        "USING",
        "VIEW",
        "WHEN",
        "WHERE",
        "WITH",
        "INTEGER",
        "INT",
        "TEXT",
        "REAL",
        "NUMERIC",
        "BLOB",
        "DATE",
        "VARCHAR",
        "CHAR",
        "BOOLEAN",
        "TRUE",
        "FALSE",
    ]
)


def sqlite_sql_to_pg(text: str, names: Mapping[str, str] | None = None) -> str:
    """Rewrite SQLite identifier quoting ([x], `x`) as PostgreSQL's "x"; strings untouched.

    With `names` (lower-case name -> name as created), names of a table or a column, bare
    or quoted, are quoted with the case they were created with: SQLite matches names
    without regard to case, PostgreSQL folds bare names to lower case and matches quoted
    ones exactly.
    """
    out: list[str] = []
    pattern = re.compile(
        r"'(?:[^']|'')*'|\"((?:[^\"]|\"\")*)\"|`((?:[^`]|``)*)`|\[([^\]]*)\]"
        r"|([A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*)(?=\s*(\()?)",
        re.S,
    )
    pos = 0
    before = ""  # the word before this one: after ON, a name precedes "(" (CREATE INDEX)
    for m in pattern.finditer(text):
        out.append(text[pos : m.start()])
        quoted = next((g for g in (m.group(1), m.group(2), m.group(3)) if g is not None), None)
        word = m.group(4)
        if quoted is not None:
            name = (
                quoted.replace('""', '"')
                if m.group(1) is not None
                else quoted.replace("``", "`")
                if m.group(2) is not None
                else quoted
            )
            if names and name.lower() in names:
                name = names[name.lower()]
            out.append('"' + name.replace('"', '""') + '"')
        elif (
            word is not None
            and names
            and (m.group(5) is None or before == "ON")  # a function call, not a name
            and word.upper() not in _SQL_WORDS
            and word.lower() in names
        ):
            out.append('"' + names[word.lower()].replace('"', '""') + '"')
        else:
            out.append(m.group(0))
        before = (word or "").upper()
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)
