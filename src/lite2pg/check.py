"""Preflight: run source reading and every transform, write nothing to PostgreSQL, and say
what a real run would reject, how mapped values fall, which references are orphans, and
where stored values disagree with their declared types."""

from __future__ import annotations

import collections
import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lite2pg import native, source
from lite2pg.caseless import CaseCollision, preflight, python_lower
from lite2pg.coerce import Family
from lite2pg.errors import PlanError, TransformError, file_errors
from lite2pg.exclude import exclude_tables
from lite2pg.fixes import MAX_DISTINCT, Fix, ValueTally, propose
from lite2pg.layout import create_maps, parents_first, select_tables, table_plan
from lite2pg.ledger import ledger, summary_lines
from lite2pg.plan import Plan, TablePlan, orphan_policy
from lite2pg.profiles import resolve
from lite2pg.reasons import Category
from lite2pg.rows import REDACTED, GoneRows, RejectRecord, RowStream, build_pipeline
from lite2pg.schema import TableMap
from lite2pg.source import quote_ident
from lite2pg.transforms import Spec
from lite2pg.transforms.timestamps import guess_epoch

# The storage classes a column of each target family holds when nothing is wrong.
_EXPECTED: dict[Family, set[str]] = {
    Family.INTEGER: {"integer"},
    Family.FLOAT: {"real"},
    Family.NUMERIC: {"integer", "real"},
    Family.TEXT: {"text"},
    Family.BYTEA: {"blob"},
    Family.BOOLEAN: {"integer"},
    Family.TIMESTAMPTZ: {"text"},
    Family.TIMESTAMP: {"text"},
    Family.DATE: {"text"},
    Family.JSONB: {"text", "integer", "real"},  # numbers are JSON too
    Family.JSON: {"text", "integer", "real"},
    Family.UUID: {"text", "blob"},
    Family.INTERVAL: {"text"},
    Family.INET: {"text"},
    Family.TIME: {"text"},
    Family.MONEY: {"integer", "real"},
}


# Values shown per group.
SHOWN_VALUES = 3
# Groups printed in full by `reject_lines`; `--json` has every one.
SHOWN_GROUPS = 40


Fixer = Callable[["RejectGroup"], "Fix | None"]
"""A hook for `check`: proposes a fix for a group (an ORM profile), or None to let the
next fixer, and finally lite2pg's own guess, try."""


@dataclass
class RejectGroup:
    """Rows a real run would reject in one column for one reason, whatever their values."""

    table: str
    column: str | None
    reason: str  # the category: the reason without the value
    category: str  # `Category` name, e.g. "EPOCH_AMBIGUOUS" ("OTHER": reason as given)
    target_type: str | None = None
    detail: str = ""  # the first full reason seen, value included (redacted when secret)
    count: int = 0  # rows this is the first reason of (what a run's rejects file says)
    also: int = 0  # rows another column rejects first, which this one would reject too
    examples: list[dict[str, Any]] = field(default_factory=list)  # keys of rejected rows
    values: list[Any] = field(default_factory=list)  # a few distinct values (redacted)
    distinct_values: int = 0  # at most MAX_DISTINCT; more_values counts the rows past it
    more_values: int = 0
    fix: Fix | None = None
    # Orphans whose parent rows exist but are rejected themselves: fixing the parent
    # table's rejects fixes these (no plan line of their own is proposed).
    follows: str | None = None
    tally: ValueTally = field(default_factory=ValueTally, repr=False)
    transforms: tuple[Spec, ...] = field(default=(), repr=False)  # the column's plan chain
    labels: tuple[str, ...] = field(default=(), repr=False)  # an enum target's labels

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}" if self.column else self.table

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "column": self.column,
            "reason": self.reason,
            "category": self.category,
            "target_type": self.target_type,
            "count": self.count,
            "also": self.also,
            "detail": self.detail,
            "values": [_show(v) for v in self.values],
            "distinct_values": self.distinct_values,
            "more_values": self.more_values,
            # Every distinct value the group kept (at most MAX_DISTINCT), most frequent first.
            "value_counts": [[_show(v), n] for v, n in self.tally.common(MAX_DISTINCT)],
            "examples": self.examples,
            "fix": None if self.fix is None else self.fix.__dict__,
            "follows": self.follows,
        }


