"""A migrate run: run directory, snapshot, schema, load, keys, report; stages in order.

The whole load happens in one PostgreSQL transaction: a run that fails leaves the target
exactly as it was.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg import sql

from lite2pg import keys, source
from lite2pg.coerce import Family, PgType, parse_pg_type
from lite2pg.errors import Lite2pgError, SchemaError, TargetError
from lite2pg.load import BATCH_SIZE, TableResult, load_table
from lite2pg.plan import Plan, TablePlan
from lite2pg.report import RunReport
from lite2pg.rows import GoneRows, RejectSink, RowStream, build_pipeline
from lite2pg.schema import (
    ColumnMap,
    NameAllocator,
    TableMap,
    create_table_sql,
    map_declared_type,
    plan_table,
)
from lite2pg.target import Target, connect

RUNS_DIR = Path(".lite2pg") / "runs"


class ProgressSink(Protocol):
    """What a front end implements to show progress."""

    def start_table(self, name: str, total: int) -> None: ...
    def advance(self, name: str, done: int) -> None: ...
    def end_table(self, result: TableResult) -> None: ...
    def phase(self, name: str) -> None: ...


@dataclass
class MigrateOptions:
    """Everything `migrate` can be told besides source and target."""

    schema: str = "public"
    data_only: bool = False
    truncate: bool = False
    drop: bool = False
    casts: dict[str, str] = field(default_factory=dict)  # "table.column" -> PostgreSQL type
    run_dir: Path | None = None
    batch_size: int = BATCH_SIZE
    tables: Sequence[str] | None = None  # only these source tables
    plan: Plan | None = None


def new_run_dir(base: Path = RUNS_DIR) -> Path:
    """A fresh run directory named by the UTC time."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    path = base / stamp
    # Run directories hold a copy of the source (and maybe plaintext): owner only.
    path.mkdir(parents=True, exist_ok=False, mode=0o700)
    return path


