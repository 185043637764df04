"""The plan's steps 2 and 3 as separate commands over a run directory: `transform` writes
what will be loaded to transformed/<table>.csv, `load` re-checks those files against the
manifest and copies them in.

`load` goes through a staging schema and one publishing transaction, like `migrate`: a load
killed at any moment leaves the target as it was, and running it again finishes it.
"""

from __future__ import annotations

import csv
import decimal
import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from lite2pg import evidence, keys, source
from lite2pg.artifacts import (
    READ_BATCH_SIZE,
    Journal,
    Manifest,
    atomic_writer,
    describe_file,
    encode_value,
    read_manifest,
    read_table_csv,
    verify_file,
    write_manifest,
)
from lite2pg.coerce import Converter
from lite2pg.errors import TransformError, file_errors
from lite2pg.existing import (
    begin_in_place,
    exact_checks,
    existing_maps,
    finish_in_place,
    no_create,
)
from lite2pg.layout import create_maps, parents_first, table_plan
from lite2pg.lifecycle import RunStateError
from lite2pg.load import PhaseResult, TableResult, load_table
from lite2pg.plan import Plan
from lite2pg.reasons import Category
from lite2pg.report import RunReport
from lite2pg.rows import (
    GoneRows,
    RejectSink,
    RowStream,
    TableCounts,
    build_pipeline,
    gather_rejects,
)
from lite2pg.rows import safe_filename as _file
from lite2pg.run import close_report, denied, keep_nocase, lock_schema, verify_into
from lite2pg.rundir import SNAPSHOT_NAME, read_run_file, write_run_file
from lite2pg.runtarget import record_target
from lite2pg.schema import TableMap, create_table_sql
from lite2pg.sinks import COPY_SUFFIX, copy_path
from lite2pg.staging import (
    check_absent,
    drop_stage,
    open_stage,
    publish,
    publish_done,
    staged_maps,
)
from lite2pg.target import Target, connect, server_failure


def _csv_value(value: Any) -> Any:
    """What a converter hands over, as the SQLite-like value the CSV encoding takes."""
    if isinstance(value, bool):
        return int(value)  # PostgreSQL's boolean reads '1' and '0'
    if isinstance(value, decimal.Decimal):
        return str(value)  # exact; numeric parses it
    return value


@file_errors
def transform(run_dir: Path) -> dict[str, dict[str, int]]:
    """Step 2: every table of the run's snapshot through the plan, to transformed/*.csv.

    Rejected rows go to rejects/ as in a migrate; passwords are hashed here (and cached).
    Returns per table the counts read, rejected and filtered.
    """
    _, opts = read_run_file(run_dir)
    manifest = _manifest(run_dir)
    verify_file(run_dir, SNAPSHOT_NAME, manifest=manifest)
    journal = Journal(run_dir)
    journal.set_stage("transform", "running")
    src = source.open_readonly(run_dir / SNAPSHOT_NAME)
    rejects = RejectSink(run_dir / "rejects")
    counts: dict[str, dict[str, int]] = {}
    try:
        schema = source.discover(src)
        layout = opts.layout(schema)
        maps, _ = create_maps(layout, opts.plan)
        gone = GoneRows(src, layout.tables)
        for t in layout.skipped:
            gone.record_where_not(t, None)
        for tm in parents_first(maps):
            name = tm.source.name
            journal.set_table("transform", name, "running")
            tp = table_plan(opts.plan, name)
            rejects.reset(name)
            stream = RowStream(
                src, build_pipeline(tm, tp, gone), rejects, run_dir=run_dir, gone=gone,
                careful=True,  # every value through Python: exactly typed for the CSV
            )  # fmt: skip
            path = run_dir / "transformed" / f"{_file(name)}.csv"
            rows = _write_rows(path, tm.target_columns, stream.batches())
            if tp is not None and tp.where:
                gone.record_where_not(tm.source, tp.where)
            c = stream.counts
            counts[name] = {"read": c.read, "rejected": c.rejected, "filtered": c.filtered}
            manifest.add(run_dir, describe_file(path, rows=rows))
            journal.set_table("transform", name, "done", **counts[name])
        manifest.tables.setdefault("_transform", {})["counts"] = counts
        write_manifest(run_dir, manifest)
    except BaseException as e:
        journal.set_stage(
            "transform", "failed", reason=str(e).splitlines()[0] if str(e) else repr(e)
        )
        raise
    finally:
        rejects.close()
        src.close()
    evidence.write_evidence(run_dir, "transform")
    journal.set_stage("transform", "done")
    return counts


