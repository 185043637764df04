"""After the data: primary keys, unique constraints, indexes, CHECKs, foreign keys,
sequences and views, each under its own savepoint so one refusal is a note, not a failure."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from lite2pg.load import PhaseResult, attempt, attempt_check, ident_list
from lite2pg.schema import MAX_IDENT_BYTES, TableMap, sqlite_sql_to_pg, unique_name
from lite2pg.source import Skipped, rename_index

_ACTIONS = {"NO ACTION", "RESTRICT", "CASCADE", "SET NULL", "SET DEFAULT"}


def _qualified(schema: str, table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))


@dataclass(frozen=True)
class KeyNames:
    """PostgreSQL names of every constraint and index, decided once for the whole schema
    (names share one namespace per schema and must fit 63 bytes), so that any process
    building part of them uses the same names."""

    names: dict[tuple[str, str, str], str]

    def get(self, table: str, kind: str, ident: str) -> str:
        return self.names[(table, kind, ident)]


def name_keys(maps: Sequence[TableMap], taken: Iterable[str] = ()) -> KeyNames:
    """Deterministic names for primary keys, unique constraints, indexes, named CHECKs and
    foreign keys.

    Index names come first, then the CONSTRAINT names the SQLite DDL declares, kept as they
    are wherever PostgreSQL allows them, then the names lite2pg makes up for the rest. A
    declared name that must change is noted on its table. `taken`: names of relations the
    target schema holds already.
    """
    names = _SchemaNames([*(tm.target for tm in maps), *taken])
    out: dict[tuple[str, str, str], str] = {}
    for tm in maps:
        for ix in tm.source.indexes:
            if ix.origin == "c":
                out[(tm.source.name, "ix", ix.name)] = names.take(tm, "ix", ix.name, declared=True)
    # Where two tables declare one name, the first by name keeps it, whatever the file order.
    for tm in sorted(maps, key=lambda tm: (tm.source.name.lower(), tm.source.name)):
        t = tm.source
        if t.pk_name is not None and _loads_pk(tm):
            out[(t.name, "pk", "")] = names.take(tm, "pk", t.pk_name, declared=True)
        for ix in t.indexes:
            if ix.origin == "u" and ix.constraint is not None and _loads(tm, ix.columns):
                out[(t.name, "u", ix.name)] = names.take(tm, "u", ix.constraint, declared=True)
        for n, check in enumerate(t.check_names):
            if check is not None:
                out[(t.name, "check", str(n))] = names.take(tm, "check", check, declared=True)
        for n, fk in enumerate(t.foreign_keys):
            if fk.name is not None and _loads(tm, fk.columns):
                out[(t.name, "fk", str(n))] = names.take(tm, "fk", fk.name, declared=True)
    for tm in maps:
        t = tm.source
        if (t.name, "pk", "") not in out and _loads_pk(tm):
            out[(t.name, "pk", "")] = names.take(tm, "pk", f"{tm.target}_pkey")
        for ix in t.indexes:
            if ix.origin == "u" and (t.name, "u", ix.name) not in out and _loads(tm, ix.columns):
                cols = "_".join(tm.target_of(c) for c in ix.columns)
                out[(t.name, "u", ix.name)] = names.take(tm, "u", f"{tm.target}_{cols}_key")
    for tm in maps:
        for n, fk in enumerate(tm.source.foreign_keys):
            if (tm.source.name, "fk", str(n)) not in out and _loads(tm, fk.columns):
                cols = "_".join(tm.target_of(c) for c in fk.columns)
                out[(tm.source.name, "fk", str(n))] = names.take(
                    tm, "fk", f"{tm.target}_{cols}_fkey"
                )
    return KeyNames(out)


def _loads(tm: TableMap, columns: Sequence[str]) -> bool:
    return all(tm.has(c) for c in columns)


def _loads_pk(tm: TableMap) -> bool:
    return bool(tm.source.primary_key) and _loads(tm, tm.source.primary_key)


_KINDS = {
    "pk": "primary key",
    "u": "unique constraint",
    "ix": "index",
    "check": "CHECK constraint",
    "fk": "foreign key",
}


class _SchemaNames:
    """The names taken in one PostgreSQL schema, by PostgreSQL's rules, which are not
    SQLite's (where a constraint name only has to be unique on its table):

    - an index, and so a primary key or unique constraint, is a relation: its name is
      unique among the schema's tables and indexes, and it must fit 63 bytes;
    - any constraint's name is unique among the constraints of its table;
    - a name PostgreSQL makes up is also unique among the schema's constraints
      (ChooseConstraintName); lite2pg makes up names the same way.
    """

    def __init__(self, tables: Iterable[str]) -> None:
        self.relations: set[str] = set(tables)
        self.constraints: set[str] = set()
        self.on_table: dict[str, set[str]] = {}

    def take(self, tm: TableMap, kind: str, wanted: str, *, declared: bool = False) -> str:
        own = self.on_table.setdefault(tm.target, set())
        relation = kind in ("pk", "u", "ix")
        constraint = kind != "ix"
        if declared:
            avoid = [s for s, on in ((self.relations, relation), (own, constraint)) if on]
        else:
            avoid = [self.relations, self.constraints, own]
        name = unique_name(wanted, lambda n: any(n in s for s in avoid))
        if relation:
            self.relations.add(name)
        if constraint:
            self.constraints.add(name)
            own.add(name)
        if declared and name != wanted:
            if len(wanted.encode("utf-8")) > MAX_IDENT_BYTES:
                why = f"PostgreSQL names are at most {MAX_IDENT_BYTES} bytes"
            elif relation and wanted in self.relations:
                why = "taken in the schema (PostgreSQL names keys and indexes per schema)"
            else:
                why = f"another constraint of {tm.target!r} has that name"
            tm.notes.append(f"{_KINDS[kind]} {wanted!r} renamed to {name!r}: {why}")
        return name


def build_table_keys(
    conn: psycopg.Connection[Any], schema: str, tm: TableMap, names: KeyNames
) -> list[PhaseResult]:
    """Primary key and unique constraints, then indexes, then CHECKs, of one table."""
    keys = PhaseResult("keys")
    indexes = PhaseResult("indexes")
    checks = PhaseResult("checks")
    t = tm.source
    table = _qualified(schema, tm.target)

    started = time.perf_counter()
    if (t.name, "pk", "") in names.names:
        cols = [tm.target_of(c) for c in t.primary_key]
        name = names.get(t.name, "pk", "")
        stmt = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({})").format(
            table, sql.Identifier(name), ident_list(cols)
        )
        if not attempt(conn, keys, f"primary key of {t.name}", stmt):
            # SQLite lets a non-INTEGER primary key hold NULLs (a legacy quirk);
            # PostgreSQL cannot. Keep uniqueness at least.
            stmt = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} UNIQUE ({})").format(
                table, sql.Identifier(name), ident_list(cols)
            )
            if attempt(conn, keys, f"unique key of {t.name}", stmt):
                keys.failed -= 1
                keys.notes[-1] += "; created as UNIQUE instead (the key has NULLs)"
    for ix in t.indexes:
        if (t.name, "u", ix.name) not in names.names:
            continue
        cols = [tm.target_of(c) for c in ix.columns]
        stmt = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} UNIQUE ({})").format(
            table, sql.Identifier(names.get(t.name, "u", ix.name)), ident_list(cols)
        )
        attempt(conn, keys, f"unique constraint {ix.name} of {t.name}", stmt)
    keys.seconds = time.perf_counter() - started

    started = time.perf_counter()
    for ix in t.indexes:
        if (t.name, "ix", ix.name) not in names.names:
            continue
        name = names.get(t.name, "ix", ix.name)
        if ix.plain:
            if not all(tm.has(c) for c in ix.columns):
                continue  # the plan drops an indexed column
            index_cols = sql.SQL(", ").join(
                sql.SQL("{}{}").format(
                    sql.Identifier(tm.target_of(c)), sql.SQL(" DESC" if d else "")
                )
                for c, d in zip(ix.columns, ix.descending or [False] * len(ix.columns), strict=True)
            )
            stmt = sql.SQL("CREATE {}INDEX {} ON {} ({})").format(
                sql.SQL("UNIQUE " if ix.unique else ""), sql.Identifier(name), table, index_cols
            )
            attempt(conn, indexes, f"index {ix.name}", stmt)
        elif ix.sql:
            # Partial and expression indexes are SQLite SQL: try them as written, with
            # unqualified names resolved through the search_path.
            with conn.cursor() as cur:
                cur.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            create = sql.SQL(sqlite_sql_to_pg(rename_index(ix.sql, name)))
            attempt(conn, indexes, f"index {ix.name}", create)
    indexes.seconds = time.perf_counter() - started

    started = time.perf_counter()
    named = [n for n in range(len(t.checks)) if (t.name, "check", str(n)) in names.names]
    # Named CHECKs first: PostgreSQL then names the others around them.
    for n in named + [n for n in range(len(t.checks)) if n not in named]:
        if tm.check_sql is not None and n not in tm.check_sql:
            continue  # not translated (the table's notes or behaviour changes say why)
        expr = t.checks[n] if tm.check_sql is None else tm.check_sql[n]
        if n in named:
            stmt = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({})").format(
                table,
                sql.Identifier(names.get(t.name, "check", str(n))),
                sql.SQL(sqlite_sql_to_pg(expr)),
            )
        else:
            stmt = sql.SQL("ALTER TABLE {} ADD CHECK ({})").format(
                table,
                sql.SQL(sqlite_sql_to_pg(expr)),
            )
        attempt_check(conn, checks, f"CHECK ({t.checks[n]}) on {t.name}", stmt)
    checks.seconds = time.perf_counter() - started
    return [keys, indexes, checks]


# Connections validating foreign keys at once (of different tables): the machine's cores.
VALIDATORS = 2

_Pending = tuple[str, str, list[str], str, list[str]]


def build_foreign_keys(
    conn: psycopg.Connection[Any],
    schema: str,
    maps: Sequence[TableMap],
    names: KeyNames,
    connect_more: Callable[[], psycopg.Connection[Any]] | None = None,
) -> PhaseResult:
    """Every foreign key whose tables were both migrated; orphans leave it NOT VALID.

    With `connect_more`, the foreign keys of different tables are validated side by side.
    """
    by_source = {tm.source.name.lower(): tm for tm in maps}
    fks = PhaseResult("foreign keys")
    pending: dict[str, list[_Pending]] = {}
    started = time.perf_counter()
    for tm in maps:
        for n, fk in enumerate(tm.source.foreign_keys):
            if (tm.source.name, "fk", str(n)) not in names.names:
                continue  # the plan drops the referencing column
            parent = by_source.get(fk.ref_table.lower())
            what = f"foreign key {tm.source.name}({', '.join(fk.columns)}) -> {fk.ref_table}"
            if parent is None:
                fks.failed += 1
                fks.notes.append(f"{what}: not created: {fk.ref_table} is not migrated")
                continue
            if len(fk.ref_columns) != len(fk.columns) or not all(
                parent.has(c) for c in fk.ref_columns
            ):
                fks.failed += 1
                fks.notes.append(f"{what}: not created: the parent key cannot be resolved")
                continue
            fk_cols = [tm.target_of(c) for c in fk.columns]
            ref_cols = [parent.target_of(c) for c in fk.ref_columns]
            tail = []
            for verb, action in (("UPDATE", fk.on_update), ("DELETE", fk.on_delete)):
                if action.upper() in _ACTIONS and action.upper() != "NO ACTION":
                    tail.append(f"ON {verb} {action.upper()}")
            if fk.deferrable:
                tail.append("DEFERRABLE INITIALLY DEFERRED")
            base = sql.SQL(
                "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) {}"
            ).format(
                _qualified(schema, tm.target),
                sql.Identifier(names.get(tm.source.name, "fk", str(n))),
                ident_list(fk_cols),
                _qualified(schema, parent.target),
                ident_list(ref_cols),
                sql.SQL(" ".join(tail)),
            )
            # Added NOT VALID first (instant), validated below: validations of different
            # tables can then run side by side on their own connections.
            if attempt(conn, fks, what, sql.Composed([base, sql.SQL(" NOT VALID")])):
                fks.done -= 1
                name = names.get(tm.source.name, "fk", str(n))
                pending.setdefault(tm.target, []).append(
                    (what, name, fk_cols, parent.target, ref_cols)
                )
    groups = list(pending.items())
    if connect_more is None or len(groups) < 2:
        results = [_validate(conn, schema, child, items) for child, items in groups]
    else:
        with concurrent.futures.ThreadPoolExecutor(min(len(groups), VALIDATORS)) as pool:
            results = list(pool.map(lambda g: _validate_on_new(connect_more, schema, *g), groups))
    for r in results:
        fks.done += r.done
        fks.failed += r.failed
        fks.notes.extend(r.notes)
    fks.seconds = time.perf_counter() - started
    return fks


def _validate_on_new(
    connect_more: Callable[[], psycopg.Connection[Any]],
    schema: str,
    child: str,
    items: list[_Pending],
) -> PhaseResult:
    with connect_more() as conn:
        conn.autocommit = True
        return _validate(conn, schema, child, items)


def _validate(
    conn: psycopg.Connection[Any], schema: str, child: str, items: list[_Pending]
) -> PhaseResult:
    """Validate one table's foreign keys; orphans leave a key NOT VALID, with a count."""
    phase = PhaseResult("foreign keys")
    for what, name, fk_cols, parent, ref_cols in items:
        stmt = sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
            _qualified(schema, child), sql.Identifier(name)
        )
        if attempt(conn, phase, what, stmt):
            continue
        if "violates foreign key" in phase.notes[-1]:
            # Legacy data has orphans (SQLite does not enforce FKs by default): keep the
            # constraint for new rows and say how many rows break it.
            orphans = _count_orphans(conn, schema, child, fk_cols, parent, ref_cols)
            phase.notes[-1] = (
                f"{what}: {orphans} orphan row(s); constraint added NOT VALID "
                "(set an on_orphan policy in a plan to clean them)"
            )
    return phase