@dataclass
class MapValue:
    """One distinct source value of a mapped column and what the plan makes of it."""

    value: Any
    count: int
    result: Any
    unknown: bool


@dataclass
class CheckReport:
    """Everything a preflight found; `ok` when a real run would reject nothing."""

    source: str
    rows_read: int = 0
    rows_filtered: int = 0
    rejects: list[RejectGroup] = field(default_factory=list)
    maps: dict[str, list[MapValue]] = field(default_factory=dict)  # "table.column" -> values
    orphans: list[dict[str, Any]] = field(default_factory=list)
    disagreements: list[dict[str, Any]] = field(default_factory=list)
    behaviour_changes: list[str] = field(default_factory=list)  # as a run would list them
    profile: dict[str, Any] | None = None  # lite2pg.profiles.Profile.as_dict(), if one applies
    plan_text: str = ""  # the plan a run would use (the profile's, the user's over it), TOML
    # Keys a COLLATE NOCASE unique key keeps apart that PostgreSQL would make one: a run
    # refuses to start with any.
    case_collisions: list[CaseCollision] = field(default_factory=list)
    # Text columns whose every value is JSON or a uuid: a cast the user may want.
    suggestions: list[str] = field(default_factory=list)
    # What the plan drops and rewrites (ledger.summary_lines), and a plan a run refuses.
    ledger: list[str] = field(default_factory=list)
    plan_refusals: list[str] = field(default_factory=list)
    # Passwords hashed (only with hash_passwords): proof that `--hash` hashed, and how many.
    passwords_hashed: int = 0

    @property
    def rows_rejected(self) -> int:
        return sum(g.count for g in self.rejects)

    @property
    def ok(self) -> bool:
        return self.rows_rejected == 0 and not self.case_collisions and not self.plan_refusals

    def __str__(self) -> str:
        if self.plan_refusals:
            return "ATTENTION: a run refuses this plan: " + self.plan_refusals[0]
        if self.case_collisions:
            return (
                f"ATTENTION: {len(self.case_collisions)} group(s) of values differ only in "
                "case beyond A-Z and would break a case-insensitive unique key; a run "
                "stops before writing anything"
            )
        if self.ok:
            return f"OK: all {self.rows_read} rows would migrate ({self.rows_filtered} filtered)"
        tables = len({g.table for g in self.rejects})
        return (
            f"ATTENTION: {self.rows_rejected} of {self.rows_read} rows in {tables} table(s) "
            "would be rejected"
        )

    def reject_lines(self, groups: int = SHOWN_GROUPS) -> list[str]:
        """The rejects as text: one line per table, column and reason, then its values and
        the proposed fix, indented; at most `groups` groups (the largest first)."""
        if not self.rejects:
            return []
        lines = [f"rows that would be rejected, by column and reason ({len(self.rejects)}):"]
        for g in self.rejects[:groups]:
            typ = f" ({g.target_type})" if g.target_type else ""
            rows = f"{g.count + g.also:,} row(s)"
            if g.also:
                rows += f" ({g.also:,} of them rejected first for another column)"
            lines.append(f"  {g.name}{typ}: {g.reason}: {rows}")
            if g.values:
                more = g.distinct_values - len(g.values)
                shown = ", ".join(_short(v) for v in g.values)
                tail = f" and {more:,}{'+' if g.more_values else ''} more" if more > 0 else ""
                lines.append(f"    values: {shown}{tail}")
            if g.detail and g.detail != g.reason:  # a secret column's reasons hold no value
                lines.append(f"    e.g. {_cut(g.detail, 120)}")
            if g.examples:
                keys = "; ".join(_cut(json.dumps(k, default=str), 60) for k in g.examples[:3])
                lines.append(f"    keys: {keys}")
            if g.follows is not None:
                lines.append(
                    f"    follows: their parent rows in {g.follows} are rejected themselves; "
                    "fixing those fixes these"
                )
            elif g.fix is not None:
                lines.append(f"    fix ({g.fix.source}): {g.fix.why}")
                lines += [f"      {line}" for line in g.fix.lines]
        rest = self.rejects[groups:]
        if rest:
            n = sum(g.count + g.also for g in rest)
            lines.append(f"  ... and {len(rest):,} more group(s) of {n:,} value(s); --json has all")
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "ok": self.ok,
            "verdict": str(self),
            "rows_read": self.rows_read,
            "rows_rejected": self.rows_rejected,
            "rows_filtered": self.rows_filtered,
            "rejects": [g.as_dict() for g in self.rejects],
            "maps": {
                k: [
                    {
                        "value": _show(v.value),
                        "count": v.count,
                        "result": _show(v.result),
                        "unknown": v.unknown,
                    }
                    for v in vals
                ]
                for k, vals in self.maps.items()
            },
            "orphans": self.orphans,
            "type_disagreements": self.disagreements,
            "behaviour_changes": self.behaviour_changes,
            "profile": self.profile,
            "case_collisions": [c.as_dict() for c in self.case_collisions],
            "suggestions": self.suggestions,
            "ledger": self.ledger,
            "plan_refusals": self.plan_refusals,
            "passwords_hashed": self.passwords_hashed,
        }


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(value: Any) -> str:
    """A value for one line: repr, cut; a secret column's marker as it is."""
    if value == REDACTED:
        return REDACTED
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return _cut(repr(value), 40)


