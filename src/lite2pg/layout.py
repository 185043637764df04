"""What the target will look like: which tables, their names, types and key names.

Pure functions of the source schema, the plan and the options, so that every process of a
run (and a later `verify`) computes exactly the same layout.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lite2pg.coerce import CITEXT, TEXT, Family, PgType, parse_pg_type
from lite2pg.errors import SchemaError
from lite2pg.keys import KeyNames, name_keys
from lite2pg.plan import NAMES_MODES, Plan, TablePlan, names_mode
from lite2pg.schema import NameAllocator, TableMap, is_citext, plan_table
from lite2pg.source import SourceSchema, Table


@dataclass(frozen=True)
class Layout:
    """The tables a run migrates, in load order, and their target shapes."""

    tables: tuple[Table, ...]  # selected and not skipped, in source order
    skipped: tuple[Table, ...]  # skipped by the plan
    casts: dict[str, dict[str, PgType]]
    names: str = NAMES_MODES[0]  # "fold" | "keep" (schema.pg_name)
    # The citext type as the target spells it (for COLLATE NOCASE), or None without it.
    citext: str | None = CITEXT.sql
    # Of `skipped`, the names left behind by --exclude-table (the plan skips them too).
    excluded: frozenset[str] = frozenset()

    def table_plan(self, plan: Plan | None, name: str) -> TablePlan | None:
        return table_plan(plan, name)


def table_plan(plan: Plan | None, name: str) -> TablePlan | None:
    """The plan of a table, or None when the plan does not name it."""
    return plan.table(name) if plan is not None and name in plan.tables else None


def select_tables(
    schema: SourceSchema,
    wanted: Sequence[str] | None,
    plan: Plan | None,
    casts: dict[str, str],
    *,
    names: str | None = None,
    citext: str | None = CITEXT.sql,
) -> Layout:
    """Check the plan and casts against the source and choose the tables to migrate.

    `names`: the run's names option ("fold" | "keep"; None: the plan's, else "fold").
    `citext`: the citext type on the target (None: the target cannot have it)."""
    tables = list(schema.tables)
    if wanted:
        by_name = {t.name.lower(): t for t in tables}
        missing = [w for w in wanted if w.lower() not in by_name]
        if missing:
            raise SchemaError(
                missing[0], "no such table in the source", f"tables: {', '.join(sorted(by_name))}"
            )
        tables = [by_name[w.lower()] for w in wanted]
    if plan is not None:
        plan.check_tables(t.name for t in schema.tables)
        for t in tables:
            plan.check_columns(t.name, [c.name for c in t.columns])
    skipped = [t for t in tables if plan is not None and plan.table(t.name).skip]
    chosen = [t for t in tables if t not in skipped]
    return Layout(
        tuple(chosen),
        tuple(skipped),
        parse_casts(casts, chosen),
        names_mode(names, plan),
        citext,
    )


def parse_casts(casts: dict[str, str], tables: Sequence[Table]) -> dict[str, dict[str, PgType]]:
    """`--cast TABLE.COLUMN=TYPE` values, checked against the source tables."""
    out: dict[str, dict[str, PgType]] = {}
    by_name = {t.name.lower(): t for t in tables}
    for key, type_sql in casts.items():
        table_name, _, column = key.rpartition(".")
        t = by_name.get(table_name.lower())
        if t is None or not column:
            raise SchemaError(
                key, "--cast names no known table.column", "write --cast TABLE.COLUMN=TYPE"
            )
        col = next((c for c in t.columns if c.name.lower() == column.lower()), None)
        if col is None:
            raise SchemaError(
                t.name,
                f"--cast: no column {column!r}",
                f"columns: {', '.join(c.name for c in t.columns)}",
            )
        pg = parse_pg_type(type_sql)
        if pg.family is Family.OTHER:
            raise SchemaError(
                t.name,
                f"--cast {key}={type_sql}: unsupported type",
                "use text, bigint, integer, double precision, numeric(p,s), boolean, "
                "timestamptz, timestamp, date, bytea, jsonb, json, uuid, interval, inet or cidr",
            )
        out.setdefault(t.name, {})[col.name] = pg
    return out


def create_maps(
    layout: Layout, plan: Plan | None, taken: Iterable[str] = ()
) -> tuple[list[TableMap], KeyNames]:
    """Table maps and key names for tables that lite2pg creates; key and index names avoid
    `taken`, the names of relations the target schema holds already."""
    names = NameAllocator()
    plans = {t.name: table_plan(plan, t.name) for t in layout.tables}
    given = {tp.target for tp in plans.values() if tp is not None and tp.target_given}
    maps = [
        plan_table(
            t,
            names,
            layout.casts.get(t.name),
            plans[t.name],
            names=layout.names,
            citext=layout.citext,
            reserved=given,
        )
        for t in layout.tables
    ]
    _caseless_references(maps, layout, plan)
    return maps, name_keys(maps, taken)


def _caseless_references(maps: Sequence[TableMap], layout: Layout, plan: Plan | None) -> None:
    """A text column that references a citext key becomes citext too: SQLite compares a
    foreign key with its parent key's collation, and PostgreSQL builds no foreign key
    between text and citext. A column with an explicit cast is left as it is."""
    by_name = {tm.source.name.lower(): tm for tm in maps}
    changed = True
    while changed:  # a chain of references: each pass follows one more link
        changed = False
        for tm in maps:
            tp = table_plan(plan, tm.source.name)
            casts = set(layout.casts.get(tm.source.name, {})) | set(tp.cast if tp else ())
            for fk in tm.source.foreign_keys:
                parent = by_name.get(fk.ref_table.lower())
                if parent is None or len(fk.ref_columns) != len(fk.columns):
                    continue
                for c, r in zip(fk.columns, fk.ref_columns, strict=True):
                    if not (tm.has(c) and parent.has(r)) or c in casts:
                        continue
                    child, key = tm.column_map(c), parent.column_map(r)
                    if is_citext(key.pg_type) and child.pg_type == TEXT:
                        child.pg_type, child.nocase = key.pg_type, True
                        tm.notes.append(
                            f"column {c!r} is {key.pg_type} like {parent.source.name}.{r}, "
                            "the key it references"
                        )
                        changed = True


def parents_first(maps: Sequence[TableMap]) -> list[TableMap]:
    """Order tables so that referenced tables come before those that reference them."""
    by_name = {tm.source.name.lower(): tm for tm in maps}
    done: list[TableMap] = []
    seen: set[str] = set()

    def visit(tm: TableMap, stack: set[str]) -> None:
        key = tm.source.name.lower()
        if key in seen or key in stack:
            return  # a cycle: order within it does not matter for loading
        stack.add(key)
        for fk in tm.source.foreign_keys:
            parent = by_name.get(fk.ref_table.lower())
            if parent is not None and parent is not tm:
                visit(parent, stack)
        stack.discard(key)
        seen.add(key)
        done.append(tm)

    for tm in maps:
        visit(tm, set())
    return done