def merge_phases(parts: Sequence[Sequence[PhaseResult]]) -> list[PhaseResult]:
    """Sum per-table phase results into one per phase, in first-seen order."""
    merged: dict[str, PhaseResult] = {}
    for part in parts:
        for p in part:
            m = merged.setdefault(p.name, PhaseResult(p.name))
            m.done += p.done
            m.failed += p.failed
            m.seconds += p.seconds
            m.notes.extend(p.notes)
            m.changes.extend(p.changes)
    return list(merged.values())


def _count_orphans(
    conn: psycopg.Connection[Any],
    schema: str,
    child: str,
    cols: list[str],
    parent: str,
    ref_cols: list[str],
) -> int:
    cond = sql.SQL(" AND ").join(
        sql.SQL("p.{} = c.{}").format(sql.Identifier(r), sql.Identifier(c))
        for c, r in zip(cols, ref_cols, strict=True)
    )
    not_null = sql.SQL(" AND ").join(
        sql.SQL("c.{} IS NOT NULL").format(sql.Identifier(c)) for c in cols
    )
    stmt = sql.SQL(
        "SELECT count(*) FROM {} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})"
    ).format(_qualified(schema, child), not_null, _qualified(schema, parent), cond)
    with conn.cursor() as cur:
        cur.execute(stmt)
        row = cur.fetchone()
    return int(row[0]) if row else 0


