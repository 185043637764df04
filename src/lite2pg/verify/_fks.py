"""Foreign keys of the target: validated constraints hold by PostgreSQL's word, the rest get
an anti-join; orphans the plan keeps are allowed."""

from __future__ import annotations

from psycopg import sql

from lite2pg.layout import table_plan
from lite2pg.schema import TableMap
from lite2pg.verify._report import ForeignKeyCheck
from lite2pg.verify._run import _key_columns, _Run


def _check_foreign_keys(run: _Run) -> list[ForeignKeyCheck]:
    """Every FK of the migrated tables: validated constraints hold by PostgreSQL's word;
    NOT VALID ones and source FKs without a constraint get an anti-join."""
    schema = run.opts.schema
    by_target = {tm.target: tm for tm in run.maps}
    rows = run.pg.execute(
        """
        SELECT c.conname, cl.relname, pn.nspname, pc.relname, c.convalidated,
               ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n
                     ORDER BY k.o),
               ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, o)
                     JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n
                     ORDER BY k.o)
        FROM pg_constraint c
        JOIN pg_class cl ON cl.oid = c.conrelid
        JOIN pg_namespace n ON n.oid = cl.relnamespace
        JOIN pg_class pc ON pc.oid = c.confrelid
        JOIN pg_namespace pn ON pn.oid = pc.relnamespace
        WHERE c.contype = 'f' AND n.nspname = %s
        ORDER BY cl.relname, c.conname
        """,
        (schema,),
    ).fetchall()
    checks: list[ForeignKeyCheck] = []
    seen: set[tuple[str, tuple[str, ...], str, tuple[str, ...]]] = set()
    for name, child, parent_schema, parent, validated, cols, ref_cols in rows:
        if child not in by_target:
            continue
        tm = by_target[child]
        seen.add((child, tuple(cols), parent, tuple(ref_cols)))
        check = ForeignKeyCheck(
            child,
            list(cols),
            parent,
            list(ref_cols),
            name,
            "validated by PostgreSQL" if validated else "anti-join (constraint NOT VALID)",
            allowed=_orphans_allowed(run, tm, list(cols)),
        )
        if not validated:
            _anti_join(run, tm, check, parent_schema)
        checks.append(check)
    by_source = {tm.source.name.lower(): tm for tm in run.maps}
    for tm in run.maps:
        for fk in tm.source.foreign_keys:
            parent_tm = by_source.get(fk.ref_table.lower())
            if parent_tm is None or not all(tm.has(c) for c in fk.columns):
                continue
            if len(fk.ref_columns) != len(fk.columns) or not all(
                parent_tm.has(c) for c in fk.ref_columns
            ):
                continue
            cols = [tm.target_of(c) for c in fk.columns]
            ref_cols = [parent_tm.target_of(c) for c in fk.ref_columns]
            key = (tm.target, tuple(cols), parent_tm.target, tuple(ref_cols))
            if key in seen:
                continue
            seen.add(key)
            check = ForeignKeyCheck(
                tm.target,
                cols,
                parent_tm.target,
                ref_cols,
                None,
                "anti-join (no constraint in the target)",
                allowed=_orphans_allowed(run, tm, cols),
            )
            _anti_join(run, tm, check, schema)
            checks.append(check)
    return checks


def _orphans_allowed(run: _Run, tm: TableMap, target_cols: list[str]) -> bool:
    tp = table_plan(run.opts.plan, tm.source.name)
    if tp is None:
        return False
    source_cols = [c.source for t in target_cols for c in tm.columns if c.target == t]
    return None not in source_cols and tp.on_orphan([c for c in source_cols if c]) == "keep"


def _anti_join(run: _Run, tm: TableMap, check: ForeignKeyCheck, parent_schema: str) -> None:
    child = sql.SQL("{}.{}").format(sql.Identifier(run.opts.schema), sql.Identifier(tm.target))
    parent = sql.SQL("{}.{}").format(sql.Identifier(parent_schema), sql.Identifier(check.parent))
    match = sql.SQL(" AND ").join(
        sql.SQL("p.{} = c.{}").format(sql.Identifier(r), sql.Identifier(c))
        for c, r in zip(check.columns, check.parent_columns, strict=True)
    )
    not_null = sql.SQL(" AND ").join(
        sql.SQL("c.{} IS NOT NULL").format(sql.Identifier(c)) for c in check.columns
    )
    cond = sql.SQL("{} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})").format(
        not_null, parent, match
    )
    row = run.pg.execute(
        sql.SQL("SELECT count(*) FROM {} c WHERE {}").format(child, cond)
    ).fetchone()
    check.orphans = int(row[0]) if row else 0
    if check.orphans:
        keys = _key_columns(tm)
        shown = keys + [c for c in check.columns if c not in keys]
        examples = run.pg.execute(
            sql.SQL("SELECT {} FROM {} c WHERE {} LIMIT 5").format(
                sql.SQL(", ").join(sql.SQL("c.{}::text").format(sql.Identifier(c)) for c in shown),
                child,
                cond,
            )
        ).fetchall()
        check.examples = [
            {c: ("NULL" if v is None else str(v)) for c, v in zip(shown, r, strict=True)}
            for r in examples
        ]
