"""SQLite declared types, names and defaults -> PostgreSQL (pure functions)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from lite2pg.coerce import (
    BIGINT,
    BOOLEAN,
    BYTEA,
    DATE,
    DOUBLE,
    TEXT,
    TIMESTAMPTZ,
    Family,
    PgType,
    converter,
    parse_pg_type,
)
from lite2pg.errors import TransformError
from lite2pg.plan import TablePlan
from lite2pg.source import Column, Table

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

_NUMERIC_DECL = re.compile(r"\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)")


def map_declared_type(declared: str) -> PgType:
    """PostgreSQL type for a SQLite declared type, after SQLite's own affinity rules.

    Declared sizes such as VARCHAR(20) are not carried over: SQLite never enforced them, so
    the data may not fit, and text is lossless.
    """
    d = " ".join(declared.upper().replace('"', " ").split())
    base = d.split("(")[0].strip()
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
        return PgType("numeric", Family.NUMERIC)
    return TEXT


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


@dataclass
class TableMap:
    """How one source table lands in the target: names, types, defaults, notes."""

    source: Table
    target: str
    columns: list[ColumnMap]
    notes: list[str] = field(default_factory=list)

    @property
    def target_columns(self) -> list[str]:
        return [c.target for c in self.columns]

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


def translate_default(default_sql: str | None, pg: PgType) -> tuple[sql.Composable | None, str]:
    """PostgreSQL DEFAULT for a SQLite default expression, or None and the reason why not."""
    if default_sql is None:
        return None, ""
    text = default_sql.strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    upper = text.upper()
    if upper == "NULL":
        return None, ""
    if upper in ("CURRENT_TIMESTAMP", "CURRENT_DATE"):
        if pg.family in (Family.TIMESTAMPTZ, Family.TIMESTAMP, Family.DATE):
            return sql.SQL(upper), ""
        return None, f"default {default_sql} not translated for a {pg} column"
    value: Any
    if m := _STRING.match(text):
        value = m.group(1).replace("''", "'")
    elif m := _DQ_STRING.match(text):
        value = m.group(1).replace('""', '"')
    elif _NUMBER.match(text):
        value = float(text) if any(ch in text for ch in ".eE") else int(text)
    elif m := _BLOB.match(text):
        value = bytes.fromhex(m.group(1))
    elif upper in ("TRUE", "FALSE"):
        value = 1 if upper == "TRUE" else 0
    else:
        return None, f"default {default_sql} is an expression; not translated"
    if isinstance(value, str) and pg.family in _NUMERIC_FAMILIES and _NUMBER.match(value.strip()):
        # SQLite applies the column's affinity to a default: '0' in an INTEGER column is 0.
        v = value.strip()
        value = float(v) if any(ch in v for ch in ".eE") else int(v)
    try:
        converted = converter(pg)(value)
    except TransformError as e:
        return None, f"default {default_sql} dropped: {e.reason}"
    return sql.Literal(converted), ""


# What a plan transform leaves in a column, for the type of a column lite2pg creates
# (None: the type stays what it was).
_RESULT_TYPES: dict[str, PgType | None] = {
    "hash_password": TEXT,
    "map": TEXT,
    "strip": TEXT,
    "lower": TEXT,
    "timestamp": TIMESTAMPTZ,
    "boolean": BOOLEAN,
    "integer": BIGINT,
    "numeric": PgType("numeric", Family.NUMERIC),
    "nullif": None,
    "default": None,
    "required": None,
}


def transformed_type(declared: str, transform_names: Sequence[str]) -> PgType:
    """The PostgreSQL type of a column after its plan transforms."""
    pg = map_declared_type(declared)
    for name in transform_names:
        pg = _RESULT_TYPES.get(name) or pg
    return pg


def plan_table(
    table: Table,
    allocator: NameAllocator,
    casts: dict[str, PgType] | None = None,
    tp: TablePlan | None = None,
) -> TableMap:
    """Target names, types and defaults for a table to be created by lite2pg."""
    casts = casts or {}
    notes: list[str] = []
    wanted = tp.target if tp else table.name
    target = allocator.take(wanted)
    if target != wanted:
        notes.append(f"table renamed to {target!r}: {wanted!r} is too long or taken")
    col_names = NameAllocator()
    columns: list[ColumnMap] = []
    for col in table.columns:
        if tp is not None and col.name in tp.drop:
            continue
        pg = casts.get(col.name)
        if pg is None and tp is not None:
            if col.name in tp.cast:
                pg = parse_pg_type(tp.cast[col.name])
            elif col.name in tp.columns:
                names = [spec.name for spec in tp.columns[col.name].specs]
                pg = transformed_type(col.declared_type, names)
        column = _plan_column(table, col, col_names, pg, notes)
        if tp is not None:
            column.target = col_names.rename(column.target, tp.target_column(col.name))
            column.secret = tp.is_secret(col.name)
            if col.name in tp.columns and column.default is not None:
                # The SQLite default is a legacy value the transforms would change.
                column.default = None
        columns.append(column)
    for added in tp.add if tp else ():
        pg = parse_pg_type(added.type)
        default = None if added.default is None else sql.Literal(added.default)
        columns.append(ColumnMap(None, col_names.take(added.name), pg, False, default))
    return TableMap(table, target, columns, notes)


def _plan_column(
    table: Table,
    col: Column,
    names: NameAllocator,
    pg: PgType | None,
    notes: list[str],
) -> ColumnMap:
    pg = pg or map_declared_type(col.declared_type)
    target = names.take(col.name)
    if target != col.name:
        notes.append(
            f"column {col.name!r} renamed to {target!r}: PostgreSQL names are at most "
            f"{MAX_IDENT_BYTES} bytes and the shortened name collides"
        )
    default, why = translate_default(col.default_sql, pg)
    if why:
        notes.append(f"column {col.name!r}: {why}")
    if col.generated:
        notes.append(
            f"column {col.name!r} is a generated column in SQLite; loaded as a plain column "
            "(its expression is SQLite SQL and is not translated)"
        )
    identity = table.rowid_alias == col.name
    return ColumnMap(
        source=col.name,
        target=target,
        pg_type=pg,
        not_null=col.not_null or identity,
        default=None if identity else default,
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

    With `names` (lower-case name -> name as created), bare words that name a table or a
    column are quoted with their exact case: SQLite matches names without regard to case,
    PostgreSQL folds bare names to lower case.
    """
    out: list[str] = []
    pattern = re.compile(
        r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`((?:[^`]|``)*)`|\[([^\]]*)\]"
        r"|([A-Za-z_][A-Za-z0-9_$]*)(?=\s*(\()?)",
        re.S,
    )
    pos = 0
    for m in pattern.finditer(text):
        out.append(text[pos : m.start()])
        word = m.group(3)
        if m.group(1) is not None:
            out.append('"' + m.group(1).replace("``", "`").replace('"', '""') + '"')
        elif m.group(2) is not None:
            out.append('"' + m.group(2).replace('"', '""') + '"')
        elif (
            word is not None
            and names
            and m.group(4) is None  # a function call, not a name
            and word.upper() not in _SQL_WORDS
            and word.lower() in names
        ):
            out.append('"' + names[word.lower()].replace('"', '""') + '"')
        else:
            out.append(m.group(0))
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)