def reset_sequences(
    conn: psycopg.Connection[Any], schema: str, maps: Sequence[TableMap]
) -> PhaseResult:
    """Move every identity or serial sequence of the loaded columns past the largest id,
    and past SQLite's AUTOINCREMENT high-water mark, so no id is ever handed out twice."""
    phase = PhaseResult("sequences")
    started = time.perf_counter()
    for tm in maps:
        qualified = ".".join('"' + n.replace('"', '""') + '"' for n in (schema, tm.target))
        for c in tm.columns:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_get_serial_sequence(%s, %s)", (qualified, c.target))
                row = cur.fetchone()
            if not row or not row[0]:
                continue
            floor = tm.source.sequence_value or 0
            # An empty table without a high-water mark starts at 1 (is_called = false).
            stmt = sql.SQL(
                "SELECT setval({seq}, GREATEST(COALESCE(max({col}), 0), {floor}, 1), "
                "GREATEST(COALESCE(max({col}), 0), {floor}) > 0) FROM {table}"
            ).format(
                seq=sql.Literal(row[0]),
                col=sql.Identifier(c.target),
                floor=sql.Literal(floor),
                table=_qualified(schema, tm.target),
            )
            attempt(conn, phase, f"sequence of {tm.target}.{c.target}", stmt)
    phase.seconds = time.perf_counter() - started
    return phase


