"""RunReport: what a run did, as JSON for machines and a summary table for people."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table as RichTable

from lite2pg.artifacts import atomic_json
from lite2pg.load import PhaseResult, TableResult

REPORT_VERSION = 1


class StageClock:
    """Wall time per stage of a run, one stage after the other, so that they add up to
    the run's wall time (the tables load side by side inside the `load` stage)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.stages: list[tuple[str, float]] = []
        self._current: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def mark(self, name: str) -> None:
        """The stage `name` begins now; the one before it ends."""
        with self._lock:
            now = time.perf_counter()
            if self._current is not None:
                self.stages.append((self._current[0], now - self._current[1]))
            self._current = (name, now)

    def stop(self) -> float:
        """End the last stage; the wall time since the clock started."""
        with self._lock:
            now = time.perf_counter()
            if self._current is not None:
                self.stages.append((self._current[0], now - self._current[1]))
                self._current = None
            return now - self.started

    def as_list(self) -> list[dict[str, Any]]:
        merged: dict[str, float] = {}
        for name, seconds in self.stages:
            merged[name] = merged.get(name, 0.0) + seconds
        return [{"name": n, "seconds": round(s, 3)} for n, s in merged.items()]


@dataclass
class RunReport:
    """Everything a migrate run did; `as_dict()` is the stable report.json schema."""

    source: str
    target: str
    schema: str
    run_dir: str
    mode: str  # "create" or "data-only"
    started_at: str
    seconds: float = 0.0
    tables: list[TableResult] = field(default_factory=list)
    phases: list[PhaseResult] = field(default_factory=list)
    not_migrated: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # What the app will see behave differently on PostgreSQL (a default not translated, a
    # collation the app registers): printed before the notes, never buried among them.
    behaviour_changes: list[str] = field(default_factory=list)
    rejects_dir: str | None = None
    quarantine: str | None = None  # the PostgreSQL table holding the rejected rows too
    snapshot_sha256: str | None = None  # of the SQLite snapshot loaded; verify re-checks it
    verify: dict[str, Any] | None = None  # lite2pg.verify.VerifyReport.as_dict(), once run
    profile: dict[str, Any] | None = None  # lite2pg.profiles.Profile.as_dict(), if one applied
    # Wall time of each stage, in order (StageClock): they add up to `seconds`.
    stages: list[dict[str, Any]] = field(default_factory=list)
    # What the plan drops and rewrites (ledger.TableLedger.as_dict()), per table.
    ledger: list[dict[str, Any]] = field(default_factory=list)
    ledger_lines: list[str] = field(default_factory=list)  # the same, as the screen says it

    @property
    def rows_read(self) -> int:
        return sum(t.read for t in self.tables)

    @property
    def rows_loaded(self) -> int:
        return sum(t.loaded for t in self.tables)

    @property
    def rows_rejected(self) -> int:
        return sum(t.rejected for t in self.tables)

    @property
    def rows_filtered(self) -> int:
        return sum(t.filtered for t in self.tables)

    @property
    def problems(self) -> int:
        """Schema objects that should have been created and were not (e.g. an FK left NOT VALID)."""
        return sum(p.failed for p in self.phases if p.name != "views")

    @property
    def reconciled(self) -> bool:
        return all(t.read == t.loaded + t.rejected + t.filtered for t in self.tables)

    def verdict(self) -> str:
        return verdict_line(
            loaded=self.rows_loaded,
            tables=len(self.tables),
            rejected=self.rows_rejected,
            rejects_dir=self.rejects_dir,
            filtered=self.rows_filtered,
            problems=self.problems,
            verify=self.verify,
            reconciled=self.reconciled,
        )

    def exit_code(self, allow_rejects: bool = False) -> int:
        """0 when clean; 1 when rows were rejected, constraints could not be built, or the
        verification found a difference (that one is never allowed)."""
        if not self.reconciled:
            return 1
        if self.verify is not None and not self.verify.get("ok"):
            return 1
        if (self.rows_rejected or self.problems) and not allow_rejects:
            return 1
        return 0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": REPORT_VERSION,
            "source": self.source,
            "target": self.target,
            "schema": self.schema,
            "run_dir": self.run_dir,
            "mode": self.mode,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 3),
            "verdict": self.verdict(),
            "totals": {
                "read": self.rows_read,
                "loaded": self.rows_loaded,
                "rejected": self.rows_rejected,
                "filtered": self.rows_filtered,
            },
            "tables": [t.as_dict() for t in self.tables],
            "phases": [p.as_dict() for p in self.phases],
            "not_migrated": self.not_migrated,
            "notes": self.notes,
            "rejects_dir": self.rejects_dir,
        }
        if self.quarantine is not None:
            out["quarantine"] = self.quarantine
        # Present once known, so that a report.json without them keeps its old shape.
        if self.profile is not None:
            out["profile"] = self.profile
        if self.behaviour_changes:
            out["behaviour_changes"] = self.behaviour_changes
        if self.snapshot_sha256 is not None:
            out["snapshot_sha256"] = self.snapshot_sha256
        if self.verify is not None:
            out["verify"] = self.verify
        if self.stages:
            out["stages"] = self.stages
        if self.ledger:
            out["ledger"] = self.ledger
            out["ledger_lines"] = self.ledger_lines
        return out

    def write_json(self, path: Path) -> None:
        atomic_json(path, self.as_dict())

    def __str__(self) -> str:
        return self.verdict()


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def print_summary(report: RunReport, console: Console) -> None:
    """A pgloader-like summary: per table, then per phase, then the total."""
    t = RichTable(title=f"lite2pg migrate {report.source}", title_justify="left")
    for col in ("table", "read", "loaded", "rejected", "filtered", "bytes", "time"):
        t.add_column(col, justify="left" if col == "table" else "right")
    for r in report.tables:
        name = r.source if r.source == r.target else f"{r.source} -> {r.target}"
        t.add_row(
            name, str(r.read), str(r.loaded), str(r.rejected), str(r.filtered),
            _size(r.bytes), f"{r.seconds:.3f}s",
        )  # fmt: skip
    t.add_section()
    for p in report.phases:
        status = f"{p.done} done" + (f", {p.failed} not" if p.failed else "")
        t.add_row(p.name, "", status, "", "", "", f"{p.seconds:.3f}s")
    t.add_section()
    t.add_row(
        "total", str(report.rows_read), str(report.rows_loaded), str(report.rows_rejected),
        str(report.rows_filtered), _size(sum(r.bytes for r in report.tables)),
        f"{report.seconds:.3f}s",
    )  # fmt: skip
    console.print(t)
    if report.stages:
        parts = " + ".join(f"{s['name']} {s['seconds']:.2f}s" for s in report.stages)
        console.print(f"wall time {report.seconds:.2f}s = {parts}")
    if report.profile is not None:
        console.print(f"profile: {report.profile['summary']}")
        for note in report.profile.get("notes") or []:
            console.print(f"note: profile: {note}")
    for line in report.ledger_lines:
        console.print(line, markup=False)
    if report.quarantine:
        console.print(f"rejected rows: also in PostgreSQL, table {report.quarantine}")
    for change in report.behaviour_changes:
        console.print(f"behaviour change: {change}")
    for r in report.tables:
        if r.passwords:
            counts = ", ".join(f"{n} {kind}" for kind, n in r.passwords.items() if n)
            console.print(f"passwords: {r.source}: {counts or 'none'}")
        for note in r.notes:
            console.print(f"note: {r.source}: {note}")
    for item in report.not_migrated:
        console.print(f"not migrated: {item['kind']} {item['name']}: {item['reason']}")
    for note in report.notes:
        console.print(f"note: {note}")
    for p in report.phases:
        for note in p.notes:
            console.print(f"note: {note}")


def verdict_line(
    *,
    loaded: int,
    tables: int,
    rejected: int,
    rejects_dir: str | None,
    filtered: int,
    problems: int,
    verify: dict[str, Any] | None,
    reconciled: bool = True,
    unproven: str | None = None,
) -> str:
    """The report's one-line verdict ("OK: ..." or "ATTENTION: ..."), from its figures.
    `unproven`: what to say when there is no proof (a retry: "not verified since the
    retry"); without it, a run with --no-verify says nothing of proof."""
    if not reconciled:
        return "FAILED: row counts do not reconcile"
    parts = [f"{loaded} rows loaded into {tables} tables"]
    if rejected:
        parts.append(f"{rejected} rejected (see {rejects_dir})")
    if filtered:
        parts.append(f"{filtered} filtered out by the plan")
    if problems:
        parts.append(f"{problems} key/index/constraint problems (see notes)")
    verified = verify is None or bool(verify.get("ok"))
    if verify is not None:
        parts.append("verified row by row" if verified else "VERIFY FAILED (see report.html)")
    elif unproven:
        parts.append(unproven)
    ok = not rejected and not problems and verified
    return ("OK: " if ok else "ATTENTION: ") + ", ".join(parts)
