"""ORM profiles: how Django, Prisma, SQLAlchemy (Alembic) and ActiveRecord store values in
SQLite, and what their PostgreSQL schemas expect, as a built-in plan.

Pipeline position: after the source schema is read, before planning. `resolve` detects the
ORM by its bookkeeping table (or takes the one named by `--profile`), derives a plan from
the source schema and the stored values (a `char(32)` column becomes uuid only when every
value is 32 hex digits), and lays the user's plan over it: where the user's plan says what
becomes of a column or a table's key, it wins; the profile fills the rest.

Bookkeeping tables are copied as they are in create mode. Loading into a schema the ORM
made on PostgreSQL (`--data-only`), the ORM's own migration rows win: its bookkeeping
tables are skipped. Django's `migrate` also fills django_content_type and auth_permission,
whose ids the data refers to, so the profile replaces their rows with the SQLite ones.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import sqlite3
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from lite2pg.coerce import PgType
from lite2pg.errors import UsageError
from lite2pg.plan import Plan, dump_plan, merge_plans, parse_plan
from lite2pg.source import Column, SourceSchema, Table, json_checked, quote_ident

__all__ = [
    "PROFILE_CHOICES",
    "Profile",
    "Rule",
    "TargetTypes",
    "build_profile",
    "detect",
    "resolve",
]

# `--profile` values: auto detects; none applies no profile.
PROFILE_CHOICES = ("auto", "none", "django", "prisma", "alembic", "rails")

# The column types of a schema that exists already: table -> column -> type, both in
# lower case (data-only loads match names ignoring case).
TargetTypes = Mapping[str, Mapping[str, PgType]]

_DATA_ONLY_SKIP = "not loaded: the ORM's own migration rows on PostgreSQL win (data-only)"
_DATA_ONLY_REPLACE = (
    "rows replaced by the SQLite rows (data-only): the ORM's migrate filled it on "
    "PostgreSQL, and the data refers to the SQLite ids"
)


@dataclasses.dataclass(frozen=True)
class Rule:
    """What the profile makes of one source column, and why."""

    table: str
    column: str
    cast: str | None  # the target type in create mode (None: lite2pg's own mapping)
    transforms: tuple[Any, ...] = ()  # plan transform specs, as TOML gives them
    kind: str = ""  # what the summary counts it as ("uuid", "jsonb", "timestamp(3)" ...)
    why: str = ""

    def line(self) -> str:
        """The rule as one line of `check`'s output."""
        parts = []
        if self.cast:
            parts.append(f'cast = "{self.cast}"')
        if self.transforms:
            parts.append(dump_plan({"transforms": list(self.transforms)}).strip())
        return f"{self.table}.{self.column}: {', '.join(parts)} ({self.why})"


@dataclasses.dataclass(frozen=True)
class Profile:
    """A detected ORM's built-in plan for one source database."""

    name: str  # django, prisma, alembic, rails
    label: str  # Django, Prisma, SQLAlchemy (Alembic), ActiveRecord
    found: str | None  # the bookkeeping table it was detected by (None: named by --profile)
    revision: str | None  # where the ORM's migrations stand, as it records it
    rules: tuple[Rule, ...] = ()
    skipped: Mapping[str, str] = dataclasses.field(default_factory=dict)  # table -> why
    replaced: Mapping[str, str] = dataclasses.field(default_factory=dict)  # table -> why
    notes: tuple[str, ...] = ()

    def raw(self) -> dict[str, Any]:
        """The profile as a plan's TOML data."""
        tables: dict[str, dict[str, Any]] = {}
        for rule in self.rules:
            table = tables.setdefault(rule.table, {})
            if rule.cast:
                table.setdefault("cast", {})[rule.column] = rule.cast
            if rule.transforms:
                columns = table.setdefault("columns", {})
                columns[rule.column] = {"transforms": list(rule.transforms)}
        for name in self.skipped:
            tables.setdefault(name, {})["skip"] = True
        for name in self.replaced:
            tables.setdefault(name, {})["replace"] = True
        return {"description": f"{self.label} profile (built-in)", "tables": tables}

    def toml(self) -> str:
        """The profile as a plan file a user can edit and pass with --plan."""
        return dump_plan(self.raw())

    def plan(self) -> Plan:
        return parse_plan(self.toml(), origin=f"{self.label} profile (built-in)")

    def summary(self) -> str:
        """One line: "Django profile applied: 3 columns as uuid, 2 as jsonb ..."."""
        kinds = Counter(rule.kind for rule in self.rules)
        parts = [
            f"{n} column{'s' if n > 1 else ''} as {kind}" if i == 0 else f"{n} as {kind}"
            for i, (kind, n) in enumerate(kinds.most_common())
        ]
        if self.skipped:
            parts.append(f"{', '.join(self.skipped)} not loaded (the ORM's own rows win)")
        if self.replaced:
            parts.append(f"{', '.join(self.replaced)} rows replaced")
        return f"{self.label} profile applied: {', '.join(parts) or 'nothing to change'}"

    def lines(self) -> list[str]:
        """The plan lines, one per column or table."""
        out = [rule.line() for rule in self.rules]
        out += [f"{name}: {why}" for name, why in self.skipped.items()]
        out += [f"{name}: {why}" for name, why in self.replaced.items()]
        return out

    def as_dict(self) -> dict[str, Any]:
        """What run.json and report.json keep of it."""
        return {
            "name": self.name,
            "label": self.label,
            "found": self.found,
            "revision": self.revision,
            "summary": self.summary(),
            "lines": self.lines(),
            "skipped": dict(self.skipped),
            "replaced": dict(self.replaced),
            "notes": list(self.notes),
        }

    def without(self, user: Plan | None) -> Profile:
        """The profile less what the user's plan decides: columns it casts, transforms or
        drops, and the skip/replace of tables where it sets them."""
        if user is None:
            return self
        keys = _user_table_keys(user)
        rules = tuple(
            r
            for r in self.rules
            if r.table not in user.tables or not user.tables[r.table].names_column(r.column)
        )
        skipped = {t: w for t, w in self.skipped.items() if "skip" not in keys.get(t, ())}
        replaced = {t: w for t, w in self.replaced.items() if "replace" not in keys.get(t, ())}
        return dataclasses.replace(self, rules=rules, skipped=skipped, replaced=replaced)


