"""Count checks: fresh counts on both sides, unit results summed per table, and the
reconciliation against report.json."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from psycopg import sql

from lite2pg.verify._report import MAX_SHOWN, TableVerification
from lite2pg.verify._run import _Run
from lite2pg.verify._stream import _UnitResult


def _pg_count(run: _Run, table: str) -> int:
    row = run.pg.execute(
        sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(run.opts.schema), sql.Identifier(table)
        )
    ).fetchone()
    return int(row[0]) if row else 0


def _fold(tv: TableVerification, units: Sequence[_UnitResult]) -> None:
    """Sum a table's unit results into its verification."""
    units = sorted(units, key=lambda u: u.unit)
    if not units:
        tv.problems.append("content was not compared")
        return
    for u in units:
        for name in (
            "present",
            "rejected",
            "refused",
            "missing",
            "extra",
            "changed",
            "rejected_present",
            "orphans_nulled",
        ):
            setattr(tv, name, getattr(tv, name) + getattr(u, name))
        tv.fast_rows += u.fast
        tv.slow_rows += u.slow
        tv.fast_chunks += u.chunks_fast
        tv.slow_chunks += u.chunks_slow
        if u.refusal is not None:
            tv.fast_path_refusal = u.refusal
        tv.seconds = max(tv.seconds, u.seconds)
        for d in u.differences:
            if len(tv.differences) < MAX_SHOWN:
                tv.differences.append(d)
        for column, stats in u.passwords.items():
            merged = tv.passwords.setdefault(column, {})
            for k, v in stats.items():
                merged[k] = merged.get(k, 0) + v
        for note in u.notes:
            if note not in tv.notes:
                tv.notes.append(note)
    tv.mode = units[0].mode
    if len(units) == 1:
        tv.source_digest = units[0].source_digest.hex()
        tv.target_digest = units[0].target_digest.hex()
    elif tv.mode == "unordered":
        # Slices of a table without a key: its digest is the sum of its rows' hashes.
        for side in ("source_digest", "target_digest"):
            total = sum(int.from_bytes(getattr(u, side), "big") for u in units)
            setattr(tv, side, (total % (1 << 256)).to_bytes(32, "big").hex())
    else:
        tv.source_digest = hashlib.sha256(b"".join(u.source_digest for u in units)).hexdigest()
        tv.target_digest = hashlib.sha256(b"".join(u.target_digest for u in units)).hexdigest()
    streamed = sum(u.streamed for u in units)
    if streamed != tv.source_rows - tv.filtered:
        tv.problems.append(
            f"the content pass read {streamed} source rows, but the snapshot has "
            f"{tv.source_rows - tv.filtered} after the plan's filter"
        )


def _reconcile(tv: TableVerification) -> None:
    """The count checks, each a problem that names the numbers."""
    r = tv.report
    rejected = tv.rejected + tv.refused
    if not r:
        tv.problems.append("report.json has no line for this table")
    else:
        read, loaded = int(r.get("read", 0)), int(r.get("loaded", 0))
        rej, filt = int(r.get("rejected", 0)), int(r.get("filtered", 0))
        if read != loaded + rej + filt:
            tv.problems.append(
                f"report.json does not reconcile: read {read} != loaded {loaded} + "
                f"rejected {rej} + filtered {filt}"
            )
        if read != tv.source_rows:
            tv.problems.append(f"report.json read {read} rows, the snapshot has {tv.source_rows}")
        if loaded != tv.target_rows:
            tv.problems.append(f"report.json loaded {loaded} rows, PostgreSQL has {tv.target_rows}")
        if filt != tv.filtered:
            tv.problems.append(
                f"report.json filtered {filt} rows, the plan's filter leaves {tv.filtered}"
            )
        if rej != rejected:
            tv.problems.append(
                f"report.json rejected {rej} rows, transform(source) rejects {tv.rejected}"
                + (f" and PostgreSQL refused {tv.refused}" if tv.refused else "")
            )
    if tv.source_rows != tv.target_rows + rejected + tv.filtered:
        tv.problems.append(
            f"counts do not reconcile: {tv.source_rows} source rows != {tv.target_rows} in "
            f"PostgreSQL + {rejected} rejected + {tv.filtered} filtered"
        )
    content = [
        (tv.missing, "missing"),
        (tv.extra, "extra"),
        (tv.changed, "changed"),
        (tv.rejected_present, "present although transform(source) rejects them"),
        (tv.run_rejects_present, "present although the run logged them as rejected"),
    ]
    for n, what in content:
        if n:
            first = _first(tv, what)
            tv.problems.append(f"{n} row(s) {what}" + (f" (first: {first})" if first else ""))
    if tv.source_digest != tv.target_digest and not any(n for n, _ in content):
        tv.problems.append("the digests of the two sides differ")
    for column, stats in tv.passwords.items():
        if stats.get("wrong"):
            tv.problems.append(f"{stats['wrong']} {column} value(s) are not the run's hash")
        if stats.get("sample failed"):
            tv.problems.append(
                f"{stats['sample failed']} sampled {column} hash(es) do not verify against "
                "the source password"
            )


def _first(tv: TableVerification, what: str) -> str:
    kind = {
        "missing": "missing",
        "extra": "extra",
        "changed": "changed",
        "present although transform(source) rejects them": "rejected but present",
        "present although the run logged them as rejected": "logged as rejected but present",
    }[what]
    for d in tv.differences:
        if d["kind"] == kind:
            key = ", ".join(f"{k}={v}" for k, v in d["key"].items())
            cols = ", ".join(c["column"] for c in d.get("columns", []))
            return key + (f": {cols}" if cols else "")
    return ""
