"""lite2pg retry: a run's rejected rows, again, through a fixed plan, into its tables.

The loop a team runs to reach zero loss: `lite2pg check` groups the rejects by column and
reason and proposes plan lines; `lite2pg retry RUN --plan FIX.toml` takes the run's plan
with those lines laid over it, and sends only the rows the run rejected through it, from
the run's snapshot, into the tables the run published. The guarantees are the load's:

- One transaction for every table: rows the new plan takes are in, parents before
  children (a parent taken now makes its orphans loadable), sequences moved past the new
  keys; or nothing is.
- The new plan may change only what happens to values (column transforms) and let
  orphans in (`on_orphan` from "reject" to "null" or "keep"); and it must give every row
  already loaded the very value it got. Each changed column is run over the distinct
  values of the loaded rows under both plans: one difference and the retry refuses
  (migrate again instead). Password transforms may not change.
- The run then is the run of the new plan: run.json holds it, rejects/ the rows still
  rejected, report.json the counts; the quarantine table and the evidence record follow;
  verify proves the whole run again.

A crash between the commit and the files: `retry.pending.json`, written before the
commit, lets the next `retry` (or `status`) finish forwards, or drop it when the commit
never happened.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from lite2pg import evidence, keys, quarantine, source
from lite2pg.artifacts import atomic_write, fsync_dir
from lite2pg.errors import Lite2pgError, TargetError
from lite2pg.existing import existing_maps
from lite2pg.layout import create_maps, parents_first, table_plan
from lite2pg.load import TableResult, load_table
from lite2pg.plan import Plan, TablePlan, merge_plans
from lite2pg.report import verdict_line
from lite2pg.rows import (
    GoneRows,
    RejectSink,
    RowStream,
    build_pipeline,
    read_rejects,
    safe_filename,
)
from lite2pg.rundir import SNAPSHOT_NAME, MigrateOptions, read_run_file, write_run_file
from lite2pg.schema import TableMap
from lite2pg.source import quote_ident
from lite2pg.target import Target, connect, server_failure
from lite2pg.verify import verify

PENDING = "retry.pending.json"
NEW_REJECTS = "rejects.retry"
# Structural keys of a table's plan: a retry that changes one of them is a new migration.
_SHAPE = ("target", "skip", "rename", "drop", "add", "cast", "where", "replace")


class RetryError(Lite2pgError):
    """A retry that cannot be done as asked; nothing was changed."""

    def __init__(self, problem: str, hint: str) -> None:
        self.problem = problem
        super().__init__(f"retry: {problem} (hint: {hint})")


@dataclass
class TableRetry:
    table: str
    retried: int = 0
    loaded: int = 0
    rejected: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class RetryResult:
    run_dir: str
    tables: list[TableRetry] = field(default_factory=list)
    verify: dict[str, Any] | None = None
    recovered: str | None = None  # what became of an interrupted earlier retry

    @property
    def loaded(self) -> int:
        return sum(t.loaded for t in self.tables)

    @property
    def rejected(self) -> int:
        return sum(t.rejected for t in self.tables)

    @property
    def ok(self) -> bool:
        return self.verify is None or bool(self.verify.get("ok"))

    def __str__(self) -> str:
        if not self.tables and self.recovered:
            return f"OK: {self.recovered}; no rejected row is left"
        retried = sum(t.retried for t in self.tables)
        head = f"{self.loaded} of {retried} rejected row(s) loaded"
        rest = f", {self.rejected} still rejected" if self.rejected else ", none left rejected"
        proof = ""
        if self.verify is not None:
            proof = ", verified row by row" if self.ok else ", VERIFY FAILED (see report.html)"
        word = "OK: " if self.ok and not self.rejected else "ATTENTION: "
        return word + head + rest + proof


def retry(
    run_dir: Path,
    target: Target,
    fix: Plan,
    *,
    verify_after: bool = True,
) -> RetryResult:
    """Retry the rejected rows of the run in `run_dir` through its plan with `fix` laid
    over it, then verify the whole run again (unless `verify_after` is false)."""
    source_path, opts = read_run_file(run_dir)
    report_path = run_dir / "report.json"
    snap = run_dir / SNAPSHOT_NAME
    if not report_path.exists() or not snap.exists():
        raise RetryError("the run has no committed load to retry into", "run migrate first")
    _refuse_after_online_cutover(run_dir)
    recovered = finish_pending(run_dir, target)
    new_plan = merge_plans(opts.plan, fix, fix.origin) if opts.plan is not None else fix
    new_opts = dataclasses.replace(opts, plan=new_plan)
    src = source.open_readonly(snap)
    conn = connect(target, autocommit=True)  # its one transaction is explicit
    result = RetryResult(str(run_dir), recovered=recovered)
    try:
        schema = source.discover(src)
        old_layout, new_layout = opts.layout(schema), new_opts.layout(schema)
        maps = _maps(conn, opts, old_layout)
        new_maps = _maps(conn, new_opts, new_layout)
        _same_shape(maps, new_maps, opts.plan, new_plan)
        rejected = {tm.source.name: _rejected_keys(run_dir, tm) for tm in maps}
        if not any(rejected.values()):
            if recovered is not None:
                return result
            raise RetryError("the run rejected no row", "nothing to retry")
        for tm in maps:
            _same_values_for_loaded_rows(src, tm, rejected[tm.source.name], opts.plan, new_plan)
        shutil.rmtree(run_dir / NEW_REJECTS, ignore_errors=True)
        sink = RejectSink(run_dir / NEW_REJECTS)
        gone = GoneRows(src, new_layout.tables)
        for t in new_layout.skipped:
            gone.record_where_not(t, None)
        for t in new_layout.tables:
            tp = table_plan(new_plan, t.name)
            if tp is not None and tp.where:
                gone.record_where_not(t, tp.where)
        probe: dict[str, Any] | None = None
        try:
            with conn.transaction():
                for tm in parents_first(new_maps):
                    keys_of = rejected[tm.source.name]
                    if not keys_of:
                        continue
                    loaded = _retry_table(conn, src, tm, new_plan, opts, sink, gone, keys_of)
                    result.tables.append(
                        TableRetry(tm.source.name, len(keys_of), loaded.loaded, loaded.rejected)
                    )
                    if probe is None and loaded.loaded:
                        probe = _a_loaded_key(run_dir, tm, keys_of)
                keys.reset_sequences(conn, opts.schema, new_maps)
                sink.close()
                _write_pending(run_dir, new_opts, source_path, result, probe)
        except psycopg.OperationalError as e:
            (run_dir / PENDING).unlink(missing_ok=True)
            raise server_failure(e, "retrying", "nothing was changed; run retry again") from None
        except BaseException:
            (run_dir / PENDING).unlink(missing_ok=True)
            raise
        finally:
            sink.close()
    finally:
        conn.close()
        src.close()
    _finish(run_dir, target)
    if verify_after:
        result.verify = verify(run_dir, target).as_dict()  # into report.json, as it proves
        report = json.loads((run_dir / "report.json").read_text())
        report["verdict"] = _verdict(report)
        atomic_write(run_dir / "report.json", (json.dumps(report, indent=2) + "\n").encode())
    return result


def _refuse_after_online_cutover(run_dir: Path) -> None:
    cut = run_dir / "cutover.json"
    if cut.exists() and json.loads(cut.read_text()).get("state") == "done (online)":
        raise RetryError(
            "the app writes to PostgreSQL since the online cutover",
            "load the fixed rows with the app's own tools",
        )


def _maps(conn: psycopg.Connection[Any], opts: MigrateOptions, layout: Any) -> list[TableMap]:
    if opts.data_only:
        return existing_maps(conn, opts.schema, opts.plan, layout.tables, layout.casts)
    maps, _ = create_maps(layout, opts.plan)
    return maps


def _same_shape(
    old: Sequence[TableMap], new: Sequence[TableMap], old_plan: Plan | None, new_plan: Plan
) -> None:
    """The fix changes what happens to values, not which tables and columns there are."""
    shape_old = [(tm.source.name, tm.target, tuple(tm.target_columns)) for tm in old]
    shape_new = [(tm.source.name, tm.target, tuple(tm.target_columns)) for tm in new]
    if shape_old != shape_new:
        raise RetryError(
            "the fixed plan changes the tables or columns the run made",
            "a retry changes transforms only; run migrate again with the new plan",
        )
    for tm in new:
        before, after = table_plan(old_plan, tm.source.name), table_plan(new_plan, tm.source.name)
        for key in _SHAPE:
            if _plan_attr(before, key) != _plan_attr(after, key):
                raise RetryError(
                    f"the fixed plan changes tables.{tm.source.name}.{key}",
                    "a retry changes transforms only; run migrate again with the new plan",
                )
        for column in {*_columns(before), *_columns(after)}:
            old_c = before.columns.get(column) if before else None
            new_c = after.columns.get(column) if after else None
            secret = (old_c is not None and old_c.secret) or (new_c is not None and new_c.secret)
            if secret and _specs(old_c) != _specs(new_c):
                raise RetryError(
                    f"the fixed plan changes the password transform of {tm.source.name}.{column}",
                    "passwords are hashed once per run; run migrate again to change how",
                )
        old_fks = before.foreign_keys if before else {}
        for cols, fk in (after.foreign_keys if after else {}).items():
            was = old_fks[cols].on_orphan if cols in old_fks else "reject"
            if fk.on_orphan != was and was != "reject":
                raise RetryError(
                    f"the fixed plan changes on_orphan of {tm.source.name}({', '.join(cols)}) "
                    f"from {was!r}",
                    "a retry may only let orphans in (reject -> null or keep)",
                )


def _plan_attr(tp: TablePlan | None, key: str) -> Any:
    if tp is None:
        return None if key not in ("skip", "replace") else False
    value = getattr(tp, key)
    return dict(value) if hasattr(value, "items") else value


def _columns(tp: TablePlan | None) -> set[str]:
    return set(tp.columns) if tp is not None else set()


def _specs(cp: Any) -> Any:
    return None if cp is None else tuple((s.name, repr(s.options)) for s in cp.specs)


def _rejected_keys(run_dir: Path, tm: TableMap) -> list[tuple[Any, ...]]:
    """The keys of a table's rejected rows, from rejects/<table>.jsonl."""
    path = run_dir / "rejects" / f"{safe_filename(tm.source.name)}.jsonl"
    key_columns = list(tm.source.primary_key)
    out = []
    for record in read_rejects(path):
        key = record["key"]
        if "row_number" in key or not key_columns:
            raise RetryError(
                f"table {tm.source.name} has no primary key: its rejected rows cannot be "
                "found again one by one",
                "run migrate again with the fixed plan",
            )
        out.append(tuple(key[c] for c in key_columns))
    return out