def _user_table_keys(user: Plan) -> dict[str, set[str]]:
    raw = tomllib.loads(user.text) if user.text else {}
    tables = raw.get("tables")
    if not isinstance(tables, dict):
        return {}
    return {name: set(spec) for name, spec in tables.items() if isinstance(spec, dict)}


@dataclasses.dataclass
class _Context:
    """What a profile builder looks at."""

    src: sqlite3.Connection
    data_only: bool
    casts: Mapping[str, str]  # --cast "table.column" -> type
    target_types: Callable[[], TargetTypes] | None
    user: Plan | None = None  # its table targets and column renames name the target's
    _targets: TargetTypes | None = None

    def wanted_type(self, table: str, column: str) -> str | None:
        """The type the user asks for (--cast) or, loading data only, the target's."""
        for key, typ in self.casts.items():
            t, _, c = key.rpartition(".")
            if t.lower() == table.lower() and c.lower() == column.lower():
                return typ.strip().lower()
        if self.data_only and self.target_types is not None:
            if self._targets is None:
                self._targets = self.target_types()
            tp = self.user.tables.get(table) if self.user is not None else None
            if tp is not None:
                table, column = tp.target, tp.target_column(column)
            pg = self._targets.get(table.lower(), {}).get(column.lower())
            return pg.sql.lower() if pg is not None else None
        return None

    def values(self, table: str, column: str) -> Iterable[Any]:
        """The distinct non-NULL values of a column, streamed."""
        q = quote_ident(column)
        return (
            row[0]
            for row in self.src.execute(
                f"SELECT DISTINCT {q} FROM {quote_ident(table)} WHERE {q} IS NOT NULL"
            )
        )


def _declared(column: Column) -> str:
    """The declared type, upper case, one space between words and none inside parens."""
    d = " ".join(column.declared_type.upper().replace('"', " ").split())
    return re.sub(r"\s*([(),])\s*", r"\1", d)


def _is_hex32(ctx: _Context, table: str, column: str) -> bool:
    q = quote_ident(column)
    row = ctx.src.execute(
        f"SELECT EXISTS (SELECT 1 FROM {quote_ident(table)} WHERE {q} IS NOT NULL AND NOT "
        f"(typeof({q}) = 'text' AND length({q}) = 32 AND {q} NOT GLOB '*[^0-9a-fA-F]*'))"
    ).fetchone()
    return not (row and row[0])


def _is_ip(ctx: _Context, table: str, column: str) -> bool:
    for value in ctx.values(table, column):
        if not isinstance(value, str):
            return False
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return False
    return True


def _enum_checked(table: Table, column: str) -> bool:
    """Whether a CHECK of the table limits the column to a list (SQLAlchemy's Enum)."""
    name = re.escape(column)
    pattern = re.compile(rf"^\(*\s*(?:\"{name}\"|`{name}`|\[{name}\]|{name})\s+IN\s*\(", re.I)
    return any(pattern.search(check) for check in table.checks)


