"""Preflight: run source reading and every transform, write nothing to PostgreSQL, and say
what a real run would reject, how mapped values fall, which references are orphans, and
where stored values disagree with their declared types."""

from __future__ import annotations

import collections
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lite2pg import native, source
from lite2pg.coerce import Family
from lite2pg.errors import TransformError, file_errors
from lite2pg.layout import create_maps, parents_first, select_tables, table_plan
from lite2pg.plan import Plan
from lite2pg.profiles import resolve
from lite2pg.rows import GoneRows, RowStream, build_pipeline
from lite2pg.source import quote_ident

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
}


@dataclass
class RejectGroup:
    """Rows a real run would reject for one reason."""

    table: str
    column: str | None
    reason: str
    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)


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
    # Text columns whose every value is JSON or a uuid: a cast the user may want.
    suggestions: list[str] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        return sum(g.count for g in self.rejects)

    @property
    def ok(self) -> bool:
        return self.rows_rejected == 0

    def __str__(self) -> str:
        if self.ok:
            return f"OK: all {self.rows_read} rows would migrate ({self.rows_filtered} filtered)"
        tables = len({g.table for g in self.rejects})
        return (
            f"ATTENTION: {self.rows_rejected} of {self.rows_read} rows in {tables} table(s) "
            "would be rejected"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "ok": self.ok,
            "verdict": str(self),
            "rows_read": self.rows_read,
            "rows_rejected": self.rows_rejected,
            "rows_filtered": self.rows_filtered,
            "rejects": [g.__dict__ for g in self.rejects],
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
            "suggestions": self.suggestions,
        }


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
    hash_passwords: bool = False,
    examples: int = 3,
    profile: str = "auto",
) -> CheckReport:
    """Preflight a migration of `source_path` with `plan` and the ORM `profile` (a
    `--profile` value); nothing is written anywhere but a temporary snapshot (and, with
    `hash_passwords`, nothing is cached)."""
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
            report.profile = applied.as_dict() if applied is not None else None
            report.plan_text = plan.text if plan is not None else ""
            layout = select_tables(schema, tuple(tables) if tables else None, plan, casts or {})
            maps, _ = create_maps(layout, plan)
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
                )
                for _ in stream.batches():
                    pass
                if tp is not None and tp.where:
                    gone.record_where_not(tm.source, tp.where)
                report.rows_read += stream.counts.read
                report.rows_filtered += stream.counts.filtered
                for column, reason, key in stream.reject_log:
                    g = groups.setdefault(
                        (tm.source.name, column, reason),
                        RejectGroup(tm.source.name, column, reason),
                    )
                    g.count += 1
                    if len(g.examples) < examples:
                        g.examples.append(key)
                _maps(src, tm.source.name, tp, report)
                _orphans(src, tm.source, tp, report)
                _disagreements(src, tm, tp, report)
                _suggestions(src, tm, tp, report)
            report.rejects = sorted(groups.values(), key=lambda g: (g.table, -g.count))
        finally:
            src.close()
    return report


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


def _orphans(src: Any, table: source.Table, tp: Any, report: CheckReport) -> None:
    for fk in table.foreign_keys:
        if len(fk.ref_columns) != len(fk.columns):
            continue
        child = quote_ident(table.name)
        not_null = " AND ".join(f"c.{quote_ident(c)} IS NOT NULL" for c in fk.columns)
        match = " AND ".join(
            f"p.{quote_ident(r)} = c.{quote_ident(c)}"
            for c, r in zip(fk.columns, fk.ref_columns, strict=True)
        )
        try:
            (count,) = src.execute(
                f"SELECT count(*) FROM {child} c WHERE {not_null} AND NOT EXISTS "
                f"(SELECT 1 FROM {quote_ident(fk.ref_table)} p WHERE {match})"
            ).fetchone()
        except Exception:  # the parent table is missing from the source: every row dangles
            continue
        if count:
            policy = tp.on_orphan(fk.columns) if tp is not None else "keep (no plan)"
            report.orphans.append(
                {
                    "table": table.name,
                    "columns": list(fk.columns),
                    "references": fk.ref_table,
                    "rows": int(count),
                    "policy": policy,
                }
            )


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
