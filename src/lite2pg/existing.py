"""Loading into a schema that the new app's own migrations created (`--data-only`).

Tables and columns are matched by name, ignoring case; everything that cannot be matched
or cannot hold the data is refused before anything is written. The load runs in place, in
one transaction, parents before children, so that the target's own foreign keys hold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from lite2pg import keys, source
from lite2pg.artifacts import FileInfo
from lite2pg.coerce import (
    INT_RANGES,
    MONEY_SCALE,
    Converter,
    Family,
    PgType,
    converter,
    parse_pg_type,
)
from lite2pg.errors import SchemaError, TargetError
from lite2pg.layout import Layout, parents_first, table_plan
from lite2pg.load import PhaseResult, TableResult, load_table
from lite2pg.plan import Plan, TablePlan
from lite2pg.rows import GoneRows, RejectSink, RowStream, build_pipeline
from lite2pg.schema import ColumnMap, TableMap, map_declared_type
from lite2pg.sinks import CopyFileSink, copy_path
from lite2pg.target import Target, connect, lock_wait


def run_in_place(
    conn: psycopg.Connection[Any],
    src: Any,
    layout: Layout,
    plan: Plan | None,
    schema: str,
    *,
    truncate_first: bool,
    batch_size: int,
    run_dir: Path,
    on_start: Callable[[str], None],
    on_progress: Callable[[str, int], None],
    on_done: Callable[[TableResult], None],
    kept: dict[str, FileInfo] | None = None,
    before_commit: Callable[[], None] | None = None,
) -> tuple[list[TableResult], list[PhaseResult], list[TableMap]]:
    """Load every table into existing target tables in one transaction. With `kept`, each
    table's COPY data is kept as transformed/<table>.copy and `kept` gets its file.
    `before_commit` runs last inside the transaction (it may still refuse the run)."""
    rejects = RejectSink(run_dir / "rejects")
    results: list[TableResult] = []
    try:
        with conn.transaction():
            maps = existing_maps(conn, schema, plan, layout.tables, layout.casts)
            replace = plan.replaced_tables if plan is not None else frozenset()
            begin_in_place(conn, schema, maps, truncate_first=truncate_first, replace=replace)
            gone = GoneRows(src, layout.tables)
            for t in layout.skipped:
                gone.record_where_not(t, None)
            for tm in parents_first(maps):
                on_start(tm.source.name)
                tp = table_plan(plan, tm.source.name)
                pipeline = build_pipeline(tm, tp, gone)

                def stream(careful: bool, pipeline: Any = pipeline) -> RowStream:
                    return RowStream(
                        src,
                        pipeline,
                        rejects,
                        run_dir=run_dir,
                        progress=on_progress,
                        batch_size=batch_size,
                        gone=gone,
                        careful=careful,
                    )

                name = tm.source.name
                tee = CopyFileSink(copy_path(run_dir, name)) if kept is not None else None
                try:
                    result = load_table(
                        conn, tm, schema, rejects, stream, prepare=no_create, tee=tee
                    )
                except BaseException:
                    if tee is not None:
                        tee.abort()
                    raise
                if tee is not None and kept is not None:
                    kept[name] = tee.close()
                if tp is not None and tp.where:
                    gone.record_where_not(tm.source, tp.where)
                results.append(result)
                on_done(result)
            phases = finish_in_place(conn, schema, maps)
            if before_commit is not None:
                before_commit()
    finally:
        rejects.close()
    return results, phases, maps


def begin_in_place(
    conn: psycopg.Connection[Any],
    schema: str,
    maps: Sequence[TableMap],
    *,
    truncate_first: bool,
    replace: Collection[str] = (),
) -> None:
    """Inside the load's transaction: names resolve in `schema`; the tables are emptied
    (`--truncate`), or must be empty already, except those whose rows the plan `replace`s
    (source table names): those are emptied."""
    conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
    if truncate_first:
        truncate(conn, schema, list(maps))
        return
    require_empty(conn, schema, [tm for tm in maps if tm.source.name not in replace])
    if any(tm.source.name in replace for tm in maps):
        # One TRUNCATE of every loaded table (the others are empty already): a replaced
        # table that loaded tables refer to (django_content_type) can only go with them.
        truncate(conn, schema, list(maps))


def finish_in_place(
    conn: psycopg.Connection[Any], schema: str, maps: Sequence[TableMap]
) -> list[PhaseResult]:
    """After the rows: the target's own sequences past the loaded ids, then statistics."""
    phases = [keys.reset_sequences(conn, schema, maps)]
    for tm in maps:
        keys.analyze(conn, schema, tm)
    return phases