def _in_foreign_key(table: Table, column: str) -> bool:
    return any(column in fk.columns for fk in table.foreign_keys)


# SQLAlchemy stores an Interval as the DATETIME 1970-01-01 + the interval.
_EPOCH_OFFSET = re.compile(r"19(69|7[0-9])-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d{1,6})?")


def _interval_like(ctx: _Context, table: str, column: str) -> bool:
    seen = False
    for value in ctx.values(table, column):
        if not isinstance(value, str) or not _EPOCH_OFFSET.fullmatch(value):
            return False
        seen = True
    return seen


# --- the ORMs ------------------------------------------------------------------------------

_Builder = Callable[[_Context, Table], list[Rule]]


def _django(ctx: _Context, table: Table) -> list[Rule]:
    rules: list[Rule] = []
    json_columns = json_checked(table)
    for col in table.columns:
        d = _declared(col)
        rule = None
        if d == "CHAR(32)" and _is_hex32(ctx, table.name, col.name):
            rule = Rule(table.name, col.name, "uuid", kind="uuid", why="UUIDField: 32 hex digits")
        elif d == "CHAR(39)" and _is_ip(ctx, table.name, col.name):
            why = "GenericIPAddressField: every value an IP address"
            rule = Rule(table.name, col.name, "inet", kind="inet", why=why)
        elif d == "TEXT" and col.name.lower() in json_columns:
            why = "JSONField: CHECK (JSON_VALID(...)) becomes the jsonb type"
            rule = Rule(table.name, col.name, "jsonb", kind="jsonb", why=why)
        elif d == "BOOL":
            rule = Rule(table.name, col.name, "boolean", kind="boolean", why="BooleanField: 0/1")
        elif d == "DATETIME":
            why = "DateTimeField: UTC text (USE_TZ = True)"
            rule = Rule(table.name, col.name, "timestamptz", kind="timestamptz", why=why)
        elif d.startswith("DECIMAL"):
            cast = "numeric" + d.removeprefix("DECIMAL").lower()
            rule = Rule(table.name, col.name, cast, kind="numeric", why="DecimalField")
        elif d == "BIGINT" and col.name not in table.primary_key:
            rule = _django_duration(ctx, table, col)
        if rule is not None:
            rules.append(rule)
    return rules


def _django_duration(ctx: _Context, table: Table, col: Column) -> Rule | None:
    wanted = ctx.wanted_type(table.name, col.name)
    if wanted is None or not wanted.startswith("interval"):
        return None
    return Rule(
        table.name,
        col.name,
        None if ctx.data_only else wanted,
        ({"interval": {"unit": "microseconds"}},),
        kind="interval",
        why="DurationField: bigint microseconds",
    )


def _django_notes(ctx: _Context, tables: Iterable[Table], rules: Iterable[Rule]) -> list[str]:
    rules = list(rules)
    ruled = {(r.table, r.column) for r in rules}
    ruled_types = {(r.table, r.column) for r in rules if r.cast and r.cast != "numeric"}
    maybe = [
        f"{t.name}.{c.name}"
        for t in tables
        for c in t.columns
        if _declared(c) == "BIGINT"
        and c.name not in t.primary_key
        and not _in_foreign_key(t, c.name)
        and (t.name, c.name) not in ruled
    ]
    notes: list[str] = []
    if maybe:
        notes.append(
            f"bigint column(s) {', '.join(maybe)} may be DurationFields (microseconds), which "
            "SQLite cannot tell from BigIntegerFields: for each that is, add "
            f"--cast {maybe[0]}=interval (the Django profile reads the microseconds)"
        )
    bare = [
        f"{t.name}.{c.name}"
        for t in tables
        for c in t.columns
        if _declared(c) == "DECIMAL"
        and (t.name, c.name) not in ruled_types
        and ctx.wanted_type(t.name, c.name) is None
    ]
    if bare:
        notes.append(
            f"decimal column(s) {', '.join(bare)} have no digits in SQLite (Django declares a "
            "bare decimal): add --cast "
            f"{bare[0]}=numeric(MAX_DIGITS,DECIMAL_PLACES) from each DecimalField, or the app "
            "reads values back at another scale (12.5 for 12.50)"
        )
    return notes