def _keys_table(src: sqlite3.Connection, tm: TableMap, keys_of: Sequence[tuple[Any, ...]]) -> str:
    """A temporary table of the keys (the snapshot stays read-only); its SQL condition."""
    name = f"lite2pg_retry_{abs(hash(tm.source.name)) % 10**8}"
    cols = [f"k{i}" for i in range(len(tm.source.primary_key))]
    src.execute(f"DROP TABLE IF EXISTS temp.{name}")
    src.execute(f"CREATE TEMP TABLE {name} ({', '.join(cols)})")
    marks = ", ".join("?" for _ in cols)
    src.executemany(f"INSERT INTO temp.{name} VALUES ({marks})", keys_of)
    key = ", ".join(quote_ident(c) for c in tm.source.primary_key)
    return f"({key}) IN (SELECT {', '.join(cols)} FROM temp.{name})"


def _same_values_for_loaded_rows(
    src: sqlite3.Connection,
    tm: TableMap,
    keys_of: Sequence[tuple[Any, ...]],
    old_plan: Plan | None,
    new_plan: Plan,
) -> None:
    """Every column whose transforms the fix changes gives each loaded row's value the
    same result as before (its distinct values, each through both chains)."""
    before, after = table_plan(old_plan, tm.source.name), table_plan(new_plan, tm.source.name)
    changed = [
        c.name
        for c in tm.source.columns
        if _specs(before.columns.get(c.name) if before else None)
        != _specs(after.columns.get(c.name) if after else None)
    ]
    if not changed:
        return
    loaded = f"NOT ({_keys_table(src, tm, keys_of)})" if keys_of else "1"
    for column in changed:
        old_chain = before.chain(column) if before else (lambda v: v)
        new_chain = after.chain(column) if after else (lambda v: v)
        col = quote_ident(column)
        cur = src.execute(
            f"SELECT {col}, count(*) FROM {quote_ident(tm.source.name)} WHERE {loaded} "
            f"GROUP BY {col}"
        )
        for value, rows in cur:
            was = _outcome(old_chain, value)
            now = _outcome(new_chain, value)
            if was != now:
                raise RetryError(
                    f"the fixed plan changes {tm.source.name}.{column} of {rows} loaded row(s) "
                    f"({value!r}: {was[1]!r} -> {now[1]!r})",
                    "a retry may only change what rejected rows become; run migrate again",
                )