def _show(value: Any) -> Any:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if value is None or isinstance(value, int | float | str | bool):
        return value
    return str(value)


@file_errors
def check(
    source_path: Path,
    plan: Plan | None = None,
    *,
    casts: dict[str, str] | None = None,
    tables: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    hash_passwords: bool = False,
    examples: int = 3,
    profile: str = "auto",
    names: str | None = None,
    fixers: Sequence[Fixer] = (),
) -> CheckReport:
    """Preflight a migration of `source_path` with `plan` and the ORM `profile` (a
    `--profile` value); nothing is written anywhere but a temporary snapshot (and, with
    `hash_passwords`, nothing is cached).

    Rejects are grouped by table, column and reason (never by value), each with a proposed
    fix: from the first of `fixers` that has one (an ORM profile), else lite2pg's guess."""
    source.check_sqlite_file(source_path)
    report = CheckReport(str(source_path))
    with tempfile.TemporaryDirectory(prefix="lite2pg-check-") as tmp:
        snap = Path(tmp) / "source.snapshot.db"
        source.snapshot(source_path, snap)
        src = source.open_readonly(snap)
        try:
            # The preflight reads every page, indexes too: a damaged file is named here.
            source.quick_check(src, source_path)
            schema = source.discover(src)
            plan, applied = resolve(profile, src, schema, plan, casts=casts)
            plan = exclude_tables(plan, [t.name for t in schema.tables], exclude)
            report.profile = applied.as_dict() if applied is not None else None
            report.plan_text = plan.text if plan is not None else ""
            layout = select_tables(
                schema, tuple(tables) if tables else None, plan, casts or {}, names=names
            )
            maps, _ = create_maps(layout, plan)
            try:
                report.ledger = summary_lines(ledger(src, layout.tables, plan))
            except PlanError as e:
                report.plan_refusals.append(str(e))
            report.case_collisions = preflight(src, maps, plan, python_lower)
            report.behaviour_changes = list(schema.changes) + [
                f"{tm.source.name}: {c}" for tm in maps for c in tm.changes
            ]
            gone = GoneRows(src, layout.tables)
            for t in layout.skipped:
                gone.record_where_not(t, None)
            groups: dict[tuple[str, str | None, str], RejectGroup] = {}
            for tm in parents_first(maps):
                tp = table_plan(plan, tm.source.name)
                stream = RowStream(
                    src,
                    build_pipeline(tm, tp, gone),
                    None,
                    hash_passwords=hash_passwords,
                    careful=True,  # every value through Python: exactly what a load rejects
                    gone=gone,
                    keep_values=True,
                )
                for _ in stream.batches():
                    pass
                if tp is not None and tp.where:
                    gone.record_where_not(tm.source, tp.where)
                report.rows_read += stream.counts.read
                report.rows_filtered += stream.counts.filtered
                report.passwords_hashed += stream.counts.passwords.get("hashed", 0)
                for r in stream.reject_log:
                    g = _group(groups, tm.source.name, r, tm, tp)
                    g.count += 1
                    g.tally.add(r.value)
                    if len(g.examples) < examples:
                        g.examples.append(r.key)
                for r in stream.also_log:
                    g = _group(groups, tm.source.name, r, tm, tp)
                    g.also += 1
                    g.tally.add(r.value)
                    if len(g.examples) < examples:
                        g.examples.append(r.key)
                _maps(src, tm.source.name, tp, report)
                _orphans(src, tm.source, tp, report, gone, stream)
                _disagreements(src, tm, tp, report)
                _suggestions(src, tm, tp, report)
            report.rejects = sorted(groups.values(), key=lambda g: (-g.count - g.also, g.name))
            by_name = {tm.source.name: tm.source for tm in maps}
            for g in report.rejects:
                g.follows = _rejected_parent(src, by_name.get(g.table), g)
                if g.follows is not None:
                    g.values = [v for v, _ in g.tally.common(SHOWN_VALUES) if v is not None]
                    g.distinct_values = len(g.tally.distinct)
                    continue
                _settle(g, fixers)
                if applied is None:
                    _name_the_profile(g)
        finally:
            src.close()
    return report


