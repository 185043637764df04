"""The result objects of verify: per table, per foreign key, per distribution, and the
whole `VerifyReport` with its verdict and `as_dict()` for report.json."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lite2pg.errors import Lite2pgError

# Differences (and orphans, distribution differences) kept per table for the report.
MAX_SHOWN = 20
# Distinct before/after pairs kept per `map` column for the report.
MAX_PAIRS = 200
# How the per-table row digests are defined (see `_canon._Digests`): v2 hashes each column's
# canonical text in key order and combines the column digests; v1 hashed pickled rows.
DIGEST_NAME = "sha256 over canonical column text, lite2pg-v2"


class VerifyError(Lite2pgError):
    """Verification cannot run: a damaged run directory, a changed snapshot."""

    def __init__(self, what: str, problem: str, hint: str) -> None:
        self.what = what
        self.problem = problem
        super().__init__(f"verify: {what}: {problem} (hint: {hint})")


@dataclass
class TableVerification:
    """Everything verify found for one table; `ok` when nothing is wrong."""

    source: str
    target: str
    key: list[str]  # target key columns ([] for a table without a primary key)
    mode: str = "by key"  # "by key" | "unordered" (digest of the row multiset)
    # fresh counts
    source_rows: int = 0  # in the snapshot
    filtered: int = 0  # left behind by the plan's `where`
    target_rows: int = 0  # in PostgreSQL
    # what the content comparison found
    rejected: int = 0  # rejected by transform(source) and absent, as they must be
    refused: int = 0  # absent, and the run logged that PostgreSQL refused them
    present: int = 0  # expected, present and equal
    missing: int = 0
    extra: int = 0
    changed: int = 0
    rejected_present: int = 0  # should have been rejected, yet present
    fast_rows: int = 0
    slow_rows: int = 0
    fast_chunks: int = 0  # chunks of rows SQLite and PostgreSQL rendered as equal text
    slow_chunks: int = 0  # chunks the fast path merged row by row (their texts differed)
    fast_path_refusal: str | None = None  # why content went row by row (None: in chunks)
    orphans_nulled: int = 0
    run_rejects_present: int = 0  # logged as rejected by the run, yet present
    report: dict[str, Any] = field(default_factory=dict)  # report.json's line for the table
    source_digest: str = ""
    target_digest: str = ""
    differences: list[dict[str, Any]] = field(default_factory=list)
    passwords: dict[str, dict[str, int]] = field(default_factory=dict)
    reject_reasons: dict[str, int] = field(default_factory=dict)  # reason (no values) -> rows
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def expected_rows(self) -> int:
        return self.source_rows - self.filtered - self.rejected - self.refused

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "key": self.key,
            "mode": self.mode,
            "ok": self.ok,
            "counts": {
                "source_rows": self.source_rows,
                "filtered": self.filtered,
                "rejected": self.rejected + self.refused,
                "rejected_by_transform": self.rejected,
                "refused_by_postgresql": self.refused,
                "expected_rows": self.expected_rows,
                "target_rows": self.target_rows,
                "report": {
                    k: self.report.get(k) for k in ("read", "loaded", "rejected", "filtered")
                },
            },
            "content": {
                "present": self.present,
                "missing": self.missing,
                "extra": self.extra,
                "changed": self.changed,
                "rejected_present": self.rejected_present,
                "run_rejects_present": self.run_rejects_present,
                "orphans_nulled": self.orphans_nulled,
                "fast_rows": self.fast_rows,
                "slow_rows": self.slow_rows,
                "fast_chunks": self.fast_chunks,
                "slow_chunks": self.slow_chunks,
                "fast_path_refusal": self.fast_path_refusal,
            },
            "digest": {"source": self.source_digest, "target": self.target_digest},
            "differences": self.differences,
            "passwords": self.passwords,
            "reject_reasons": self.reject_reasons,
            "problems": self.problems,
            "notes": self.notes,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class ForeignKeyCheck:
    """One foreign key of the target: how it was checked and the orphans found."""

    table: str
    columns: list[str]
    parent: str
    parent_columns: list[str]
    constraint: str | None  # None: the target has no such constraint
    method: str  # "validated by PostgreSQL" | "anti-join"
    orphans: int = 0
    allowed: bool = False  # the plan keeps orphans of this key (on_orphan = "keep")
    examples: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.orphans == 0 or self.allowed

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "columns": self.columns,
            "parent": self.parent,
            "parent_columns": self.parent_columns,
            "constraint": self.constraint,
            "method": self.method,
            "orphans": self.orphans,
            "allowed": self.allowed,
            "examples": self.examples,
            "ok": self.ok,
        }


@dataclass
class DistributionCheck:
    """An application-level check: a column's value distribution on both sides."""

    table: str
    column: str  # target column
    kind: str  # "map" (values after the plan's map) | "foreign key" (rows per parent key)
    groups_source: int = 0
    groups_target: int = 0
    source_digest: str = ""
    target_digest: str = ""
    differences: list[dict[str, Any]] = field(default_factory=list)
    mapping: list[dict[str, Any]] = field(default_factory=list)  # before -> after, for maps
    not_made: str | None = None  # why the check was not made (the rows prove it anyway)

    @property
    def ok(self) -> bool:
        return self.source_digest == self.target_digest and not self.differences

    def as_dict(self) -> dict[str, Any]:
        out = self._as_dict()
        if self.not_made is not None:
            out["not_made"] = self.not_made
        return out

    def _as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "column": self.column,
            "kind": self.kind,
            "groups": {"source": self.groups_source, "target": self.groups_target},
            "digest": {"source": self.source_digest, "target": self.target_digest},
            "differences": self.differences,
            "mapping": self.mapping,
            "ok": self.ok,
        }