def _outcome(chain: Callable[[Any], Any], value: Any) -> tuple[str, Any]:
    try:
        out = chain(value)
    except Lite2pgError as e:  # a TransformError: rejected
        return ("rejected", str(e))
    return ("value", (type(out).__name__, out))


def _retry_table(
    conn: psycopg.Connection[Any],
    src: sqlite3.Connection,
    tm: TableMap,
    plan: Plan,
    opts: MigrateOptions,
    sink: RejectSink,
    gone: GoneRows,
    keys_of: Sequence[tuple[Any, ...]],
) -> TableResult:
    scope = _keys_table(src, tm, keys_of)
    pipeline = build_pipeline(tm, table_plan(plan, tm.source.name), gone)

    def stream(careful: bool) -> RowStream:
        return RowStream(
            src, pipeline, sink, run_dir=Path(sink.directory).parent, gone=gone,
            careful=careful, scope=scope, batch_size=opts.batch_size,
        )  # fmt: skip

    try:
        return load_table(conn, tm, opts.schema, sink, stream, prepare=lambda cur: False)
    except psycopg.errors.InsufficientPrivilege as e:
        raise TargetError(f"not allowed to insert into {tm.target}: {e}", "grant INSERT") from None


def _a_loaded_key(run_dir: Path, tm: TableMap, keys_of: Sequence[tuple[Any, ...]]) -> Any:
    """One key the retry loaded (retried, and not in the new rejects): the probe that tells
    a committed retry from one that never was."""
    path = run_dir / NEW_REJECTS / f"{safe_filename(tm.source.name)}.jsonl"
    still = {tuple(r["key"][c] for c in tm.source.primary_key) for r in read_rejects(path)}
    for k in keys_of:
        if k not in still:
            return {"table": tm.target, "columns": [tm.target_of(c) for c in tm.source.primary_key],
                    "key": list(k)}  # fmt: skip
    return None