def _manifest(run_dir: Path) -> Manifest:
    try:
        return read_manifest(run_dir)
    except FileNotFoundError:
        raise RunStateError(run_dir, "no manifest.json", "run lite2pg export first") from None


def _write_rows(path: Path, header: list[str], batches: Iterator[list[tuple[Any, ...]]]) -> int:
    """Rows to an RFC 4180 CSV in the artifacts' encoding, atomically; returns the count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with atomic_writer(path, mode=0o600) as raw:
        f = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        writer = csv.writer(f, lineterminator="\r\n")
        writer.writerow(header)
        for batch in batches:
            writer.writerows([encode_value(_csv_value(v)) for v in row] for row in batch)
            count += len(batch)
        f.flush()
        f.detach()  # atomic_writer fsyncs and closes the file itself
    return count


@dataclass
class _CsvPipe:
    dump_types: list[str] | None = None  # values are plain: psycopg picks by Python type
    secret_columns: frozenset[str] = frozenset()


@dataclass
class _CsvRows:
    """A transformed CSV as the loader's row stream: the rows are final already, but for
    `checks`: into an existing schema, the columns whose target type would round or rewrite
    a value are converted again, to that type (`existing.exact_checks`)."""

    table: str
    path: Path
    rejects: RejectSink
    columns: list[str | None]  # the source column of each CSV column (None: added by a plan)
    key_columns: tuple[str, ...]
    pipe: _CsvPipe = field(default_factory=_CsvPipe)
    counts: TableCounts = field(default_factory=TableCounts)
    checks: list[tuple[int, str, Converter]] = field(default_factory=list)

    def batches(self) -> Iterator[list[tuple[Any, ...]]]:
        read = 0
        for batch in read_table_csv(self.path):
            self.counts.read += len(batch)
            yield self._checked(batch, read) if self.checks else batch
            read += len(batch)

    def _checked(self, batch: list[tuple[Any, ...]], read: int) -> list[tuple[Any, ...]]:
        kept: list[tuple[Any, ...]] = []
        for n, row in enumerate(batch):
            out = list(row)
            for i, column, convert in self.checks:
                try:
                    out[i] = convert(out[i])
                except TransformError as e:
                    self.reject(row, read + n, column, e.reason, e.category)
                    break
            else:
                kept.append(tuple(out))
        return kept

    def reject(
        self,
        values: tuple[Any, ...],
        ordinal: int | None,
        column: str | None,
        reason: str,
        category: Category = Category.OTHER,
    ) -> None:
        self.counts.rejected += 1
        row = {c: v for c, v in zip(self.columns, values, strict=False) if c is not None}
        key = {k: row[k] for k in self.key_columns if k in row} or {"row": (ordinal or 0) + 1}
        self.rejects.write(self.table, key, column, reason, row, self.pipe.secret_columns)


_COPY_ESCAPE = re.compile(r"\\(?:([0-7]{1,3})|x([0-9a-fA-F]{1,2})|(.))", re.DOTALL)
_COPY_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _copy_unescape(m: re.Match[str]) -> str:
    octal, hexa, char = m.groups()
    if octal is not None:
        return chr(int(octal, 8))
    if hexa is not None:
        return chr(int(hexa, 16))
    return _COPY_ESCAPES.get(char, char)


def copy_text_fields(line: str) -> tuple[str | None, ...]:
    """One line of PostgreSQL's COPY text format (without its newline) as its values."""
    return tuple(
        None if f == "\\N" else _COPY_ESCAPE.sub(_copy_unescape, f) if "\\" in f else f
        for f in line.split("\t")
    )