@dataclass
class CatalogCheck:
    """One table's catalog against what the run built, and its sequences (`_catalog`)."""

    source: str
    table: str  # target name
    scope: str = "as the run created it"
    differences: list[str] = field(default_factory=list)  # one line each, table first
    sequences: list[dict[str, Any]] = field(default_factory=list)
    blocked: str | None = None  # why its content cannot be compared (a column missing...)

    @property
    def ok(self) -> bool:
        return not self.differences

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "table": self.table,
            "scope": self.scope,
            "differences": self.differences,
            "sequences": self.sequences,
            "content_not_compared": self.blocked,
            "ok": self.ok,
        }


@dataclass
class EvidenceCheck:
    """The run's own evidence: evidence.json's hashes and HMAC recomputed, and every row
    the run logged as refused by PostgreSQL replayed (in a transaction rolled back)."""

    state: str = "pinned"  # "pinned" | "not pinned" (no record: an older lite2pg) | "broken"
    written_by: str = ""
    written_at: str = ""
    files: dict[str, str] = field(default_factory=dict)  # path -> unchanged|changed|added|missing
    counts_tables: int = 0  # tables whose report.json counts the record pins
    replayed: int = 0  # refused rows replayed against PostgreSQL
    refused_again: int = 0  # ... that PostgreSQL refused again (the claim stands)
    accepted: list[dict[str, Any]] = field(default_factory=list)  # rows it took: {table, key}
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def verdict(self) -> str:
        replay = (
            f"; {self.refused_again} of {self.replayed} refused row(s) refused again"
            if self.replayed
            else ""
        )
        if self.ok:
            return (
                f"evidence: PINNED: {len(self.files)} file(s) and the counts of "
                f"{self.counts_tables} table(s) as signed by {self.written_by or 'the run'}"
                f"{replay}"
            )
        word = "NOT VERIFIED" if self.state == "not pinned" else "FAILED"
        more = f" (and {len(self.problems) - 2} more)" if len(self.problems) > 2 else ""
        return f"evidence: {word}: " + "; ".join(self.problems[:2]) + more

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "verdict": self.verdict(),
            "state": self.state,
            "written_by": self.written_by,
            "written_at": self.written_at,
            "files": self.files,
            "counts_tables": self.counts_tables,
            "replayed": self.replayed,
            "refused_again": self.refused_again,
            "accepted": self.accepted,
            "problems": self.problems,
            "notes": self.notes,
        }


@dataclass
class VerifyReport:
    """The outcome of `verify`: `ok`, a one-line verdict (`str()`), and `as_dict()` for
    report.json's "verify" section."""

    run_dir: str
    target: str
    schema: str
    mode: str
    snapshot_sha256: str = ""
    snapshot_check: str = ""  # "recorded" (first verify) | "unchanged"
    tables: list[TableVerification] = field(default_factory=list)
    catalog: list[CatalogCheck] = field(default_factory=list)
    foreign_keys: list[ForeignKeyCheck] = field(default_factory=list)
    distributions: list[DistributionCheck] = field(default_factory=list)
    spot_checks: list[dict[str, Any]] = field(default_factory=list)
    evidence: EvidenceCheck | None = None
    phases: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def problems(self) -> list[str]:
        """Every failed check, one line each (no values of secret columns)."""
        out = [d for c in self.catalog for d in c.differences]
        out += [f"{t.source}: {p}" for t in self.tables for p in t.problems]
        for fk in self.foreign_keys:
            if not fk.ok:
                out.append(
                    f"{fk.table}: {fk.orphans} row(s) break the foreign key "
                    f"({', '.join(fk.columns)}) -> {fk.parent}"
                )
        for d in self.distributions:
            if not d.ok:
                out.append(f"{d.table}.{d.column}: {d.kind} distribution differs")
        if self.evidence is not None:
            out.extend(f"evidence: {p}" for p in self.evidence.problems)
        return out

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def catalog_ok(self) -> bool:
        """The catalog section's own verdict."""
        return all(c.ok for c in self.catalog)

    @property
    def rows(self) -> int:
        return sum(t.target_rows for t in self.tables)

    def verdict(self) -> str:
        if self.ok:
            checks = len(self.foreign_keys) + len(self.distributions)
            sequences = sum(len(c.sequences) for c in self.catalog)
            return (
                f"VERIFIED: {self.rows} rows in {len(self.tables)} tables equal "
                f"transform(source), counts reconcile, the catalog is as the run built it "
                f"({sequences} sequences past their keys), {checks} key and distribution "
                f"checks pass ({self.seconds:.1f}s)"
            )
        problems = self.problems
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        return "FAILED: " + "; ".join(problems[:3]) + more

    def __str__(self) -> str:
        return self.verdict()

    def raise_on_failed(self) -> None:
        """Raise `VerifyError` when any check failed."""
        if not self.ok:
            raise VerifyError(self.run_dir, self.verdict(), "see report.html in the run directory")

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "verdict": self.verdict(),
            "problems": self.problems,
            "run_dir": self.run_dir,
            "target": self.target,
            "schema": self.schema,
            "mode": self.mode,
            "snapshot": {"sha256": self.snapshot_sha256, "check": self.snapshot_check},
            "digest": DIGEST_NAME,
            "settings": self.settings,
            "tables": [t.as_dict() for t in self.tables],
            "catalog": {
                "ok": self.catalog_ok,
                "tables": [c.as_dict() for c in self.catalog],
            },
            "foreign_keys": [f.as_dict() for f in self.foreign_keys],
            "distributions": [d.as_dict() for d in self.distributions],
            "spot_checks": self.spot_checks,
            "evidence": None if self.evidence is None else self.evidence.as_dict(),
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
            "seconds": round(self.seconds, 3),
        }