def _write_pending(
    run_dir: Path,
    opts: MigrateOptions,
    source_path: Path,
    result: RetryResult,
    probe: dict[str, Any] | None,
) -> None:
    data = {
        "plan": None if opts.plan is None else {"origin": opts.plan.origin, "text": opts.plan.text},
        "source": str(source_path),
        "schema": opts.schema,
        "tables": [t.as_dict() for t in result.tables],
        "probe": probe,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    atomic_write(run_dir / PENDING, (json.dumps(data, indent=2) + "\n").encode())


def finish_pending(run_dir: Path, target: Target) -> str | None:
    """An earlier retry stopped between its commit and its files: finish it forwards (its
    rows are in PostgreSQL) or drop it (they are not). Says which, or None."""
    path = run_dir / PENDING
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    probe = data.get("probe")
    committed = False
    if probe is not None:
        where = sql.SQL(" AND ").join(
            sql.SQL("{} = {}").format(sql.Identifier(c), sql.Literal(v))
            for c, v in zip(probe["columns"], probe["key"], strict=True)
        )
        with connect(target, autocommit=True) as conn:
            row = conn.execute(
                sql.SQL("SELECT 1 FROM {} WHERE {}").format(
                    sql.Identifier(data["schema"], probe["table"]), where
                )
            ).fetchone()
        committed = row is not None
    if committed:
        _finish(run_dir, target)
        return "an interrupted retry was committed: its files are now written"
    path.unlink()
    shutil.rmtree(run_dir / NEW_REJECTS, ignore_errors=True)
    return "an interrupted retry had not committed: dropped"


def _finish(run_dir: Path, target: Target) -> None:
    """After the commit: the run's files say what PostgreSQL now holds."""
    data = json.loads((run_dir / PENDING).read_text())
    source_path, opts = read_run_file(run_dir)
    if data["plan"] is not None:
        from lite2pg.plan import parse_plan

        opts.plan = parse_plan(data["plan"]["text"], origin=data["plan"]["origin"])
    write_run_file(run_dir, source_path, opts)
    rejects = run_dir / "rejects"
    new = run_dir / NEW_REJECTS
    report = json.loads((run_dir / "report.json").read_text())
    by_source = {t["source"]: t for t in report.get("tables", [])}
    for t in data["tables"]:
        name = safe_filename(t["table"])
        old_file, new_file = rejects / f"{name}.jsonl", new / f"{name}.jsonl"
        if new_file.exists():
            os.replace(new_file, old_file)
        else:
            old_file.unlink(missing_ok=True)
        entry = by_source.get(t["table"])
        if entry is not None and entry.get("rejected", 0) == t["retried"]:
            entry["loaded"] = entry.get("loaded", 0) + t["loaded"]
            entry["rejected"] = t["rejected"]
    if rejects.is_dir():
        fsync_dir(rejects)  # the moves above, before report.json says they happened
    shutil.rmtree(new, ignore_errors=True)
    totals = report.setdefault("totals", {})
    for k in ("loaded", "rejected"):
        totals[k] = sum(int(t.get(k, 0)) for t in report.get("tables", []))
    report.setdefault("retries", []).append(
        {"at": data["at"], "plan_origin": (data["plan"] or {}).get("origin"),
         "tables": data["tables"]}
    )  # fmt: skip
    report.pop("verify", None)  # the proof was of the run before the retry
    if rejects.is_dir() and not any(rejects.iterdir()):
        report["rejects_dir"] = None
    report["verdict"] = _verdict(report)
    atomic_write(run_dir / "report.json", (json.dumps(report, indent=2) + "\n").encode())
    try:
        with connect(target, autocommit=True) as conn:
            run_id = opts.run_id or run_dir.name
            if report.get("rejects_dir"):
                report["quarantine"], _ = quarantine.keep(conn, rejects, run_id)
            else:
                with conn.transaction():
                    quarantine.drop(conn, run_id)
                report.pop("quarantine", None)
        atomic_write(run_dir / "report.json", (json.dumps(report, indent=2) + "\n").encode())
    except (psycopg.Error, TargetError):
        pass  # a convenience copy: the files are the record
    evidence.write_evidence(run_dir, "retry")
    (run_dir / PENDING).unlink()


def _verdict(report: dict[str, Any]) -> str:
    """report.json's verdict after a retry, as RunReport.verdict words it."""
    totals = report.get("totals", {})
    return verdict_line(
        loaded=totals.get("loaded", 0),
        tables=len(report.get("tables", [])),
        rejected=totals.get("rejected", 0),
        rejects_dir=report.get("rejects_dir"),
        filtered=totals.get("filtered", 0),
        problems=sum(
            p.get("failed", 0) for p in report.get("phases", []) if p.get("name") != "views"
        ),
        verify=report.get("verify"),
        unproven="not verified since the retry",
    )