def migrate(
    source_path: Path,
    target: Target,
    options: MigrateOptions | None = None,
    progress: ProgressSink | None = None,
) -> RunReport:
    """Copy every table of a SQLite database into PostgreSQL and return the report."""
    opts = options or MigrateOptions()
    source.check_sqlite_file(source_path)
    run_dir = opts.run_dir or new_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    started = time.perf_counter()
    report = RunReport(
        source=str(source_path),
        target=target.display,
        schema=opts.schema,
        run_dir=str(run_dir),
        mode="data-only" if opts.data_only else "create",
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    snap = run_dir / "source.snapshot.db"
    if snap.exists():
        snap.unlink()
    if progress:
        progress.phase("snapshot")
    source.snapshot(source_path, snap)
    src = source.open_readonly(snap)
    try:
        schema = source.discover(src)
        tables = _select_tables(schema.tables, opts.tables)
        if opts.plan is not None:
            opts.plan.check_tables(t.name for t in schema.tables)
            for t in tables:
                opts.plan.check_columns(t.name, [c.name for c in t.columns])
        casts = _parse_casts(opts.casts, tables)
        report.not_migrated = [
            {"kind": s.kind, "name": s.name, "reason": s.reason} for s in schema.skipped
        ]
        if opts.plan is not None:
            skipped = [t for t in tables if opts.plan.table(t.name).skip]
            report.not_migrated += [
                {"kind": "table", "name": t.name, "reason": "skipped by the plan"} for t in skipped
            ]
            tables = [t for t in tables if t not in skipped]
        conn = connect(target)
        try:
            _run(conn, src, schema, tables, casts, opts, report, run_dir, progress)
        finally:
            conn.close()
    finally:
        src.close()
    report.seconds = time.perf_counter() - started
    report.write_json(run_dir / "report.json")
    return report


def _select_tables(
    tables: Sequence[source.Table], wanted: Sequence[str] | None
) -> list[source.Table]:
    if not wanted:
        return list(tables)
    by_name = {t.name.lower(): t for t in tables}
    missing = [w for w in wanted if w.lower() not in by_name]
    if missing:
        raise SchemaError(
            missing[0], "no such table in the source", f"tables: {', '.join(sorted(by_name))}"
        )
    return [by_name[w.lower()] for w in wanted]


def _parse_casts(
    casts: dict[str, str], tables: Sequence[source.Table]
) -> dict[str, dict[str, PgType]]:
    out: dict[str, dict[str, PgType]] = {}
    by_name = {t.name.lower(): t for t in tables}
    for key, type_sql in casts.items():
        table_name, _, column = key.rpartition(".")
        t = by_name.get(table_name.lower())
        if t is None or not column:
            raise SchemaError(
                key, "--cast names no known table.column", "write --cast TABLE.COLUMN=TYPE"
            )
        col = next((c for c in t.columns if c.name.lower() == column.lower()), None)
        if col is None:
            raise SchemaError(
                t.name,
                f"--cast: no column {column!r}",
                f"columns: {', '.join(c.name for c in t.columns)}",
            )
        pg = parse_pg_type(type_sql)
        if pg.family is Family.OTHER:
            raise SchemaError(
                t.name,
                f"--cast {key}={type_sql}: unsupported type",
                "use text, bigint, integer, double precision, numeric(p,s), boolean, "
                "timestamptz, timestamp, date or bytea",
            )
        out.setdefault(t.name, {})[col.name] = pg
    return out


def _advisory_key(schema: str) -> int:
    return int.from_bytes(
        hashlib.sha256(f"lite2pg:{schema}".encode()).digest()[:8], "big", signed=True
    )


def _run(
    conn: psycopg.Connection[Any],
    src: sqlite3.Connection,
    schema: source.SourceSchema,
    tables: list[source.Table],
    casts: dict[str, dict[str, PgType]],
    opts: MigrateOptions,
    report: RunReport,
    run_dir: Path,
    progress: ProgressSink | None,
) -> None:
    rejects = RejectSink(run_dir / "rejects")
    try:
        with conn.transaction():
            with conn.cursor() as cur:
                cur.execute("SELECT pg_try_advisory_xact_lock(%s)", (_advisory_key(opts.schema),))
                row = cur.fetchone()
                if not row or not row[0]:
                    raise TargetError(
                        f"another lite2pg run is loading into schema {opts.schema!r} "
                        "of this database",
                        "wait for it to finish, then run again",
                    )
                cur.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(opts.schema))
                )
                cur.execute(
                    sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(opts.schema))
                )
            if opts.data_only:
                maps = _existing_maps(conn, opts, tables, casts)
                if opts.truncate:
                    _truncate(conn, opts.schema, maps)
                else:
                    _require_empty(conn, opts.schema, maps)
                ordered = _parents_first(maps)
            else:
                names = NameAllocator()
                maps = [
                    plan_table(t, names, casts.get(t.name), _table_plan(opts.plan, t.name))
                    for t in tables
                ]
                _check_absent(conn, opts, maps)
                ordered = _parents_first(maps)
            for tm in maps:
                report.notes.extend(f"{tm.source.name}: {n}" for n in tm.notes)
            gone = GoneRows(src, tables)
            for t in schema.tables:
                if t not in tables and opts.plan is not None and opts.plan.table(t.name).skip:
                    gone.record_where_not(t, None)
            for tm in ordered:
                if progress:
                    progress.start_table(tm.source.name, source.count_rows(src, tm.source.name))
                tp = _table_plan(opts.plan, tm.source.name)
                pipeline = build_pipeline(tm, tp, gone)

                def stream(pipeline: Any = pipeline) -> RowStream:
                    return RowStream(
                        src,
                        pipeline,
                        rejects,
                        run_dir=run_dir,
                        progress=progress.advance if progress else None,
                        batch_size=opts.batch_size,
                        gone=gone,
                    )

                result = load_table(
                    conn,
                    tm,
                    opts.schema,
                    rejects,
                    stream,
                    prepare=_creator(tm, opts.schema) if not opts.data_only else _no_create,
                )
                if tp is not None and tp.where:
                    gone.record_where_not(tm.source, tp.where)
                report.tables.append(result)
                if progress:
                    progress.end_table(result)
            if opts.data_only:
                if progress:
                    progress.phase("sequences")
                report.phases.append(keys.reset_sequences(conn, opts.schema, maps))
            else:
                if progress:
                    progress.phase("keys, indexes and foreign keys")
                report.phases.extend(keys.build_keys(conn, opts.schema, maps, names))
                report.phases.append(keys.reset_sequences(conn, opts.schema, maps))
                if progress:
                    progress.phase("views")
                report.phases.append(keys.create_views(conn, opts.schema, schema.views))
            # No ANALYZE here: autovacuum analyzes freshly loaded tables within a minute,
            # and doing it inside the run would hold up the commit by a second per GB.
            if progress:
                progress.phase("commit")
    except psycopg.OperationalError as e:
        raise TargetError(
            f"lost the connection: {str(e).strip().splitlines()[0]}",
            "the target was rolled back; run again",
        ) from None
    except psycopg.errors.InsufficientPrivilege as e:
        raise TargetError(
            f"permission denied: {e.diag.message_primary}",
            "grant the user CREATE on the database/schema",
        ) from None
    except Lite2pgError:
        raise
    finally:
        rejects.close()
    if rejects.paths:
        report.rejects_dir = str(run_dir / "rejects")
    views = report.phases[-1] if report.phases and report.phases[-1].name == "views" else None
    if views is not None:
        failed = {n.split(":")[0].removeprefix("view ") for n in views.notes}
        for v in schema.views:
            if v.name in failed:
                report.not_migrated.append(
                    {
                        "kind": "view",
                        "name": v.name,
                        "reason": "PostgreSQL does not accept its SQLite SQL as written",
                    }
                )