def _group(
    groups: dict[tuple[str, str | None, str], RejectGroup],
    table: str,
    r: RejectRecord,
    tm: TableMap,
    tp: TablePlan | None,
) -> RejectGroup:
    """The group of a reject: its table, column and category (a reject without one is
    grouped by its reason, which then names no value or a bounded set of them)."""
    # A password reason never holds the value, and names a policy choice: kept as it is.
    known = r.category not in (Category.OTHER, Category.PASSWORD)
    key = (table, r.column, r.category.name if known else r.reason)
    g = groups.get(key)
    if g is None:
        column = next(
            (c for c in tm.columns if c.source is not None and c.source == r.column), None
        )
        cp = tp.columns.get(r.column) if tp is not None and r.column is not None else None
        g = groups[key] = RejectGroup(
            table,
            r.column,
            r.category.value if known else r.reason,
            r.category.name,
            target_type=column.pg_type.sql if column is not None else None,
            detail=r.reason,
            transforms=cp.specs if cp is not None else (),
            labels=column.pg_type.labels if column is not None else (),
        )
    return g


def _rejected_parent(src: Any, table: source.Table | None, g: RejectGroup) -> str | None:
    """The parent table, when every value of an orphan group names a row it has (so the
    run rejects that parent row itself); else None (a parent truly missing)."""
    if table is None or g.category != Category.ORPHAN.name or g.tally.more or not g.tally.distinct:
        return None
    fk = next((f for f in table.foreign_keys if list(f.columns[:1]) == [g.column]), None)
    if fk is None or len(fk.columns) != 1 or not fk.ref_columns:
        return None
    query = (
        f"SELECT 1 FROM {quote_ident(fk.ref_table)} "
        f"WHERE {quote_ident(fk.ref_columns[0])} = ? LIMIT 1"
    )
    for _kind, value in g.tally.distinct:
        if value is None or src.execute(query, (value,)).fetchone() is None:
            return None
    return fk.ref_table


def _settle(g: RejectGroup, fixers: Sequence[Fixer]) -> None:
    """Fill in a finished group's shown values and its fix."""
    g.values = [v for v, _ in g.tally.common(SHOWN_VALUES) if v is not None]
    g.distinct_values = len(g.tally.distinct)
    g.more_values = g.tally.more
    for fixer in fixers:
        g.fix = fixer(g)
        if g.fix is not None:
            return
    if REDACTED in g.values:
        return  # a secret column: no proposal may show its values
    g.fix = propose(g.table, g.column, g.category, g.tally, g.transforms, g.target_type, g.labels)