def _prisma(ctx: _Context, table: Table) -> list[Rule]:
    rules: list[Rule] = []
    own = table.name == "_prisma_migrations"  # Prisma makes this one timestamptz on PostgreSQL
    for col in table.columns:
        d = _declared(col)
        if d == "DATETIME":
            cast = "timestamptz" if own else "timestamp(3)"
            why = "DateTime: epoch milliseconds (or ISO text)"
            rules.append(
                Rule(
                    table.name,
                    col.name,
                    cast,
                    ({"timestamp": {"epoch": "milliseconds"}},),
                    kind=cast,
                    why=why,
                )
            )
        elif d == "BOOLEAN":
            rules.append(Rule(table.name, col.name, "boolean", kind="boolean", why="Boolean: 0/1"))
        elif d in ("JSON", "JSONB"):
            why = "Json: JSON text"
            rules.append(Rule(table.name, col.name, "jsonb", kind="jsonb", why=why))
        elif d == "DECIMAL":
            why = "Decimal: DECIMAL(65,30) as Prisma makes it on PostgreSQL"
            rules.append(Rule(table.name, col.name, "decimal(65,30)", kind="decimal", why=why))
        elif d == "BIGINT":
            rules.append(Rule(table.name, col.name, "bigint", kind="bigint", why="BigInt"))
        elif d == "INTEGER" and not own:
            why = "Int: 32-bit INTEGER as Prisma makes it on PostgreSQL"
            rules.append(Rule(table.name, col.name, "integer", kind="integer", why=why))
    return rules


_VARCHAR = re.compile(r"VARCHAR\((\d+)\)")
_NUMERIC_PS = re.compile(r"NUMERIC\((\d+),(\d+)\)")


def _alembic(ctx: _Context, table: Table) -> list[Rule]:
    rules: list[Rule] = []
    for col in table.columns:
        d = _declared(col)
        name = col.name
        if d == "CHAR(32)" and _is_hex32(ctx, table.name, name):
            rules.append(Rule(table.name, name, "uuid", kind="uuid", why="Uuid: 32 hex digits"))
        elif d == "JSON":
            rules.append(Rule(table.name, name, "jsonb", kind="jsonb", why="JSON: JSON text"))
        elif d == "DATETIME" and _interval_like(ctx, table.name, name):
            why = "Interval: a DATETIME offset from 1970-01-01"
            spec = ({"interval": {"epoch_offset": True}},)
            rules.append(Rule(table.name, name, "interval", spec, kind="interval", why=why))
        elif d == "DATETIME":
            why = "DateTime: naive text (a timezone=True column reads as UTC: cast timestamptz)"
            rules.append(Rule(table.name, name, "timestamp", kind="timestamp", why=why))
        elif (m := _VARCHAR.fullmatch(d)) and _enum_checked(table, name):
            why = "Enum: VARCHAR with CHECK IN (...), kept with its CHECK"
            cast = f"varchar({m.group(1)})"
            rules.append(Rule(table.name, name, cast, kind="enum varchar", why=why))
        elif m := _NUMERIC_PS.fullmatch(d):
            cast = f"numeric({m.group(1)},{m.group(2)})"
            rules.append(Rule(table.name, name, cast, kind="numeric", why="Numeric(p, s)"))
        elif d == "BOOLEAN":
            rules.append(Rule(table.name, name, "boolean", kind="boolean", why="Boolean: 0/1"))
    return rules


def _rails(ctx: _Context, table: Table) -> list[Rule]:
    rules: list[Rule] = []
    for col in table.columns:
        d = _declared(col)
        name = col.name
        if d.startswith("DATETIME"):
            why = "datetime: UTC text, timestamp(6) as Rails makes it on PostgreSQL"
            rules.append(Rule(table.name, name, "timestamp(6)", kind="timestamp(6)", why=why))
        elif d == "BOOLEAN":
            why = "boolean: 't'/'f' (older Rails) or 1/0"
            rules.append(Rule(table.name, name, "boolean", ("boolean",), kind="boolean", why=why))
        elif d == "JSON":
            rules.append(Rule(table.name, name, "jsonb", kind="jsonb", why="json: JSON text"))
    return rules


@dataclasses.dataclass(frozen=True)
class _Orm:
    name: str
    label: str
    markers: tuple[str, ...]  # all present: the ORM wrote this database
    bookkeeping: tuple[str, ...]  # its migration rows: theirs win in data-only loads
    replaced: tuple[str, ...]  # filled by its migrate on PostgreSQL: ours win
    build: _Builder
    revision_sql: str