def _table_plan(plan: Plan | None, name: str) -> TablePlan | None:
    return plan.table(name) if plan is not None and name in plan.tables else None


def _no_create(cur: psycopg.Cursor[Any]) -> bool:
    return False  # the table exists already; COPY FREEZE needs one made in this transaction


def _creator(tm: TableMap, schema: str) -> Any:
    def prepare(cur: psycopg.Cursor[Any]) -> bool:
        cur.execute(create_table_sql(tm, schema))
        return True  # created in this subtransaction: COPY FREEZE is allowed

    return prepare


def _check_absent(
    conn: psycopg.Connection[Any], opts: MigrateOptions, maps: list[TableMap]
) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r','p','v','m','f')",
            (opts.schema,),
        )
        existing = {str(r[0]) for r in cur.fetchall()}
        clash = [tm.target for tm in maps if tm.target in existing]
        if clash and not opts.drop:
            raise TargetError(
                f"table {clash[0]!r} already exists in schema {opts.schema!r}"
                + (f" (and {len(clash) - 1} more)" if len(clash) > 1 else ""),
                "use --data-only to load into the existing tables, or --drop to replace them",
            )
        for name in clash:
            cur.execute(
                sql.SQL("DROP TABLE {}.{} CASCADE").format(
                    sql.Identifier(opts.schema), sql.Identifier(name)
                )
            )


# --- loading into a schema that the new app's own migrations created --------------------


@dataclass(frozen=True)
class _TargetColumn:
    name: str
    pg: PgType
    not_null: bool
    has_default: bool
    identity: str  # '', 'a' (ALWAYS) or 'd' (BY DEFAULT)


