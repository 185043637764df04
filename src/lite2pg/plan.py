"""A migration plan: TOML that says how each SQLite table becomes its PostgreSQL table.

Every key is optional; a table the plan does not name is copied as it is. Columns are
always named by their SQLite (source) name, except in `add`, which names new columns::

    description = "Legacy helpdesk -> new app"
    schema = "helpdesk_schema.sql"       # the target's DDL, relative to this file
    names = "fold"                       # "fold": names declared unquoted in SQLite fold
                                         # to lower case (quoted ones keep theirs);
                                         # "keep": every name keeps its case

    [tables.users]
    target = "users"                     # target table name (default: the same)
    skip = false                         # true: leave the whole table behind
    rename = { password = "passwordHash" }
    drop = ["email", "is_active"]
    cast = { id = "bigint" }             # override the target type of a column
    add = { source = { type = "text", default = "legacy" } }   # default is optional
    where = "username <> 'test'"         # SQLite expression; rows not matching are
                                         # left behind and counted as filtered
    replace = false                      # --data-only: true empties the target table
                                         # first (its rows are replaced by these)

    [tables.users.columns.password]      # transforms run in order on the source value
    transforms = [{ hash_password = { algorithm = "argon2id", empty = "unusable" } }]

    [tables.orders.columns.total]
    round = true                         # round to the target's numeric(p,s), money,
                                         # timestamptz(p) or time(p) instead of rejecting

    [tables.tickets.columns.priority]
    transforms = [
      "strip",                           # a transform without options: its name alone
      { map = { values = { med = "medium", "1" = "low" }, ignore_case = true } },
      { default = "medium" },            # map keeps NULL; default replaces it
    ]

    # A long transform reads better as TOML's array of tables: one [[...]] per step.
    [[tables.tickets.columns.status.transforms]]
    [tables.tickets.columns.status.transforms.map]
    ignore_case = true
    trim = true
    on_unknown = "reject"                # "reject" | "keep" | "null" | "default:VALUE"
    values = { "in progress" = "in_progress", wip = "in_progress", new = "open" }

    [[tables.tickets.columns.status.transforms]]
    required = true                      # reject NULL with a clear reason

    [tables.audit_logs.foreign_keys.user_id]   # keyed by the FK column(s): "a,b"
    on_orphan = "null"                   # "reject" (default) | "null" | "keep"

Transforms: hash_password, map, timestamp, boolean, integer, numeric, strip, lower, nullif,
default, required; each module under `lite2pg.transforms` documents its options. A column
whose chain has `hash_password` (which must come last) is secret.

Errors are `PlanError(key, problem)` with the dotted key at fault, e.g.
`tables.tickets.columns.status.transforms[1].map.on_unknown`, and the line of the file
where that key was found.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.resources
import json
import re
import sqlite3
import tomllib
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from lite2pg.errors import PlanError
from lite2pg.transforms import Spec, Transform, compile_transform, compose, identity, parse_spec
from lite2pg.transforms._options import (
    Options,
    Scalar,
    check_scalar,
    join_key,
    type_name,
    unknown_key_problem,
)
from lite2pg.transforms.passwords import PasswordPolicy, parse_policy

__all__ = [
    "DEFAULT_ON_ORPHAN",
    "AddedColumn",
    "ColumnPlan",
    "ForeignKeyPlan",
    "Plan",
    "TablePlan",
    "builtin_plans",
    "dump_plan",
    "load_plan",
    "merge_plans",
    "orphan_named",
    "orphan_policy",
    "parse_plan",
]

OrphanPolicy = Literal["reject", "null", "keep"]

# An orphan row is rejected unless the plan says otherwise: the FK would not hold anyway.
DEFAULT_ON_ORPHAN: OrphanPolicy = "reject"


def orphan_named(tp: TablePlan | None, columns: Sequence[str]) -> bool:
    """Whether the plan names the FK on these columns (else the default policy applies)."""
    return tp is not None and tuple(columns) in tp.foreign_keys


def orphan_policy(tp: TablePlan | None, columns: Sequence[str]) -> OrphanPolicy:
    """The orphan policy of a table's FK on these source columns: the plan's, or the
    default for every FK the plan does not name, also of a table the plan leaves out."""
    return tp.on_orphan(columns) if tp is not None else DEFAULT_ON_ORPHAN


# PostgreSQL silently truncates longer identifiers (NAMEDATALEN - 1 bytes).
MAX_IDENTIFIER_BYTES = 63

# Type names go into DDL as text (psycopg cannot quote a type), so only plain forms pass:
# words, an optional schema, (p) or (p, s), and [] suffixes.
_TYPE = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?(?: [A-Za-z_][A-Za-z0-9_]*)*"
    r"(?: ?\( ?[0-9]+ ?(?:, ?[0-9]+ ?)?\))?(?:\[\])*"
)

# Reads a file the plan refers to (`schema`), by its path relative to the plan.
_Reader = Callable[[str], str]

_BUILTIN_PACKAGE = "lite2pg"
_BUILTIN_DIR = "plans"


@dataclasses.dataclass(frozen=True)
class AddedColumn:
    """A target column the source lacks, filled with `default` (None: NULL)."""

    name: str
    type: str
    default: Scalar | None = None


@dataclasses.dataclass(frozen=True)
class ForeignKeyPlan:
    """What to do with rows whose FK `columns` point at no parent row."""

    columns: tuple[str, ...]
    on_orphan: OrphanPolicy = DEFAULT_ON_ORPHAN


@dataclasses.dataclass(frozen=True)
class ColumnPlan:
    """One source column's transforms, compiled.

    `chain` runs every step (hashing inline, one value at a time). To hash on all cores,
    run `before_hash` on each value and give the results to a `PasswordHasher(password)`.
    """

    name: str
    specs: tuple[Spec, ...]
    chain: Transform
    before_hash: Transform
    password: PasswordPolicy | None = None
    # `round = true`: a value with more decimals or fraction digits than the target column
    # keeps (numeric(p,s), money, timestamptz(p), time(p)) is rounded instead of rejected.
    round: bool = False

    @property
    def secret(self) -> bool:
        """No value of this column may appear in a reason, a log line or a report."""
        return self.password is not None


@dataclasses.dataclass(frozen=True)
class TablePlan:
    """How one source table is migrated."""

    source: str
    target: str
    skip: bool = False
    target_given: bool = False  # `target` is written in the plan: taken exactly as it is
    rename: Mapping[str, str] = dataclasses.field(default_factory=dict)
    drop: frozenset[str] = frozenset()
    add: tuple[AddedColumn, ...] = ()
    cast: Mapping[str, str] = dataclasses.field(default_factory=dict)
    where: str | None = None
    columns: Mapping[str, ColumnPlan] = dataclasses.field(default_factory=dict)
    foreign_keys: Mapping[tuple[str, ...], ForeignKeyPlan] = dataclasses.field(default_factory=dict)
    # --data-only: the target table's rows (an ORM fills some when it migrates) are
    # replaced by the source's, in the load's transaction, instead of refusing a non-empty one.
    replace: bool = False
    # `deactivated = "may-log-in"`: dropping the column that marks accounts deactivated,
    # while their passwords go on, is wanted (ledger.py refuses it otherwise).
    deactivated: str | None = None

    def target_column(self, column: str) -> str:
        """The target name of a source column."""
        return self.rename.get(column, column)

    def target_columns(self, source_columns: Iterable[str]) -> tuple[str, ...]:
        """Target column names for these source columns: drops removed, renames applied,
        added columns appended."""
        kept = [self.target_column(c) for c in source_columns if c not in self.drop]
        return (*kept, *(a.name for a in self.add))

    def names_column(self, column: str) -> bool:
        """Whether this plan says what becomes of a source column's values (casts,
        transforms or drops it): a plan laid over another takes the whole column then."""
        return column in self.cast or column in self.columns or column in self.drop

    def chain(self, column: str) -> Transform:
        """The compiled transform chain of a source column (identity when it has none)."""
        plan = self.columns.get(column)
        return plan.chain if plan is not None else identity

    def is_secret(self, column: str) -> bool:
        """Whether a source column holds secrets (it is hashed)."""
        plan = self.columns.get(column)
        return plan is not None and plan.secret

    @property
    def secret_columns(self) -> frozenset[str]:
        """Source columns holding secrets."""
        return frozenset(name for name, plan in self.columns.items() if plan.secret)

    def on_orphan(self, columns: Sequence[str]) -> OrphanPolicy:
        """The orphan policy of the FK on these source columns."""
        fk = self.foreign_keys.get(tuple(columns))
        return fk.on_orphan if fk is not None else DEFAULT_ON_ORPHAN


@dataclasses.dataclass(frozen=True)
class Plan:
    """A whole plan: per source table, a `TablePlan`; plus the target schema DDL, if any.

    `schema_file` is the plan's `schema` as written; `schema_sql` its text (None when the
    plan was parsed from text without a `read` function).
    """

    tables: Mapping[str, TablePlan]
    origin: str = "<empty plan>"
    description: str = ""
    schema_file: str | None = None
    schema_sql: str | None = None
    text: str = dataclasses.field(default="", repr=False, compare=False)
    names: str | None = None  # "fold" | "keep"; None: not said (the run's option decides)

    @property
    def replaced_tables(self) -> frozenset[str]:
        """Source tables whose target rows a data-only load replaces (`replace = true`)."""
        return frozenset(name for name, tp in self.tables.items() if tp.replace and not tp.skip)

    def table(self, name: str) -> TablePlan:
        """The plan of a source table; one that changes nothing if the plan does not name it."""
        return self.tables.get(name) or TablePlan(source=name, target=name)

    def check_tables(self, source_tables: Iterable[str]) -> None:
        """Fail on a planned table the source does not have (a typo, most likely)."""
        present = set(source_tables)
        for name in self.tables:
            if name not in present:
                self._fail(join_key("tables", name), _missing("table", name, present))

    def check_columns(self, table: str, source_columns: Iterable[str]) -> None:
        """Fail on a column the plan names for `table` that the source table does not have."""
        plan = self.tables.get(table)
        if plan is None:
            return
        present = list(source_columns)
        base = join_key("tables", table)
        named: list[tuple[str, str]] = [
            *((join_key(join_key(base, "rename"), c), c) for c in plan.rename),
            *((join_key(base, "drop"), c) for c in sorted(plan.drop)),
            *((join_key(join_key(base, "cast"), c), c) for c in plan.cast),
            *((join_key(join_key(base, "columns"), c), c) for c in plan.columns),
        ]
        for columns in plan.foreign_keys:
            fk_key = join_key(join_key(base, "foreign_keys"), ",".join(columns))
            named.extend((fk_key, c) for c in columns)
        for key, column in named:
            if column not in present:
                self._fail(key, _missing(f"column of {table}", column, present))
        targets = plan.target_columns(present)
        for name in {t for t in targets if targets.count(t) > 1}:
            self._fail(base, f"two target columns would be named {name!r}")

    def _fail(self, key: str, problem: str) -> None:
        raise PlanError(key, _with_line(problem, self.text, key, self.origin))


# How SQLite names become PostgreSQL names (see `schema.pg_name`); the first is the default.
NAMES_MODES = ("fold", "keep")


def names_mode(option: str | None, plan: Plan | None) -> str:
    """The names mode of a run: the option, else the plan's `names`, else "fold"."""
    return option or (plan.names if plan is not None else None) or NAMES_MODES[0]


