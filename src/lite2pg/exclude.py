"""`--exclude-table GLOB`: tables left behind as a plan's `skip = true` leaves them, so that
every stage (load, check, verify, retry) sees the same tables from the run's plan alone.

Rows of migrated tables that reference an excluded table become orphans there, as they do
when a plan skips a table: they follow the plan's `on_orphan` policy for that foreign key
(rejected by default under a plan that names the table; kept, without the foreign key,
when it does not), and `lite2pg check` counts them first. The foreign key is not created
and the run says so (the decision: leaving a parent behind is allowed, and named)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase

from lite2pg.errors import UsageError
from lite2pg.plan import Plan, dump_plan, merge_plans, parse_plan

__all__ = ["exclude_tables", "excluded"]


def excluded(names: Iterable[str], patterns: Sequence[str]) -> list[str]:
    """The names that match any of the globs, case-insensitively as SQLite names are."""
    return [n for n in names if any(fnmatchcase(n.lower(), p.lower()) for p in patterns)]


def exclude_tables(
    plan: Plan | None, tables: Sequence[str], patterns: Sequence[str]
) -> Plan | None:
    """`plan` with every source table (of `tables`) that a glob matches skipped; a glob that
    matches no table is refused (a typo would otherwise migrate what was to stay behind)."""
    if not patterns:
        return plan
    for p in patterns:
        if not excluded(tables, [p]):
            raise UsageError(
                f"--exclude-table {p!r} matches no table",
                f"tables: {', '.join(sorted(tables, key=str.lower))}",
            )
    skips = {name: {"skip": True} for name in excluded(tables, patterns)}
    over = parse_plan(dump_plan({"tables": skips}), origin="--exclude-table")
    if plan is None:
        return over
    merged = merge_plans(plan, over, origin=plan.origin)
    return dataclasses.replace(merged, schema_file=plan.schema_file, schema_sql=plan.schema_sql)