def create_views(
    conn: psycopg.Connection[Any],
    schema: str,
    views: Sequence[Skipped],
    maps: Sequence[TableMap] = (),
) -> PhaseResult:
    """Create the views whose SQL PostgreSQL accepts as written; report the others."""
    phase = PhaseResult("views")
    started = time.perf_counter()
    names: dict[str, str] = {}
    for tm in maps:
        for c in tm.columns:
            names.setdefault(c.target.lower(), c.target)
        names[tm.source.name.lower()] = tm.target
    names.update({v.name.lower(): v.name for v in views})
    # Views may use other views: passes until one creates nothing more. Unqualified names
    # resolve through the run's search_path (the schema).
    todo = [v for v in views if v.sql]
    while todo:
        tried = PhaseResult("views")
        left = [
            v
            for v in todo
            if not attempt(
                conn, tried, f"view {v.name}", sql.SQL(sqlite_sql_to_pg(v.sql or "", names))
            )
        ]
        phase.done += tried.done
        if len(left) == len(todo) or not left:
            phase.failed += tried.failed
            phase.notes.extend(tried.notes)
            break
        todo = left
    phase.seconds = time.perf_counter() - started
    return phase


def analyze(conn: psycopg.Connection[Any], schema: str, tm: TableMap) -> None:
    """Planner statistics for a freshly loaded table, taken where it is built (they stay
    with the table when it moves schema): without them the app's first queries, and
    verify's ordered scans, sort on disk instead of walking the primary key."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("ANALYZE {}").format(_qualified(schema, tm.target)))


def finish_table(
    conn: psycopg.Connection[Any], schema: str, tm: TableMap, names: KeyNames
) -> list[PhaseResult]:
    """Once a table's rows are in: its keys, indexes and CHECKs, sequences, statistics."""
    phases = build_table_keys(conn, schema, tm, names)
    phases.append(reset_sequences(conn, schema, [tm]))
    analyze(conn, schema, tm)
    return phases
