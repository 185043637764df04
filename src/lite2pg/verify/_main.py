"""The whole verify run: snapshot hash in the background, counts, content jobs, foreign
keys, distributions, spot-checks, then report.json and report.html."""

from __future__ import annotations

import collections
import dataclasses
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from decimal import InvalidOperation
from pathlib import Path
from typing import Any

from psycopg import sql

from lite2pg import source
from lite2pg.artifacts import atomic_json
from lite2pg.coerce import Family, converter
from lite2pg.errors import TargetError, TransformError
from lite2pg.layout import parents_first, table_plan
from lite2pg.rundir import SNAPSHOT_NAME
from lite2pg.schema import TableMap
from lite2pg.source import quote_ident
from lite2pg.target import Target
from lite2pg.verify import _distributions
from lite2pg.verify._canon import Row, snapshot_sha256
from lite2pg.verify._catalog import check_catalog
from lite2pg.verify._counts import _fold, _pg_count, _reconcile
from lite2pg.verify._distributions import _map_distributions
from lite2pg.verify._evidence import check_record, replay_refused
from lite2pg.verify._fast import fast_path_refusal
from lite2pg.verify._fks import _check_foreign_keys
from lite2pg.verify._parallel import Progress, _run_jobs, _unit_specs, start_workers_early
from lite2pg.verify._rejects import _check_run_rejects
from lite2pg.verify._report import EvidenceCheck, TableVerification, VerifyError, VerifyReport
from lite2pg.verify._run import _key_columns, _open_run, _Run
from lite2pg.verify._sorted import slice_column, sorted_refusal
from lite2pg.verify._spot import _spot_checks
from lite2pg.verify._table import _Table