@dataclass
class _CopyRows(_CsvRows):
    """A migrate run's transformed file (the COPY data PostgreSQL took, `sinks.py`): sent
    back to COPY as it is, or, for a careful replay or exact checks, as rows of text."""

    def raw_chunks(self) -> Iterator[bytes] | None:
        if self.checks:
            return None
        return self._chunks()

    def _chunks(self) -> Iterator[bytes]:
        with self.path.open("rb") as f:
            while chunk := f.read(1 << 20):
                self.counts.read += chunk.count(b"\n")
                yield chunk

    def batches(self) -> Iterator[list[tuple[Any, ...]]]:
        read = 0
        batch: list[tuple[Any, ...]] = []
        with self.path.open("r", encoding="utf-8", newline="\n") as f:
            for line in f:
                batch.append(copy_text_fields(line.removesuffix("\n")))
                if len(batch) >= READ_BATCH_SIZE:
                    self.counts.read += len(batch)
                    yield self._checked(batch, read) if self.checks else batch
                    read += len(batch)
                    batch = []
        if batch:
            self.counts.read += len(batch)
            yield self._checked(batch, read) if self.checks else batch


@file_errors
def load(
    run_dir: Path,
    target: Target,
    *,
    drop: bool = False,
    verify: bool = True,
    progress: Any = None,
) -> RunReport:
    """Step 3: re-check the transformed files against the manifest, copy them in, and (as
    `migrate` does) prove the result against the snapshot."""
    source_path, opts = read_run_file(run_dir)
    manifest = _manifest(run_dir)
    transformed = manifest.tables.get("_transform", {})
    if "counts" not in transformed:  # (a source without tables transforms to no counts)
        raise RunStateError(run_dir, "nothing transformed yet", "run lite2pg transform first")
    counts: dict[str, dict[str, int]] = transformed["counts"]
    # A migrate run keeps the COPY data itself (sinks.py); `transform` writes CSV.
    suffix = COPY_SUFFIX if transformed.get("format") == "copy" else ".csv"
    for name in counts:
        verify_file(run_dir, f"transformed/{_file(name)}{suffix}", manifest=manifest)
    journal = Journal(run_dir)
    journal.set_stage("load", "running")
    started = time.perf_counter()
    report = RunReport(
        source=str(source_path), target=target.display, schema=opts.schema, run_dir=str(run_dir),
        mode="data-only" if opts.data_only else "create",
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        profile=opts.applied_profile,
    )  # fmt: skip
    record_target(run_dir, target)
    src = source.open_readonly(run_dir / SNAPSHOT_NAME)
    rejects = RejectSink(run_dir / "rejects", ".load")
    conn = connect(target, autocommit=True)
    try:
        lock_schema(conn, opts.schema)
        schema = source.discover(src)
        layout = opts.layout(schema)
        if opts.data_only:
            maps = existing_maps(conn, opts.schema, opts.plan, layout.tables, layout.casts)
            results, phases = _load_in_place(
                conn, run_dir, maps, opts.schema, rejects, opts.truncate, progress, counts,
                opts.plan,
            )  # fmt: skip
        else:
            opts = keep_nocase(conn, src, schema, opts)
            write_run_file(run_dir, source_path, opts)
            layout = opts.layout(schema)
            maps, names, _ = staged_maps(conn, opts.schema, layout, opts.plan)
            results, phases = _load_staged(
                conn, run_dir, maps, names, opts.schema, rejects, drop or opts.drop, schema,
                progress, counts,
            )  # fmt: skip
    except psycopg.errors.InsufficientPrivilege as e:
        journal.set_stage("load", "failed", reason="permission denied")
        raise denied(e) from None
    except psycopg.OperationalError as e:
        failure = server_failure(e, "loading")
        journal.set_stage("load", "failed", reason=failure.problem)
        raise failure from None
    except BaseException as e:
        journal.set_stage("load", "failed", reason=str(e).splitlines()[0] if str(e) else repr(e))
        raise
    finally:
        rejects.close()
        conn.close()
        src.close()
        if (run_dir / "rejects").is_dir():
            _merge_rejects(run_dir)
    for r in results:
        c = counts.get(r.source, {})
        # Rows the transform rejected or filtered were never in the CSV.
        r.read = c.get("read", r.read)
        r.rejected += c.get("rejected", 0)
        r.filtered = c.get("filtered", 0)
    report.tables = results
    report.phases = phases
    close_report(report, run_dir, started, schema, layout, maps, phases)
    evidence.write_evidence(run_dir, "load")
    journal.set_stage("load", "done")
    publish_done(run_dir)  # the publish intent's done record: the report says what it did
    if verify:
        verify_into(report, run_dir, target, progress)
    return report


