"""The rehearsal document: one Markdown file for the people who sign the migration off.

`lite2pg rehearse SOURCE` migrates a copy (on the embedded PostgreSQL unless given a
target), verifies it, and writes RUN/rehearsal.md from what the run recorded: what will
move, the ledger of what the plan drops and changes, rejects by column and reason, the
mapped values, behaviour changes, each stage's measured time with the expected downtime at
the production size, and the exact commands of the cutover day, then a sign-off block.
Every figure in it comes from the run directory (report.json, rejects/), none is typed in.
"""

from __future__ import annotations

import collections
import json
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lite2pg.artifacts import atomic_write
from lite2pg.reasons import Category
from lite2pg.rows import read_rejects

NAME = "rehearsal.md"


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return [*out, ""]


def _rejects_by_reason(run_dir: Path) -> list[list[str]]:
    groups: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for r in read_rejects(run_dir / "rejects"):
        why = _category_text(r.get("category")) or r.get("reason", "")
        groups[(r["table"], str(r.get("column") or "(row)"), str(why))] += 1
    return [[t, c, w, f"{n:,}"] for (t, c, w), n in groups.most_common()]


def _category_text(name: str | None) -> str | None:
    """A reject's category as `check` prints it (the file holds its name)."""
    if not name:
        return None
    try:
        return Category[name.upper()].value
    except KeyError:
        return name


# Stages whose time does not grow with the data: kept as measured when scaling.
_FIXED = frozenset({"prepare", "publish", "report"})


def _seconds(value: float) -> str:
    if value < 60:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def write(
    run_dir: Path,
    *,
    source_bytes: int,
    production_bytes: int | None,
    commands: dict[str, str],
) -> Path:
    """Write RUN/rehearsal.md from the run's records; returns its path."""
    data = json.loads((run_dir / "report.json").read_text())
    totals = data.get("totals", {})
    verify = data.get("verify") or {}
    lines = [
        f"# Migration rehearsal: {Path(data['source']).name}",
        "",
        f"Rehearsed {data.get('started_at', '')} by lite2pg into {data.get('target', '')} "
        f"(schema `{data.get('schema', '')}`). Run directory: `{run_dir}`.",
        "",
        f"**Verdict:** {data.get('verdict', '')}",
        "",
        "## What will move",
        "",
    ]
    lines += _table(
        ["table", "read", "loaded", "rejected", "filtered"],
        (
            [
                t["source"] if t["source"] == t["target"] else f"{t['source']} -> {t['target']}",
                f"{t['read']:,}", f"{t['loaded']:,}", f"{t['rejected']:,}",
                f"{t['filtered']:,}",
            ]
            for t in data.get("tables", [])
        ),
    )  # fmt: skip
    lines += [
        f"In all {totals.get('read', 0):,} rows read, {totals.get('loaded', 0):,} loaded, "
        f"{totals.get('rejected', 0):,} rejected, {totals.get('filtered', 0):,} filtered.",
        "",
        "## What the plan drops and changes",
        "",
    ]
    lines += [f"- {line}" for line in data.get("ledger_lines") or []] or ["- nothing", ""]
    lines += ["", "## Rejected rows, by column and reason", ""]
    rejects = _rejects_by_reason(run_dir)
    if rejects:
        lines += _table(["table", "column", "reason", "rows"], rejects)
        if data.get("quarantine"):
            lines += [f"Every rejected row is also in PostgreSQL: `{data['quarantine']}`.", ""]
        lines += [
            "`lite2pg check` proposes the plan lines that fix each group; "
            f"`{commands['retry']}` loads them.",
            "",
        ]
    else:
        lines += ["None.", ""]
    mappings = [d for d in verify.get("distributions") or [] if d.get("kind") == "map"]
    if mappings:
        lines += ["## Mapped values (source -> PostgreSQL, counted by verify)", ""]
        for d in mappings:
            lines.append(f"**{d['table']}.{d['column']}**")
            lines.append("")
            lines += _table(
                ["before", "after", "rows"],
                ([str(m["before"]), str(m["after"]), f"{m['rows']:,}"] for m in d["mapping"]),
            )
    changes = list(data.get("behaviour_changes") or [])
    changes += [
        f"not migrated: {m.get('kind')} {m.get('name')}: {m.get('reason')}"
        for m in data.get("not_migrated") or []
    ]
    lines += ["## What the app will see behave differently", ""]
    lines += [f"- {c}" for c in changes] or ["- nothing found"]
    lines += ["", "## Time", ""]
    stages = data.get("stages") or []
    scale = (production_bytes / source_bytes) if production_bytes and source_bytes else None
    header = ["stage", "measured"] + (["at production size"] if scale else [])

    def scaled(s: dict[str, Any]) -> float:
        return float(s["seconds"]) * (1.0 if s["name"] in _FIXED or not scale else scale)

    lines += _table(
        header,
        (
            [s["name"], _seconds(s["seconds"])] + ([_seconds(scaled(s))] if scale else [])
            for s in stages
        ),
    )
    total = float(data.get("seconds", 0.0))
    lines.append(f"Whole run: {_seconds(total)} for {source_bytes / 1e6:,.1f} MB of SQLite.")
    if scale and production_bytes:
        lines += [
            "",
            f"At {production_bytes / 1e6:,.1f} MB (production): about "
            f"{_seconds(sum(scaled(s) for s in stages))}, the data stages scaled linearly "
            "by size (measured linear up to 5 GB: bench/RESULTS.md). A small copy overstates "
            "it (per-run costs, passwords hashed per account): rehearse on a full-size copy "
            "for the figure to plan with.",
        ]
    lines += [
        "",
        "**Downtime.** With the online cutover the app keeps running during all of the "
        "above; writes pause only for the freeze (milliseconds: drain the last changes, "
        "count, commit, switch the config), reported by the cutover. An offline cutover "
        "instead stops the app for the whole run.",
        "",
        "## Commands of the cutover day",
        "",
        "```",
        *commands.values(),
        "```",
        "",
        "## Sign-off",
        "",
    ]
    lines += _table(
        ["role", "name", "date", "signature"],
        ([role, "", "", ""] for role in ("DBA", "Tech lead", "Sponsor")),
    )
    path = run_dir / NAME
    atomic_write(path, "\n".join(lines).encode("utf-8"))
    return path


def cutover_commands(
    production: str, run_dir: str, plan: str | None, target: str, config: str
) -> dict[str, str]:
    """The commands, in order, with the names given (placeholders where not known)."""
    q = shlex.quote
    plan_arg = f" --plan {q(plan)}" if plan else ""
    return {
        "prepare": f"lite2pg prepare {q(production)}",
        "migrate": f"lite2pg migrate {q(production)}{plan_arg} --target {q(target)} "
        f"--run-dir {q(run_dir)}",
        "retry": f"lite2pg retry {q(run_dir)} --plan fix.toml --target {q(target)}",
        "sync": f"lite2pg sync {q(run_dir)} --follow",
        "cutover": f"lite2pg cutover {q(run_dir)} --config {q(config)} --online",
        "rollback": f"lite2pg rollback {q(run_dir)}  # only if it must be undone",
        "cleanup": f"lite2pg cleanup {q(production)}",
    }