def no_create(cur: psycopg.Cursor[Any]) -> bool:
    return False  # the table exists already; COPY FREEZE needs one made in this transaction


@dataclass(frozen=True)
class _TargetColumn:
    name: str
    pg: PgType
    not_null: bool
    has_default: bool
    identity: str  # '', 'a' (ALWAYS) or 'd' (BY DEFAULT)


def _describe(conn: psycopg.Connection[Any], schema: str) -> dict[str, list[_TargetColumn]]:
    # A domain's column is read as its base type (the domain's own CHECKs are PostgreSQL's
    # to enforce; a value they refuse is rejected per row by the loader).
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT c.relname, a.attname,
                   CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod)
                        ELSE format_type(a.atttypid, a.atttypmod) END,
                   a.attnotnull, a.atthasdef, a.attidentity, a.attgenerated,
                   (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder)
                      FROM pg_enum e
                     WHERE e.enumtypid = CASE WHEN t.typtype = 'd' THEN t.typbasetype
                                              ELSE a.atttypid END)
            FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            JOIN pg_type t ON t.oid = a.atttypid
            WHERE n.nspname = %s AND c.relkind IN ('r', 'p')
            ORDER BY c.relname, a.attnum
            """,
            (schema,),
        )
        out: dict[str, list[_TargetColumn]] = {}
        money_scale: int | None = None
        for rel, att, typ, notnull, hasdef, ident, generated, labels in cur.fetchall():
            if generated:
                continue  # generated columns are computed by PostgreSQL, never loaded
            pg = parse_pg_type(str(typ), tuple(labels) if labels else None)
            if pg.family is Family.MONEY:
                money_scale = _money_scale(conn) if money_scale is None else money_scale
                pg = dataclasses.replace(pg, scale=money_scale)
            out.setdefault(str(rel), []).append(
                _TargetColumn(str(att), pg, bool(notnull), bool(hasdef), str(ident or ""))
            )
    return out


# PostgreSQL's own types that text in SQLite may hold (each value checked as it loads).
_NATIVE = (Family.JSONB, Family.JSON, Family.UUID, Family.INTERVAL, Family.INET)


def target_types(target: Target, schema: str) -> dict[str, dict[str, PgType]]:
    """The column types of the tables a schema holds: table -> column -> type, names in
    lower case (a data-only load matches names ignoring case)."""
    conn = connect(target)
    try:
        described = _describe(conn, schema)
    finally:
        conn.close()
    return {
        table.lower(): {c.name.lower(): c.pg for c in columns}
        for table, columns in described.items()
    }


def _money_scale(conn: psycopg.Connection[Any]) -> int:
    """The decimals of the target's currency (lc_monetary): money keeps no more."""
    row = conn.execute("SELECT scale(0::money::numeric)").fetchone()
    return int(row[0]) if row and row[0] is not None else MONEY_SCALE


_COMPATIBLE: dict[Family, set[Family]] = {
    Family.INTEGER: {
        Family.INTEGER,
        Family.FLOAT,
        Family.NUMERIC,
        Family.MONEY,
        Family.TEXT,
        Family.BOOLEAN,
        Family.INTERVAL,  # with a unit only: each value is refused without one
        Family.JSONB,
        Family.JSON,
        Family.OTHER,
    },
    Family.FLOAT: {Family.FLOAT, Family.NUMERIC, Family.MONEY, Family.TEXT, Family.OTHER},
    Family.NUMERIC: {Family.FLOAT, Family.NUMERIC, Family.MONEY, Family.TEXT, Family.OTHER},
    Family.TEXT: {
        Family.TEXT,
        Family.ENUM,
        Family.OTHER,
        Family.TIMESTAMPTZ,
        Family.TIMESTAMP,
        Family.DATE,
        Family.TIME,
        Family.MONEY,
        Family.BYTEA,
        *_NATIVE,
    },
    Family.BYTEA: {Family.BYTEA, Family.TEXT, Family.UUID},
    Family.BOOLEAN: {Family.BOOLEAN, Family.INTEGER, Family.TEXT},
    Family.TIMESTAMPTZ: {Family.TIMESTAMPTZ, Family.TIMESTAMP, Family.DATE, Family.TEXT},
    Family.TIMESTAMP: {Family.TIMESTAMPTZ, Family.TIMESTAMP, Family.DATE, Family.TEXT},
    Family.DATE: {Family.TIMESTAMPTZ, Family.TIMESTAMP, Family.DATE, Family.TEXT},
    Family.JSONB: {Family.JSONB, Family.JSON, Family.TEXT, Family.OTHER},
    Family.UUID: {Family.UUID, Family.TEXT, Family.OTHER},
}