def _missing(what: str, name: str, present: Iterable[str]) -> str:
    return unknown_key_problem(name, present).replace("unknown key", f"no such {what}", 1)


def builtin_plans() -> list[str]:
    """Names of the plans shipped with lite2pg (e.g. "helpdesk")."""
    folder = importlib.resources.files(_BUILTIN_PACKAGE) / _BUILTIN_DIR
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    )


def load_plan(path_or_builtin_name: str) -> Plan:
    """Load and check a plan from a TOML file, or a built-in plan by name (e.g. "helpdesk")."""
    name = path_or_builtin_name
    if "/" not in name and "\\" not in name and not name.endswith(".toml"):
        builtins = builtin_plans()
        if name in builtins:
            folder = importlib.resources.files(_BUILTIN_PACKAGE) / _BUILTIN_DIR
            text = (folder / f"{name}.toml").read_text(encoding="utf-8")

            def read_builtin(relative: str) -> str:
                return (folder / relative).read_text(encoding="utf-8")

            return parse_plan(text, origin=f"{name}.toml (built-in)", read=read_builtin)
        if not Path(name).exists():
            raise PlanError(
                name, f"no such plan file or built-in plan (built-ins: {', '.join(builtins)})"
            )
    path = Path(name)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError(name, f"cannot read the plan: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PlanError(name, "the plan is not UTF-8 text") from None

    def read_relative(relative: str) -> str:
        return (path.parent / relative).read_text(encoding="utf-8")

    return parse_plan(text, origin=str(path), read=read_relative)


def parse_plan(text: str, origin: str = "<plan>", read: _Reader | None = None) -> Plan:
    """Check and compile a plan given as TOML text; `read` loads files it refers to."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(origin, f"not valid TOML: {exc}") from None
    try:
        return _build(raw, text, origin, read)
    except PlanError as exc:
        raise PlanError(exc.key, _with_line(exc.problem, text, exc.key, origin)) from None


def merge_plans(base: Plan, over: Plan, origin: str) -> Plan:
    """`over` (a user's plan) laid over `base` (a built-in one, e.g. an ORM profile).

    Where `over` names a table's key (skip, target, where, ...) or says what becomes of a
    column (cast, transforms, drop), it wins; `base` fills the rest. The result's text is
    the merged TOML, so it reads back (run.json) as the same plan.
    """
    raw_base = tomllib.loads(base.text) if base.text else {}
    raw_over = tomllib.loads(over.text) if over.text else {}
    merged: dict[str, object] = {k: v for k, v in raw_base.items() if k != "tables"}
    merged.update({k: v for k, v in raw_over.items() if k != "tables"})
    tables: dict[str, object] = dict(_mapping(raw_base.get("tables")))
    for name, table in _mapping(raw_over.get("tables")).items():
        under = _mapping(tables.get(name))
        tables[name] = _merge_table(under, _mapping(table)) if under else table
    merged["tables"] = tables
    plan = parse_plan(dump_plan(merged), origin=origin)
    return dataclasses.replace(plan, schema_file=over.schema_file, schema_sql=over.schema_sql)


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _merge_table(base: Mapping[str, object], over: Mapping[str, object]) -> dict[str, object]:
    out = dict(over)
    drop = over.get("drop")
    named = (
        set(_mapping(over.get("cast")))
        | set(_mapping(over.get("columns")))
        | (set(drop) if isinstance(drop, list) else set())
    )
    for key, value in base.items():
        if key in ("cast", "columns"):
            both = {c: v for c, v in _mapping(value).items() if c not in named}
            both.update(_mapping(over.get(key)))
            if both:
                out[key] = both
        elif key not in out:
            out[key] = value
    return out


def dump_plan(raw: Mapping[str, object]) -> str:
    """A plan as TOML text (`parse_plan` reads it back as the same plan): top-level keys,
    then one [tables.NAME] section per table and one section per transformed column."""
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in raw.items() if k != "tables"]
    for name, table in _mapping(raw.get("tables")).items():
        header = f"tables.{_toml_key(name)}"
        lines += ["", f"[{header}]"]
        spec = _mapping(table)
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in spec.items() if k != "columns"]
        for column, column_spec in _mapping(spec.get("columns")).items():
            lines.append(f"[{header}.columns.{_toml_key(column)}]")
            lines += [
                f"{_toml_key(k)} = {_toml_value(v)}" for k, v in _mapping(column_spec).items()
            ]
    return "\n".join(lines).lstrip("\n") + "\n"


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_string(text: str) -> str:
    # JSON's escapes are TOML's; TOML also wants DEL escaped.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _build(raw: Mapping[str, object], text: str, origin: str, read: _Reader | None) -> Plan:
    top = Options(raw, "")
    description = top.get_optional_str("description") or ""
    schema_file = top.get_optional_str("schema")
    names = top.get_str("names", "", NAMES_MODES) or None
    raw_tables = top.get("tables")
    top.finish()
    schema_sql = None
    if schema_file is not None and read is not None:
        try:
            schema_sql = read(schema_file)
        except (OSError, UnicodeDecodeError) as exc:
            raise PlanError("schema", f"cannot read {schema_file!r}: {exc}") from None
    tables: dict[str, TablePlan] = {}
    if raw_tables is not None:
        if not isinstance(raw_tables, Mapping):
            raise PlanError("tables", f"expected a table, got {type_name(raw_tables)}")
        targets: dict[str, str] = {}
        for name, raw_table in raw_tables.items():
            key = join_key("tables", name)
            plan = _table(name, raw_table, key)
            if not plan.skip and plan.target in targets:
                raise PlanError(
                    join_key(key, "target"),
                    f"{targets[plan.target]!r} is also migrated into {plan.target!r}",
                )
            if not plan.skip:
                targets[plan.target] = name
            tables[name] = plan
    return Plan(
        tables=types.MappingProxyType(tables),
        origin=origin,
        description=description,
        schema_file=schema_file,
        schema_sql=schema_sql,
        text=text,
        names=names,
    )


def _identifier(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise PlanError(key, f"expected a name (a string), got {type_name(value)}")
    if not value or "\x00" in value:
        raise PlanError(key, "expected a non-empty name")
    if len(value.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise PlanError(
            key, f"{value!r} is longer than PostgreSQL's {MAX_IDENTIFIER_BYTES}-byte limit"
        )
    return value


def _type(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise PlanError(key, f"expected a type name (a string), got {type_name(value)}")
    if not _TYPE.fullmatch(value):
        raise PlanError(
            key,
            f"{value!r} is not a plain type name (e.g. text, bigint, numeric(10, 2), "
            "timestamp with time zone, text[])",
        )
    return value


def _names(raw: object, key: str) -> dict[str, object]:
    if not isinstance(raw, Mapping):
        raise PlanError(key, f"expected a table, got {type_name(raw)}")
    return dict(raw)


def _table(name: str, raw: object, key: str) -> TablePlan:
    opts = Options(raw, key)
    target_given = opts.get("target") is not None
    target = _identifier(opts.get("target") or name, opts.key_of("target"))
    skip = opts.get_bool("skip", False)
    replace = opts.get_bool("replace", False)
    raw_rename = opts.get("rename")
    raw_drop = opts.get("drop")
    raw_add = opts.get("add")
    raw_cast = opts.get("cast")
    where = opts.get_optional_str("where")
    deactivated = opts.get_optional_str("deactivated")
    if deactivated not in (None, "may-log-in"):
        raise PlanError(opts.key_of("deactivated"), 'the one value is "may-log-in"')
    raw_columns = opts.get("columns")
    raw_fks = opts.get("foreign_keys")
    opts.finish()

    drop: list[str] = []
    if raw_drop is not None:
        drop_key = opts.key_of("drop")
        if not isinstance(raw_drop, list):
            raise PlanError(
                drop_key, f"expected an array of column names, got {type_name(raw_drop)}"
            )
        for i, column in enumerate(raw_drop):
            column = _identifier(column, join_key(drop_key, i))
            if column in drop:
                raise PlanError(join_key(drop_key, i), f"{column!r} is listed twice")
            drop.append(column)

    def not_dropped(column: str, key: str) -> None:
        if column in drop:
            raise PlanError(key, f"column {column!r} is dropped; remove it from drop or here")

    rename: dict[str, str] = {}
    if raw_rename is not None:
        seen: dict[str, str] = {}
        for column, new in _names(raw_rename, opts.key_of("rename")).items():
            entry = join_key(opts.key_of("rename"), column)
            not_dropped(column, entry)
            new = _identifier(new, entry)
            if new in seen:
                raise PlanError(entry, f"{seen[new]!r} is also renamed to {new!r}")
            seen[new] = column
            rename[column] = new

    add: list[AddedColumn] = []
    if raw_add is not None:
        targets = set(rename.values())
        for column, spec in _names(raw_add, opts.key_of("add")).items():
            entry = join_key(opts.key_of("add"), column)
            column = _identifier(column, entry)
            if column in targets:
                raise PlanError(entry, f"a renamed column is already called {column!r}")
            col_opts = Options(spec, entry)
            raw_type = col_opts.get("type")
            if raw_type is None:
                raise PlanError(col_opts.key_of("type"), 'missing; e.g. type = "text"')
            col_type = _type(raw_type, col_opts.key_of("type"))
            raw_default = col_opts.get("default")
            default = None
            if raw_default is not None:
                default = check_scalar(raw_default, col_opts.key_of("default"))
            col_opts.finish()
            add.append(AddedColumn(column, col_type, default))

    cast: dict[str, str] = {}
    if raw_cast is not None:
        for column, raw_cast_type in _names(raw_cast, opts.key_of("cast")).items():
            entry = join_key(opts.key_of("cast"), column)
            not_dropped(column, entry)
            cast[column] = _type(raw_cast_type, entry)

    if where is not None:
        _check_where(where, opts.key_of("where"))

    columns: dict[str, ColumnPlan] = {}
    if raw_columns is not None:
        for column, spec in _names(raw_columns, opts.key_of("columns")).items():
            entry = join_key(opts.key_of("columns"), column)
            not_dropped(column, entry)
            columns[column] = _column(column, spec, entry)

    foreign_keys: dict[tuple[str, ...], ForeignKeyPlan] = {}
    if raw_fks is not None:
        for fk_name, spec in _names(raw_fks, opts.key_of("foreign_keys")).items():
            entry = join_key(opts.key_of("foreign_keys"), fk_name)
            fk_columns = tuple(part.strip() for part in fk_name.split(","))
            if not all(fk_columns):
                raise PlanError(entry, 'expected FK column names, e.g. "user_id" or "a,b"')
            for column in fk_columns:
                not_dropped(column, entry)
            fk_opts = Options(spec, entry)
            policy = fk_opts.get_str("on_orphan", DEFAULT_ON_ORPHAN, ("reject", "null", "keep"))
            fk_opts.finish()
            foreign_keys[fk_columns] = ForeignKeyPlan(fk_columns, policy)  # type: ignore[arg-type]

    return TablePlan(
        source=name,
        target=target,
        skip=skip,
        target_given=target_given,
        rename=types.MappingProxyType(rename),
        drop=frozenset(drop),
        add=tuple(add),
        cast=types.MappingProxyType(cast),
        where=where,
        columns=types.MappingProxyType(columns),
        foreign_keys=types.MappingProxyType(foreign_keys),
        replace=replace,
        deactivated=deactivated,
    )


def _column(name: str, raw: object, key: str) -> ColumnPlan:
    opts = Options(raw, key)
    raw_specs = opts.get("transforms")
    round_ = opts.get_bool("round", False)
    opts.finish()
    specs_key = opts.key_of("transforms")
    if raw_specs is None and opts.has("round"):
        raw_specs = []
    if raw_specs is None:
        raise PlanError(specs_key, 'missing; e.g. transforms = ["strip"]')
    if not isinstance(raw_specs, list):
        raise PlanError(specs_key, f"expected an array of transforms, got {type_name(raw_specs)}")
    specs = tuple(parse_spec(spec, join_key(specs_key, i)) for i, spec in enumerate(raw_specs))
    password: PasswordPolicy | None = None
    for i, spec in enumerate(specs):
        if spec.name == "hash_password":
            if i != len(specs) - 1:
                raise PlanError(
                    spec.key, "must be the last transform: nothing may change a hash after it"
                )
            password = parse_policy(spec.options, spec.key)
    secret = password is not None
    steps = [compile_transform(spec, secret=secret) for spec in specs]
    before = steps[:-1] if secret else steps
    return ColumnPlan(
        name=name,
        specs=specs,
        chain=compose(steps),
        before_hash=compose(before),
        password=password,
        round=round_,
    )


def _check_where(expression: str, key: str) -> None:
    """Catch SQL syntax errors now; unknown columns only show against the real source."""
    if not expression.strip():
        raise PlanError(key, "is empty; remove it to keep every row")
    db = sqlite3.connect(":memory:")
    try:
        db.execute(f"SELECT 1 WHERE ({expression})")
    except (sqlite3.Warning, sqlite3.ProgrammingError):  # more than one statement
        raise PlanError(key, "must be a single SQLite expression") from None
    except sqlite3.Error as exc:
        message = str(exc)
        if "syntax error" in message or "incomplete input" in message or "unrecognized" in message:
            raise PlanError(key, f"not a valid SQLite expression: {message}") from None
    finally:
        db.close()


# --- finding the line of a key ------------------------------------------------------------

_PATH_PART = re.compile(r'"((?:[^"\\]|\\.)*)"|([A-Za-z0-9_-]+)|\[([0-9]+)\]|\.')


def _path(key: str) -> list[str | int]:
    parts: list[str | int] = []
    for match in _PATH_PART.finditer(key):
        quoted, bare, index = match.groups()
        if quoted is not None:
            parts.append(quoted.replace('\\"', '"'))
        elif bare is not None:
            parts.append(bare)
        elif index is not None:
            parts.append(int(index))
    return parts


def _key_pattern(name: str) -> re.Pattern[str]:
    forms = [re.escape(f'"{name}"'), re.escape(f"'{name}'")]
    if re.fullmatch(r"[A-Za-z0-9_-]+", name):
        forms.append(re.escape(name))
    return re.compile(rf"(?:^|(?<=[\s{{,.\[]))(?:{'|'.join(forms)})[ \t]*(?=[=.\]])", re.MULTILINE)


def _skip_elements(text: str, start: int, count: int) -> int:
    """From just after an inline array's `[`, the offset of its element number `count`."""
    depth = 0
    i = start
    quote = ""
    while i < len(text) and count > 0:
        char = text[i]
        if quote:
            if char == "\\" and quote == '"':
                i += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "#":
            i = text.find("\n", i)
            if i < 0:
                return len(text)
        elif char in "[{":
            depth += 1
        elif char in "]}":
            if depth == 0:
                return i
            depth -= 1
        elif char == "," and depth == 0:
            count -= 1
        i += 1
    return i


def find_line(text: str, key: str) -> int | None:
    """The 1-based line where the dotted `key` is written, by a forgiving scan of the text.

    Each name in the path is searched after the previous one; an index skips array
    elements (inline arrays) or repeated `[[headers]]`. None when the last name is not found.
    """
    parts = _path(key)
    cursor = 0
    found: int | None = None
    previous: re.Match[str] | None = None
    for part in parts:
        if isinstance(part, int):
            if previous is None:
                continue
            line_start = text.rfind("\n", 0, previous.start()) + 1
            if text.startswith("[[", line_start):
                line_end = text.find("\n", line_start)
                header = text[line_start : line_end if line_end >= 0 else len(text)].rstrip()
                position = previous.start()
                for _ in range(part):
                    nxt = text.find(header, position + 1)
                    if nxt < 0:
                        break
                    position = nxt
                cursor = position
            else:
                bracket = text.find("[", previous.end())
                if bracket >= 0:
                    cursor = _skip_elements(text, bracket + 1, part)
            found = cursor
            continue
        match = _key_pattern(part).search(text, cursor)
        if match is None:
            found = None
            continue
        previous = match
        cursor = match.end()
        found = match.start()
    if found is None:
        return None
    return text.count("\n", 0, found) + 1


def _with_line(problem: str, text: str, key: str, origin: str) -> str:
    line = find_line(text, key) if text else None
    return f"{problem} ({origin}, line {line})" if line is not None else f"{problem} ({origin})"