def _run_verify(
    run_dir: Path,
    target: Target,
    sample: int,
    seed: int,
    float_tolerance: float,
    unit_rows: int,
    parallel_min_rows: int,
    pg_snapshot: str | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """`lite2pg.verify.verify`, with the package's tuning constants passed in."""
    started = time.perf_counter()
    run_dir = Path(run_dir)
    report_path = run_dir / "report.json"
    try:
        run_report = json.loads(report_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VerifyError(
            str(run_dir), "no report.json", "verify a run directory that migrate completed"
        ) from None
    except json.JSONDecodeError as e:
        raise VerifyError(str(report_path), f"damaged: {e}", "run migrate again") from None
    snap = run_dir / SNAPSHOT_NAME
    if not snap.is_file():
        raise VerifyError(str(run_dir), f"no {SNAPSHOT_NAME}", "verify a complete migrate run")
    recorded = run_report.get("snapshot_sha256") or (
        (run_report.get("verify") or {}).get("snapshot") or {}
    ).get("sha256")
    hashing = _Background(snapshot_sha256, snap)
    start_workers_early(*_jobs_expected(run_report, unit_rows), parallel_min_rows)
    try:
        report = _verify(
            run_dir,
            target,
            run_report,
            sample,
            seed,
            float_tolerance,
            started,
            unit_rows,
            parallel_min_rows,
            pg_snapshot,
            progress,
        )
    except BaseException:
        actual = hashing.result()
        if recorded and actual != recorded:
            raise _snapshot_changed(snap, recorded, actual) from None
        raise
    actual = hashing.result()
    if recorded and actual != recorded:
        raise _snapshot_changed(snap, recorded, actual)
    t0 = time.perf_counter()
    report.evidence = report.evidence or EvidenceCheck()
    check_record(run_dir, actual, report.evidence)
    report.phases["evidence"] = report.phases.get("evidence", 0.0) + time.perf_counter() - t0
    report.snapshot_sha256 = actual
    report.snapshot_check = "unchanged" if recorded else "recorded"
    report.phases["snapshot sha256"] = hashing.seconds
    writing = time.perf_counter()
    run_report.setdefault("snapshot_sha256", actual)
    report.seconds = time.perf_counter() - started
    run_report["verify"] = report.as_dict()
    _write_json(report_path, run_report)
    from lite2pg.report_html import write_html

    write_html(run_dir / "report.html", run_report)
    report.phases["report"] = time.perf_counter() - writing
    report.seconds = time.perf_counter() - started
    run_report["verify"] = report.as_dict()
    _write_json(report_path, run_report)
    return report


def _bounds(main: _Run, tm: TableMap) -> tuple[int, int] | None:
    """The range of values that cuts a big table into jobs: its INTEGER PRIMARY KEY's, or
    for a table without a key whose rows render in SQL, the integers of its
    `slice_column` (`_sorted`); None when there is none."""
    table_q = quote_ident(tm.source.name)
    alias = tm.source.rowid_alias
    if alias is not None and tm.has(alias):
        q = quote_ident(alias)
        # Two subqueries: SQLite looks each end up, where min() and max() in one query
        # scan the whole table.
        lo, hi = main.src.execute(
            f"SELECT (SELECT min({q}) FROM {table_q}), (SELECT max({q}) FROM {table_q})"
        ).fetchone()
    elif not _key_columns(tm):
        t = _Table(main, tm.source.name, {})
        i = slice_column(t)
        if i is None or sorted_refusal(t) is not None:
            return None
        q = quote_ident(t.pipe.source_columns[i])
        lo, hi = main.src.execute(
            f"SELECT min({q}), max({q}) FROM {table_q} WHERE typeof({q}) = 'integer'"
        ).fetchone()
    else:
        return None
    if isinstance(lo, int) and isinstance(hi, int):
        return lo, hi
    return None


def _jobs_expected(run_report: dict[str, Any], unit_rows: int) -> tuple[int, int]:
    """The source rows report.json says the run read, and about how many content jobs
    they make (a hint only: the rows are counted afresh, the jobs cut, later)."""
    rows = jobs = 0
    for t in run_report.get("tables") or []:
        read = t.get("read") if isinstance(t, dict) else None
        if isinstance(read, int) and read >= 0:
            rows += read
            jobs += max(1, -(-read // unit_rows))
    return rows, jobs


def _snapshot_changed(snap: Path, recorded: str, actual: str) -> VerifyError:
    return VerifyError(
        str(snap),
        f"the snapshot changed since it was recorded (SHA-256 {recorded[:16]}..., "
        f"now {actual[:16]}...), so it is no longer what the run loaded",
        "run migrate again to make a new snapshot and load it",
    )


class _Background:
    """Run a function in a thread (hashlib and SQLite release the GIL)."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self._out: list[Any] = []
        self._err: list[BaseException] = []
        self.seconds = 0.0

        def work() -> None:
            t0 = time.perf_counter()
            try:
                self._out.append(fn(*args))
            except BaseException as e:
                self._err.append(e)
            self.seconds = time.perf_counter() - t0

        self._thread = threading.Thread(target=work, name="lite2pg-verify-bg", daemon=True)
        self._thread.start()

    def result(self) -> Any:
        self._thread.join()
        if self._err:
            raise self._err[0]
        return self._out[0]


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_json(path, data)


def _verify(
    run_dir: Path,
    target: Target,
    run_report: dict[str, Any],
    sample: int,
    seed: int,
    tolerance: float,
    started: float,
    unit_rows: int,
    parallel_min_rows: int,
    given_snapshot: str | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    main = _open_run(run_dir, target, given_snapshot)
    try:
        row = main.pg.execute("SELECT pg_export_snapshot()").fetchone()
        pg_snapshot = str(row[0]) if row else None
        opts = main.opts
        report = VerifyReport(
            run_dir=str(run_dir),
            target=target.display,
            schema=opts.schema,
            mode="data-only" if opts.data_only else "create",
            settings={"sample": sample, "seed": seed, "float_tolerance": tolerance},
        )
        logged = {t["source"]: t for t in run_report.get("tables") or []}
        tables: dict[str, TableVerification] = {}
        for tm in main.maps:
            tv = TableVerification(tm.source.name, tm.target, _key_columns(tm))
            tv.report = dict(logged.get(tm.source.name) or {})
            tables[tm.source.name] = tv
        phases["setup"] = time.perf_counter() - t0

        # The catalog first: a table whose columns are not what the run made (a type
        # changed, a column gone) cannot have its rows compared at the run's types; it
        # fails with the reason, and the other checks go on without it.
        t0 = time.perf_counter()
        report.catalog = check_catalog(main, target, run_report)
        blocked = {c.source: c.blocked for c in report.catalog if c.blocked}
        for name, why in blocked.items():
            tables[name].problems.append(f"content not compared: {why} (see the catalog)")
        main_all = main
        main = dataclasses.replace(
            main, maps=[tm for tm in main.maps if tm.source.name not in blocked]
        )
        order = parents_first(main.maps)
        phases["catalog"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        sizes: dict[str, int] = {}
        bounds: dict[str, tuple[int, int] | None] = {}
        for tm in order:
            tv = tables[tm.source.name]
            tp = table_plan(opts.plan, tm.source.name)
            tv.source_rows = source.count_rows(main.src, tm.source.name)
            if tp is not None and tp.where:
                tv.filtered = source.count_rows(
                    main.src, tm.source.name, f"NOT coalesce(({tp.where}), 0)"
                )
            sizes[tm.source.name] = tv.source_rows
            bounds[tm.source.name] = None
            if tv.source_rows > unit_rows:
                bounds[tm.source.name] = _bounds(main, tm)
        phases["counts"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        specs = _unit_specs(
            run_dir, target, pg_snapshot, order, sizes, bounds, sample, seed, tolerance, unit_rows
        )
        # PostgreSQL counts its rows, and the snapshot its rows per FK value for the tables
        # the fast path takes, while the content jobs run (they have connections of their
        # own): this work overlaps theirs instead of coming first.
        counting = _Background(_background_counts, main, order)
        try:
            results, fk_totals = _run_jobs(main, order, specs, sizes, parallel_min_rows, progress)
        finally:
            target_rows, null_keys, fk_raw = counting.result()
        for tm in order:
            name = tm.source.name
            if name in target_rows:
                tables[name].target_rows = target_rows[name]
            else:  # the fast path's tables: the rows its jobs counted, and NULL keys
                counted = sum(u.target_rows for u in results.get(name, []))
                tables[name].target_rows = counted + null_keys[name]
            totals = fk_totals[tm.source.name]
            if totals.fast:
                for column, (raw, key, integers) in fk_raw.get(tm.source.name, {}).items():
                    if raw is None:
                        totals.not_held.append(column)
                        totals.columns.pop(column, None)
                    else:
                        totals.add_source(column, raw, key, integers)
        phases["content"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        report.foreign_keys = _check_foreign_keys(main)
        phases["foreign keys"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        gone: dict[str, list[Row]] = {}
        for tm in order:
            units = results.get(tm.source.name, [])
            _fold(tables[tm.source.name], units)
            for u in units:
                for k, v in u.gone.items():
                    gone.setdefault(k, []).extend(v)
        for tm in order:
            tv = tables[tm.source.name]
            units = results.get(tm.source.name, [])
            report.distributions.extend(_map_distributions(main, tm, units))
            report.distributions.extend(fk_totals[tm.source.name].checks(tm.source.name))
            _check_run_rejects(main, tm, tv, gone)
        phases["distributions"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        for tm in order:
            report.spot_checks.extend(_spot_checks(main, tm, gone, sample, seed))
        phases["spot checks"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        report.evidence = EvidenceCheck()
        replay_refused(main, target, gone, report.evidence)
        phases["evidence"] = time.perf_counter() - t0

        for tm in order:
            _reconcile(tables[tm.source.name])
        report.tables = [tables[tm.source.name] for tm in main_all.maps]
        report.phases = phases
        report.seconds = time.perf_counter() - started
        return report
    except TargetError as e:
        # Verify was connected: a connection it opens now (a worker joining the shared
        # snapshot, the catalog's, the evidence's) failing means the server went away.
        if not e.problem.startswith("cannot connect"):
            raise
        raise TargetError(
            f"lost the connection while verifying: {e.problem}",
            "verify writes nothing; once the server answers, run lite2pg verify RUN again",
        ) from None
    finally:
        main.close()


_FkRaw = dict[str, dict[str, tuple[collections.Counter[Any] | None, Callable[[Any], Any], bool]]]


def _background_counts(
    main: _Run, order: Sequence[TableMap]
) -> tuple[dict[str, int], dict[str, int], _FkRaw]:
    """PostgreSQL's row count per table, except for the tables the fast path takes: its
    jobs count every row of the key ranges on both sides, so only the rows with a NULL key
    (in no range) are counted here. For those tables also the snapshot's rows per raw value
    of each plain FK column (`_Table.plain_fks`, after the plan's filter), with the function
    that makes a raw value canonical."""
    counts: dict[str, int] = {}
    null_keys: dict[str, int] = {}
    raw: _FkRaw = {}
    for tm in order:
        t = _Table(main, tm.source.name, {})
        if fast_path_refusal(t) is not None:
            counts[tm.source.name] = _pg_count(main, tm.target)
            continue
        key = sql.Identifier(t.columns[t.key_s[0]].target)
        row = main.pg.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE {} IS NULL").format(t.qualified, key)
        ).fetchone()
        null_keys[tm.source.name] = int(row[0]) if row else 0
        where = f" WHERE {t.pipe.where}" if t.pipe.where else ""
        for i in t.plain_fks:
            q = quote_ident(t.pipe.source_columns[i])
            # Text that is not UTF-8 reads as the content jobs read it (InvalidText).
            factory = main.src.text_factory
            main.src.text_factory = source.decode_text
            try:
                groups = _fk_groups(
                    main.src,
                    f"SELECT {q}, count(*) FROM {quote_ident(tm.source.name)}{where} GROUP BY 1",
                )
            finally:
                main.src.text_factory = factory
            pg_type = t.columns[i].pg_type
            raw.setdefault(tm.source.name, {})[t.columns[i].target] = (
                groups,
                _canonical(converter(pg_type), t.canon[i], pg_type.int_range),
                pg_type.family is Family.INTEGER,
            )
    return counts, null_keys, raw


def _fk_groups(src: sqlite3.Connection, query: str) -> collections.Counter[Any] | None:
    """The rows per value the query gives, or None past `FK_GROUPS_HELD` values."""
    out: collections.Counter[Any] = collections.Counter()
    cur = src.execute(query)
    try:
        while rows := cur.fetchmany(10_000):
            out.update(dict(rows))
            if len(out) > _distributions.FK_GROUPS_HELD:
                return None
    finally:
        cur.close()
    return out


def _canonical(
    conv: Callable[[Any], Any], canon: Callable[[Any], Any], int_range: tuple[int, int] | None
) -> Callable[[Any], Any]:
    lo, hi = int_range or (1, 0)

    def key(value: Any) -> Any:
        if type(value) is int and lo <= value <= hi:
            return value  # an integer column's value as it stands (the common FK)
        try:
            return canon(conv(value))
        except (TransformError, ValueError, TypeError, InvalidOperation):
            return ("raw value", repr(value))  # no canonical value equals a tuple

    return key