def _describe(conn: psycopg.Connection[Any], schema: str) -> dict[str, list[_TargetColumn]]:
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                   a.atthasdef, a.attidentity, a.attgenerated,
                   (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder)
                      FROM pg_enum e WHERE e.enumtypid = a.atttypid)
            FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            WHERE n.nspname = %s AND c.relkind IN ('r', 'p')
            ORDER BY c.relname, a.attnum
            """,
            (schema,),
        )
        out: dict[str, list[_TargetColumn]] = {}
        for rel, att, typ, notnull, hasdef, ident, generated, labels in cur.fetchall():
            if generated:
                continue  # generated columns are computed by PostgreSQL, never loaded
            pg = parse_pg_type(str(typ), tuple(labels) if labels else None)
            out.setdefault(str(rel), []).append(
                _TargetColumn(str(att), pg, bool(notnull), bool(hasdef), str(ident or ""))
            )
    return out


_COMPATIBLE: dict[Family, set[Family]] = {
    Family.INTEGER: {
        Family.INTEGER,
        Family.FLOAT,
        Family.NUMERIC,
        Family.TEXT,
        Family.BOOLEAN,
        Family.OTHER,
    },
    Family.FLOAT: {Family.FLOAT, Family.NUMERIC, Family.TEXT, Family.OTHER},
    Family.NUMERIC: {Family.FLOAT, Family.NUMERIC, Family.TEXT, Family.OTHER},
    Family.TEXT: {
        Family.TEXT,
        Family.ENUM,
        Family.OTHER,
        Family.TIMESTAMPTZ,
        Family.TIMESTAMP,
        Family.DATE,
        Family.BYTEA,
    },
    Family.BYTEA: {Family.BYTEA, Family.TEXT},
    Family.BOOLEAN: {Family.BOOLEAN, Family.INTEGER, Family.TEXT},
    Family.TIMESTAMPTZ: {Family.TIMESTAMPTZ, Family.TIMESTAMP, Family.DATE, Family.TEXT},
    Family.TIMESTAMP: {Family.TIMESTAMPTZ, Family.TIMESTAMP, Family.DATE, Family.TEXT},
    Family.DATE: {Family.TIMESTAMPTZ, Family.TIMESTAMP, Family.DATE, Family.TEXT},
}


def _existing_maps(
    conn: psycopg.Connection[Any],
    opts: MigrateOptions,
    tables: list[source.Table],
    casts: dict[str, dict[str, PgType]],
) -> list[TableMap]:
    described = _describe(conn, opts.schema)
    by_lower: dict[str, str] = {}
    for name in described:
        by_lower.setdefault(name.lower(), name)
    maps: list[TableMap] = []
    for t in tables:
        tp = _table_plan(opts.plan, t.name)
        wanted = tp.target if tp else t.name
        target = by_lower.get(wanted.lower())
        if target is None:
            raise SchemaError(
                t.name,
                f"no table {wanted!r} in target schema {opts.schema!r}",
                "create it with the app's migrations, or leave --data-only out to let "
                "lite2pg create it",
            )
        tcols = {c.name.lower(): c for c in described[target]}
        columns: list[ColumnMap] = []
        for col in t.columns:
            if tp is not None and col.name in tp.drop:
                continue
            name = tp.target_column(col.name) if tp else col.name
            tc = tcols.pop(name.lower(), None)
            if tc is None:
                raise SchemaError(
                    t.name,
                    f"column {col.name!r} has no match {name!r} in target table {target!r}",
                    f"target columns: {', '.join(c.name for c in described[target])}; "
                    "drop or rename it in a plan",
                )
            transformed = tp is not None and col.name in tp.columns
            source_pg = casts.get(t.name, {}).get(col.name) or map_declared_type(col.declared_type)
            if (
                not transformed
                and source_pg.family in _COMPATIBLE
                and tc.pg.family not in _COMPATIBLE[source_pg.family]
            ):
                raise SchemaError(
                    t.name,
                    f"column {col.name!r} ({col.declared_type or 'no type'}) cannot go into "
                    f"{target}.{tc.name} of type {tc.pg}",
                    "change the target type or convert the column with a plan transform",
                )
            secret = tp is not None and tp.is_secret(col.name)
            columns.append(
                ColumnMap(
                    col.name, tc.name, tc.pg, tc.not_null, identity=bool(tc.identity), secret=secret
                )
            )
        for added in tp.add if tp else ():
            tc = tcols.pop(added.name.lower(), None)
            if tc is None:
                raise SchemaError(
                    t.name, f"the plan adds {added.name!r}, which target table {target!r} lacks"
                )
            columns.append(ColumnMap(None, tc.name, tc.pg, tc.not_null))
        missing = [
            c.name for c in tcols.values() if c.not_null and not c.has_default and not c.identity
        ]
        if missing:
            raise SchemaError(
                t.name,
                f"target column {target}.{missing[0]} is NOT NULL without a default "
                "and has no source column",
                "give it a default, or add it in a plan",
            )
        maps.append(TableMap(t, target, columns))
    return maps


def _truncate(conn: psycopg.Connection[Any], schema: str, maps: list[TableMap]) -> None:
    targets = sql.SQL(", ").join(
        sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(tm.target)) for tm in maps
    )
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(sql.SQL("TRUNCATE {}").format(targets))
    except psycopg.errors.FeatureNotSupported as e:
        raise TargetError(
            f"cannot truncate: {e.diag.message_primary}",
            "another table references these; load it too, or truncate it yourself first",
        ) from None


def _require_empty(conn: psycopg.Connection[Any], schema: str, maps: list[TableMap]) -> None:
    with conn.cursor() as cur:
        for tm in maps:
            cur.execute(
                sql.SQL("SELECT EXISTS (SELECT 1 FROM {}.{})").format(
                    sql.Identifier(schema), sql.Identifier(tm.target)
                )
            )
            row = cur.fetchone()
            if row and row[0]:
                raise TargetError(
                    f"target table {tm.target!r} is not empty",
                    "add --truncate to empty the loaded tables first (in the same transaction)",
                )


def _parents_first(maps: list[TableMap]) -> list[TableMap]:
    """Order tables so that referenced tables load before those that reference them."""
    by_name = {tm.source.name.lower(): tm for tm in maps}
    done: list[TableMap] = []
    seen: set[str] = set()

    def visit(tm: TableMap, stack: set[str]) -> None:
        key = tm.source.name.lower()
        if key in seen or key in stack:
            return
        stack.add(key)
        for fk in tm.source.foreign_keys:
            parent = by_name.get(fk.ref_table.lower())
            if parent is not None and parent is not tm:
                visit(parent, stack)
        stack.discard(key)
        seen.add(key)
        done.append(tm)

    for tm in maps:
        visit(tm, set())
    return done


def prepare_schema(target: Target, schema: str, plan: Plan) -> bool:
    """Create `schema` with the plan's target DDL unless it already has tables; True if made."""
    if plan.schema_sql is None:
        raise SchemaError(
            schema,
            "the plan has no target schema SQL",
            "load with --data-only into a schema you made",
        )
    conn = connect(target)
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind = 'r'",
                (schema,),
            )
            row = cur.fetchone()
            if row and row[0]:
                return False
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            cur.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
            cur.execute(plan.schema_sql.encode())
    finally:
        conn.close()
    return True