def _started(progress: Any, tm: TableMap, counts: dict[str, dict[str, int]]) -> None:
    if progress:
        progress.start_table(tm.source.name, counts.get(tm.source.name, {}).get("read", 0))


def _merge_rejects(run_dir: Path) -> None:
    """Rows PostgreSQL refused at load join the transform's rejects, one file per table."""
    for extra in sorted((run_dir / "rejects").glob("*.load.jsonl")):
        main = extra.with_name(extra.name.removesuffix(".load.jsonl") + ".jsonl")
        gather_rejects(main, [extra], append=True)


def _stream_for(
    run_dir: Path,
    tm: TableMap,
    rejects: RejectSink,
    checks: list[tuple[int, str, Converter]] | None = None,
) -> Any:
    path = copy_path(run_dir, tm.source.name)
    kind: type[_CsvRows] = _CopyRows
    if not path.exists():
        path, kind = run_dir / "transformed" / f"{_file(tm.source.name)}.csv", _CsvRows

    secret = frozenset(c.source for c in tm.columns if c.secret and c.source is not None)

    def stream(careful: bool) -> _CsvRows:
        return kind(
            tm.source.name,
            path,
            rejects,
            [c.source for c in tm.columns],
            tm.source.primary_key,
            _CsvPipe(secret_columns=secret),
            checks=list(checks or []),
        )

    return stream


def _load_staged(
    conn: psycopg.Connection[Any],
    run_dir: Path,
    maps: list[TableMap],
    names: keys.KeyNames,
    dest: str,
    rejects: RejectSink,
    drop: bool,
    schema: source.SourceSchema,
    progress: Any,
    counts: dict[str, dict[str, int]],
) -> tuple[list[TableResult], list[PhaseResult]]:
    check_absent(conn, dest, maps, drop=drop, now=False)
    stage = open_stage(conn, dest)
    results: list[TableResult] = []
    parts: list[list[PhaseResult]] = []
    try:
        for tm in maps:

            def create(cur: psycopg.Cursor[Any], tm: TableMap = tm) -> bool:
                cur.execute(create_table_sql(tm, stage))
                return True

            _started(progress, tm, counts)
            with conn.transaction():
                results.append(
                    load_table(
                        conn, tm, stage, rejects, _stream_for(run_dir, tm, rejects), prepare=create
                    )
                )
            if progress:
                progress.end_table(results[-1])
            parts.append(keys.finish_table(conn, stage, tm, names))
        phases = keys.merge_phases(parts)
        phases.append(keys.build_foreign_keys(conn, stage, maps, names))
        phases.append(publish(conn, stage, dest, maps, schema.views, drop=drop, run_dir=run_dir))
    except BaseException:
        drop_stage(conn, stage)
        raise
    return results, phases


def _load_in_place(
    conn: psycopg.Connection[Any],
    run_dir: Path,
    maps: list[TableMap],
    dest: str,
    rejects: RejectSink,
    truncate_first: bool,
    progress: Any,
    counts: dict[str, dict[str, int]],
    plan: Plan | None,
) -> tuple[list[TableResult], list[PhaseResult]]:
    results: list[TableResult] = []
    replace = plan.replaced_tables if plan is not None else frozenset()
    with conn.transaction():
        begin_in_place(conn, dest, maps, truncate_first=truncate_first, replace=replace)
        for tm in parents_first(maps):
            _started(progress, tm, counts)
            results.append(
                load_table(
                    conn,
                    tm,
                    dest,
                    rejects,
                    _stream_for(
                        run_dir, tm, rejects, exact_checks(tm, table_plan(plan, tm.source.name))
                    ),
                    prepare=no_create,
                )
            )
            if progress:
                progress.end_table(results[-1])
        phases = finish_in_place(conn, dest, maps)
    return results, phases