def _name_the_profile(g: RejectGroup) -> None:
    """Epoch milliseconds in a date column are how Prisma stores every DateTime: where no
    profile was detected (a database made by `prisma db push` has no migrations table),
    say that `--profile prisma` would read them all, beside the fix for this column."""
    if g.fix is None or g.category != Category.EPOCH_AMBIGUOUS.name:
        return
    if g.tally.low is None or g.tally.high is None:
        return
    guess = guess_epoch(g.tally.low, g.tally.high)
    if guess is not None and guess[1].get("epoch") == "milliseconds":
        g.fix.why += (
            "; if Prisma wrote this database (it stores every DateTime so), "
            "--profile prisma reads all of them"
        )


def _maps(src: Any, table: str, tp: Any, report: CheckReport) -> None:
    if tp is None:
        return
    for column, cp in tp.columns.items():
        if not any(spec.name == "map" for spec in cp.specs) or cp.secret:
            continue
        values: list[MapValue] = []
        for value, count in src.execute(
            f"SELECT {quote_ident(column)}, count(*) FROM {quote_ident(table)} GROUP BY 1"
        ):
            try:
                values.append(MapValue(value, int(count), cp.chain(value), False))
            except TransformError:
                values.append(MapValue(value, int(count), None, True))
        values.sort(key=lambda v: (not v.unknown, -v.count))
        report.maps[f"{table}.{column}"] = values


def _orphans(
    src: Any,
    table: source.Table,
    tp: TablePlan | None,
    report: CheckReport,
    gone: GoneRows,
    stream: RowStream,
) -> None:
    """Per foreign key, the rows a run will find orphaned, counted as the run counts them:
    a parent that is missing, or rejected, filtered or skipped (`gone`), makes one; a row
    the plan filters makes none. Under "reject", the rows the stream rejected for it; under
    "keep", those PostgreSQL will hold (not the child's own rejects)."""
    rejected = _rejected_keys(src, table, stream)
    for fk in table.foreign_keys:
        if len(fk.ref_columns) != len(fk.columns):
            continue
        policy = orphan_policy(tp, fk.columns)
        checked = policy != "keep" and all(c in stream.pipe.source_columns for c in fk.columns)
        count: int | None
        if checked and policy == "reject":
            count = sum(
                1
                for r in stream.reject_log
                if r.category is Category.ORPHAN
                and r.column == fk.columns[0]
                and r.reason.endswith(f" has no row in {fk.ref_table}")
            )
        else:
            count = _orphan_rows(src, table, fk, tp, gone, None if checked else rejected)
            if count is None:
                continue  # the parent table is missing from the source
        if count:
            report.orphans.append(
                {
                    "table": table.name,
                    "columns": list(fk.columns),
                    "references": fk.ref_table,
                    "rows": int(count),
                    "policy": policy,
                }
            )


def _orphan_rows(
    src: Any,
    table: source.Table,
    fk: source.ForeignKey,
    tp: TablePlan | None,
    gone: GoneRows,
    rejected: str | None,
) -> int | None:
    """Rows with the FK set whose parent will not be loaded, among those the plan keeps
    (and, with `rejected`, a temp table of the child's rejected keys, not rejected)."""
    not_null = " AND ".join(f"c.{quote_ident(c)} IS NOT NULL" for c in fk.columns)
    match = " AND ".join(
        f"p.{quote_ident(r)} = c.{quote_ident(c)}"
        for c, r in zip(fk.columns, fk.ref_columns, strict=True)
    )
    missing = f"NOT EXISTS (SELECT 1 FROM {quote_ident(fk.ref_table)} p WHERE {match})"
    parent_gone = gone.expr("c", fk)
    if parent_gone is not None:
        missing = f"({missing} OR {parent_gone})"
    kept = f" AND coalesce(({tp.where}), 0)" if tp is not None and tp.where else ""
    if rejected is not None:
        same = " AND ".join(f"r.k{i} = c.{quote_ident(k)}" for i, k in enumerate(table.primary_key))
        kept += f" AND NOT EXISTS (SELECT 1 FROM temp.{rejected} r WHERE {same})"
    try:
        (count,) = src.execute(
            f"SELECT count(*) FROM {quote_ident(table.name)} c WHERE {not_null} AND {missing}{kept}"
        ).fetchone()
    except Exception:  # the parent table is missing from the source: every row dangles
        return None
    return int(count)