_ORMS = (
    _Orm(
        "django", "Django", ("django_migrations",), ("django_migrations",),
        ("django_content_type", "auth_permission"), _django,
        "SELECT count(*) || ' migrations, last ' || (SELECT app || '.' || name FROM "
        "django_migrations ORDER BY id DESC LIMIT 1) FROM django_migrations",
    ),
    _Orm(
        "prisma", "Prisma", ("_prisma_migrations",), ("_prisma_migrations",), (), _prisma,
        "SELECT migration_name FROM _prisma_migrations ORDER BY migration_name DESC LIMIT 1",
    ),
    _Orm(
        "alembic", "SQLAlchemy (Alembic)", ("alembic_version",), ("alembic_version",), (),
        _alembic, "SELECT group_concat(version_num, ', ') FROM alembic_version",
    ),
    _Orm(
        "rails", "ActiveRecord", ("schema_migrations", "ar_internal_metadata"),
        ("schema_migrations", "ar_internal_metadata"), (), _rails,
        "SELECT max(version) FROM schema_migrations",
    ),
)  # fmt: skip
_BY_NAME = {orm.name: orm for orm in _ORMS}


def detect(schema: SourceSchema) -> tuple[str, str] | None:
    """The ORM that wrote the database, by its bookkeeping tables: (name, table found)."""
    present = {t.name.lower() for t in schema.tables}
    for orm in _ORMS:
        if all(m in present for m in orm.markers):
            return orm.name, orm.markers[0]
    return None


def build_profile(
    name: str,
    src: sqlite3.Connection,
    schema: SourceSchema,
    *,
    data_only: bool = False,
    casts: Mapping[str, str] | None = None,
    target_types: Callable[[], TargetTypes] | None = None,
    found: str | None = None,
    user: Plan | None = None,
) -> Profile:
    """The profile of ORM `name` for this source: rules from its declared types and values;
    with `data_only`, its bookkeeping tables skipped and the tables it fills replaced.
    `user` (the user's plan) only names target tables and columns here; see `resolve`."""
    orm = _BY_NAME[name]
    ctx = _Context(src, data_only, casts or {}, target_types, user)
    by_lower = {t.name.lower(): t.name for t in schema.tables}
    skipped = {by_lower[b]: _DATA_ONLY_SKIP for b in orm.bookkeeping if data_only and b in by_lower}
    replaced = {
        by_lower[r]: _DATA_ONLY_REPLACE for r in orm.replaced if data_only and r in by_lower
    }
    rules = [r for t in schema.tables if t.name not in skipped for r in orm.build(ctx, t)]
    notes = _django_notes(ctx, schema.tables, rules) if name == "django" else []
    return Profile(
        name=orm.name,
        label=orm.label,
        found=found,
        revision=_revision(src, orm) if found else None,
        rules=tuple(rules),
        skipped=skipped,
        replaced=replaced,
        notes=tuple(notes),
    )


def _revision(src: sqlite3.Connection, orm: _Orm) -> str | None:
    try:
        row = src.execute(orm.revision_sql).fetchone()
    except sqlite3.Error:
        return None  # a bookkeeping table of another shape: the profile does not need it
    return str(row[0]) if row and row[0] is not None else None


def resolve(
    choice: str,
    src: sqlite3.Connection,
    schema: SourceSchema,
    user_plan: Plan | None,
    *,
    data_only: bool = False,
    casts: Mapping[str, str] | None = None,
    target_types: Callable[[], TargetTypes] | None = None,
) -> tuple[Plan | None, Profile | None]:
    """The plan a run uses (the profile with the user's plan over it) and the profile
    applied; `choice` is a `--profile` value. Without a profile, the user's plan as it is."""
    if choice not in PROFILE_CHOICES:
        raise UsageError(
            f"--profile {choice!r} is not a profile", f"use one of {', '.join(PROFILE_CHOICES)}"
        )
    if choice == "none":
        return user_plan, None
    found: str | None = None
    if choice == "auto":
        detected = detect(schema)
        if detected is None:
            return user_plan, None
        choice, found = detected
    else:
        present = {t.name.lower() for t in schema.tables}
        found = next((m for m in _BY_NAME[choice].markers if m in present), None)
    if user_plan is not None:
        # The user's mistakes are named against the user's own file, before any merge.
        user_plan.check_tables(t.name for t in schema.tables)
        for t in schema.tables:
            user_plan.check_columns(t.name, [c.name for c in t.columns])
    profile = build_profile(
        choice, src, schema, data_only=data_only, casts=casts, target_types=target_types,
        found=found, user=user_plan,
    ).without(user_plan)  # fmt: skip
    base = profile.plan()
    if user_plan is None:
        return base, profile
    origin = f"{user_plan.origin} over the {profile.label} profile"
    return merge_plans(base, user_plan, origin), profile