def existing_maps(
    conn: psycopg.Connection[Any],
    schema: str,
    plan: Plan | None,
    tables: Sequence[source.Table],
    casts: dict[str, dict[str, PgType]],
) -> list[TableMap]:
    """Match source tables and columns to the target's, by name, ignoring case."""
    described = _describe(conn, schema)
    by_lower: dict[str, str] = {}
    for name in described:
        by_lower.setdefault(name.lower(), name)
    maps: list[TableMap] = []
    for t in tables:
        tp = table_plan(plan, t.name)
        wanted = tp.target if tp else t.name
        target = by_lower.get(wanted.lower())
        if target is None:
            raise SchemaError(
                t.name,
                f"no table {wanted!r} in target schema {schema!r}",
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
            cp = tp.columns.get(col.name) if tp is not None else None
            transformed = cp is not None and bool(cp.specs)  # not only `round = true`
            source_pg = casts.get(t.name, {}).get(col.name) or map_declared_type(
                col.declared_type, col.stored
            )
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


def _stricter_than_created(pg: PgType) -> bool:
    """A target type that takes fewer values, or takes them rounded or changed, than the
    type lite2pg would create for the column (what a staged transform converts to)."""
    fam = pg.family
    if fam in (Family.TIMESTAMPTZ, Family.TIMESTAMP, Family.NUMERIC):
        return pg.precision is not None  # rounded silently
    if fam is Family.TEXT:
        return pg.max_length is not None  # char(n) pads and strips; varchar(n) refuses
    if fam is Family.INTEGER:
        return pg.int_range != INT_RANGES["bigint"]
    return fam in (Family.TIME, Family.MONEY, Family.ENUM)


def exact_checks(tm: TableMap, tp: TablePlan | None) -> list[tuple[int, str, Converter]]:
    """For rows converted without the target's types (a staged run's transform step, which
    never sees the target): the conversion of each column whose target type is stricter,
    as (position, source column, converter). The load applies them, so that a staged load
    is as exact as a streamed one and rejects with the same reasons."""
    checks: list[tuple[int, str, Converter]] = []
    for i, c in enumerate(tm.columns):
        if c.source is None or not _stricter_than_created(c.pg_type):
            continue
        cp = tp.columns.get(c.source) if tp is not None else None
        secret = c.secret or (cp is not None and cp.secret)
        rounding = cp is not None and cp.round
        checks.append((i, c.source, converter(c.pg_type, secret=secret, rounding=rounding)))
    return checks


def truncate(conn: psycopg.Connection[Any], schema: str, maps: list[TableMap]) -> None:
    targets = sql.SQL(", ").join(
        sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(tm.target)) for tm in maps
    )
    try:
        with conn.transaction(), conn.cursor() as cur:
            lock_wait(conn)  # the app may hold these tables in an open transaction
            cur.execute(sql.SQL("TRUNCATE {}").format(targets))
            cur.execute("SET LOCAL lock_timeout = DEFAULT")  # the rest of the load: as it was
    except psycopg.errors.FeatureNotSupported as e:
        raise TargetError(
            f"cannot truncate: {e.diag.message_primary}",
            "another table references these; load it too, or truncate it yourself first",
        ) from None


def require_empty(conn: psycopg.Connection[Any], schema: str, maps: list[TableMap]) -> None:
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