def _rejected_keys(src: Any, table: source.Table, stream: RowStream) -> str | None:
    """A temp table of the keys of the rows the stream rejected (None: the table has no
    key the stream reports by, or nothing was rejected)."""
    if not stream.reject_log or list(stream.key_columns) != list(table.primary_key):
        return None
    name = "_lite2pg_check_rejected"
    cols = ", ".join(f"k{i}" for i in range(len(table.primary_key)))
    src.execute(f"DROP TABLE IF EXISTS temp.{name}")
    src.execute(f"CREATE TEMP TABLE {name} ({cols})")
    marks = ", ".join("?" for _ in table.primary_key)
    src.executemany(
        f"INSERT INTO temp.{name} VALUES ({marks})",
        [tuple(r.key[k] for k in table.primary_key) for r in stream.reject_log],
    )
    return name


def _disagreements(src: Any, tm: Any, tp: Any, report: CheckReport) -> None:
    for c in tm.columns:
        if c.source is None or (tp is not None and c.source in tp.columns):
            continue  # transformed columns are what the plan is for
        expected = _EXPECTED.get(c.pg_type.family)
        if expected is None:
            continue
        q = quote_ident(c.source)
        found = collections.Counter(
            {
                str(kind): int(n)
                for kind, n in src.execute(
                    f"SELECT typeof({q}), count(*) FROM {quote_ident(tm.source.name)} "
                    f"WHERE {q} IS NOT NULL GROUP BY 1"
                )
            }
        )
        odd = {k: n for k, n in found.items() if k not in expected}
        if odd:
            decl = next(
                (col.declared_type for col in tm.source.columns if col.name == c.source), ""
            )
            report.disagreements.append(
                {
                    "table": tm.source.name,
                    "column": c.source,
                    "declared": decl or "(none)",
                    "target": c.pg_type.sql,
                    "found": dict(sorted(odd.items())),
                }
            )


def _suggestions(src: Any, tm: Any, tp: Any, report: CheckReport) -> None:
    """Text columns that hold a JSON object or array, or a uuid, in every row. A run never
    makes them jsonb or uuid on its own: the app reads the text back, and jsonb rewrites
    spacing and key order (a uuid's case and dashes)."""
    columns = [
        c.source
        for c in tm.columns
        if c.source is not None
        and c.pg_type.family is Family.TEXT
        and not (tp is not None and (c.source in tp.columns or c.source in tp.cast))
    ]
    if not columns:
        return
    parts: list[str] = []
    for name in columns:
        q = quote_ident(name)
        json_doc = (
            f"json_valid({q}) AND substr(ltrim({q}), 1, 1) IN ('{{', '[')"
            if native.SQLITE_HAS_JSON
            else "0"
        )
        parts += [f"count({q})", f"total({json_doc})", f"total({native.uuid_text_sql(q)})"]
    row = src.execute(f"SELECT {', '.join(parts)} FROM {quote_ident(tm.source.name)}").fetchone()
    table = tm.source.name
    for i, name in enumerate(columns):
        n, docs, uuids = (int(v or 0) for v in row[3 * i : 3 * i + 3])
        if n and docs == n:
            report.suggestions.append(
                f"{table}.{name} holds a JSON object or array in every row: "
                f"--cast {table}.{name}=jsonb makes it jsonb (which rewrites spacing and key "
                "order; keep text if the app reads the text back)"
            )
        elif n and uuids == n:
            report.suggestions.append(
                f"{table}.{name} holds a uuid in every row: --cast {table}.{name}=uuid "
                "makes it uuid"
            )
