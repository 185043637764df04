"""The run's ledger: what the plan does to the data besides moving it.

A reviewer signs off on what is lost and what is changed, so nothing of it may pass
without a word: every column the plan drops, with the values it held; every column whose
values the plan rewrites (map, default, nullif ...), with how many values change; the rows
its `where` filters (in the per-table counts). They go on the screen and into report.json
and report.html.

One change is refused outright unless the plan says it is wanted: dropping the column
that marks an account deactivated from a table whose passwords are migrated, which lets
those accounts log in again.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lite2pg.errors import PlanError, TransformError
from lite2pg.layout import table_plan
from lite2pg.plan import Plan, TablePlan
from lite2pg.source import Table, quote_ident

# The transforms that rewrite values (rather than read them into a type): the ledger
# counts the values they change.
REWRITING = frozenset({"map", "default", "nullif", "strip", "lower"})
# Distinct values looked at per rewritten column: beyond it, the column is not itemised.
DISTINCT_LIMIT = 1_000

# Columns that say an account is switched off, and which of their values mean it.
_ACTIVE_FLAG = re.compile(r"(is_?)?(active|enabled)", re.IGNORECASE)
_INACTIVE_FLAG = re.compile(
    r"(is_?)?(disabled|inactive|locked|banned|suspended|blocked|deleted|deactivated)",
    re.IGNORECASE,
)
_INACTIVE_SINCE = re.compile(
    r"(disabled|deactivated|deleted|banned|locked|suspended)_?(at|on|since)", re.IGNORECASE
)
_PASSWORD = re.compile(r".*(password|passwd|pass_hash|pwd_hash).*", re.IGNORECASE)
_FALSY = "('0', 'false', 'f', 'no', 'n', 'off', '')"
# The plan's word for "deactivated accounts may log in after the migration".
MAY_LOG_IN = "may-log-in"


@dataclass
class Rewrite:
    """What the plan's rewriting transforms do to one column's values."""

    column: str
    transforms: list[str]
    changed: int | None  # values changed; None: too many distinct values to count
    rejected: int | None
    examples: list[tuple[str, str, int]] = field(default_factory=list)  # before, after, rows

    def as_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "transforms": self.transforms,
            "changed": self.changed,
            "rejected": self.rejected,
            "examples": [{"before": b, "after": a, "rows": n} for b, a, n in self.examples],
        }


@dataclass
class TableLedger:
    table: str
    dropped: dict[str, int] = field(default_factory=dict)  # column -> non-NULL values
    rewrites: list[Rewrite] = field(default_factory=list)
    deactivated: dict[str, int] | None = None  # flag column -> accounts, when accepted

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"table": self.table, "dropped": self.dropped}
        out["rewrites"] = [r.as_dict() for r in self.rewrites]
        if self.deactivated:
            out["deactivated_may_log_in"] = self.deactivated
        return out

    def __bool__(self) -> bool:
        return bool(self.dropped or self.rewrites or self.deactivated)


def ledger(
    src: sqlite3.Connection, tables: Sequence[Table], plan: Plan | None
) -> list[TableLedger]:
    """The ledger of a run over the snapshot `src`, before a row is loaded; raises
    `PlanError` for a plan that would let deactivated accounts log in unless it says so."""
    out = []
    for table in tables:
        tp = table_plan(plan, table.name)
        if tp is None:
            continue
        entry = TableLedger(table.name)
        names = [c.name for c in table.columns]
        dropped = [c for c in names if c in tp.drop]
        if dropped:
            counts = src.execute(
                f"SELECT {', '.join(f'count({quote_ident(c)})' for c in dropped)} "
                f"FROM {quote_ident(table.name)}"
            ).fetchone()
            entry.dropped = dict(zip(dropped, (int(n) for n in counts), strict=True))
        entry.deactivated = _deactivated(src, table, tp, dropped)
        for column, cp in tp.columns.items():
            kinds = [s.name for s in cp.specs if s.name in REWRITING]
            if kinds and not cp.secret and column in names:
                entry.rewrites.append(_rewrite(src, table.name, column, kinds, tp))
        if entry:
            out.append(entry)
    return out


def _rewrite(
    src: sqlite3.Connection, table: str, column: str, kinds: list[str], tp: TablePlan
) -> Rewrite:
    """Run the column's own chain over each distinct source value once."""
    col = quote_ident(column)
    groups = src.execute(
        f"SELECT {col}, count(*) FROM {quote_ident(table)} GROUP BY {col} "
        f"ORDER BY count(*) DESC LIMIT {DISTINCT_LIMIT + 1}"
    ).fetchall()
    if len(groups) > DISTINCT_LIMIT:
        return Rewrite(column, kinds, None, None)
    chain = tp.chain(column)
    changed = rejected = 0
    examples: list[tuple[str, str, int]] = []
    for value, rows in groups:
        try:
            after = chain(value)
        except TransformError:  # the row is rejected, with its reason
            rejected += int(rows)
            continue
        if after != value or type(after) is not type(value):
            changed += int(rows)
            examples.append((_show(value), _show(after), int(rows)))
    return Rewrite(column, kinds, changed, rejected, examples)


def _show(value: object) -> str:
    return "NULL" if value is None else repr(value)


def _deactivated(
    src: sqlite3.Connection, table: Table, tp: TablePlan, dropped: Iterable[str]
) -> dict[str, int] | None:
    """Accounts a dropped flag column marks as switched off, in a table whose passwords
    go on: refused unless the plan says `deactivated = "may-log-in"` (then returned)."""
    kept = [c.name for c in table.columns if c.name not in tp.drop]
    passwords = [c for c in kept if _PASSWORD.fullmatch(c) or c in _hashed(tp)]
    if not passwords:
        return None
    found: dict[str, int] = {}
    for column in dropped:
        q = quote_ident(column)
        if _ACTIVE_FLAG.fullmatch(column):
            off = f"{q} IS NOT NULL AND lower(trim(CAST({q} AS TEXT))) IN {_FALSY}"
        elif _INACTIVE_FLAG.fullmatch(column):
            off = f"{q} IS NOT NULL AND lower(trim(CAST({q} AS TEXT))) NOT IN {_FALSY}"
        elif _INACTIVE_SINCE.fullmatch(column):
            off = f"{q} IS NOT NULL AND CAST({q} AS TEXT) <> ''"
        else:
            continue
        row = src.execute(f"SELECT count(*) FROM {quote_ident(table.name)} WHERE {off}").fetchone()
        if row and row[0]:
            found[column] = int(row[0])
    if not found:
        return None
    if tp.deactivated == MAY_LOG_IN:
        return found
    column, n = next(iter(found.items()))
    raise PlanError(
        f"tables.{table.name}.drop",
        f"drops {column}, which marks {n} account(s) as deactivated, while "
        f"{', '.join(passwords)} goes on: they would log in again (hint: keep the column, "
        f'or write deactivated = "{MAY_LOG_IN}" in [tables.{table.name}] to accept it)',
    )


def _hashed(tp: TablePlan) -> set[str]:
    return {name for name, cp in tp.columns.items() if cp.password is not None}


def summary_lines(entries: Sequence[TableLedger]) -> list[str]:
    """The ledger as the terminal shows it: one line per dropped or rewritten column."""
    lines = []
    for e in entries:
        for column, n in e.dropped.items():
            lines.append(f"dropped: {e.table}.{column} ({n} non-NULL value(s) not migrated)")
        for r in e.rewrites:
            how = "+".join(r.transforms)
            if r.changed is None:
                lines.append(
                    f"changed: {e.table}.{r.column} by {how} (over {DISTINCT_LIMIT} distinct "
                    "values: not counted)"
                )
                continue
            shown = ", ".join(f"{b} -> {a} x{n}" for b, a, n in r.examples[:3])
            more = f", {len(r.examples) - 3} more" if len(r.examples) > 3 else ""
            lines.append(
                f"changed: {e.table}.{r.column} by {how}: {r.changed} value(s)"
                + (f" ({shown}{more})" if shown else "")
                + (f"; {r.rejected} rejected" if r.rejected else "")
            )
        for column, n in (e.deactivated or {}).items():
            lines.append(
                f"deactivated: {e.table}: {n} account(s) marked by {column} can log in "
                f'(the plan says deactivated = "{MAY_LOG_IN}")'
            )
    return lines
