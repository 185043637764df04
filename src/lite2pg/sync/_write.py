"""How a round's rows reach PostgreSQL: staged in temporary tables, then written in an
order the target's constraints accept, then checked."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from lite2pg import capture, source
from lite2pg.errors import SyncError
from lite2pg.load import ident_list
from lite2pg.rows import RejectSink, RowStream
from lite2pg.rundir import MigrateOptions
from lite2pg.sync._common import Round, TableSync, qualified, reject_key


class _Writer:
    """The writing half of a Syncer (a mixin: the Syncer sets these attributes)."""

    pg: psycopg.Connection[Any]
    run_dir: Path
    opts: MigrateOptions
    tables: list[TableSync]
    hash_workers: int | None
    _sink: RejectSink | None

    def _set_rejected(self, t: TableSync, clear: Sequence[str] | None, add: Sequence[str]) -> None:
        raise NotImplementedError  # the state half provides it

    def _stream(self, src: sqlite3.Connection, t: TableSync, scope: str | None) -> RowStream:
        if self._sink is None:
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
            self._sink = RejectSink(self.run_dir / "rejects", suffix=f".sync-{stamp}")
        return RowStream(
            src, t.pipe, self._sink, run_dir=self.run_dir, scope=scope,
            hash_workers=self.hash_workers,
        )  # fmt: skip

    def _temp_like(self, t: TableSync, name: str, columns: Sequence[str]) -> sql.Composed:
        self.pg.execute(
            sql.SQL(
                "CREATE TEMP TABLE IF NOT EXISTS {tmp} AS SELECT {cols} FROM {table} WITH NO DATA"
            ).format(
                tmp=sql.Identifier(name),
                cols=ident_list(columns),
                table=qualified(self.opts.schema, t.tm.target),
            )
        )
        self.pg.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(name)))
        return sql.SQL("pg_temp.{}").format(sql.Identifier(name))

    def _copy_rows(
        self,
        tmp: str,
        columns: Sequence[str],
        rows: Iterator[tuple[Any, ...]],
        types: list[str] | None,
    ) -> int:
        n = 0
        stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.SQL("pg_temp.{}").format(sql.Identifier(tmp)),
            ident_list(columns),
        )
        with self.pg.cursor() as cur, cur.copy(stmt) as cp:
            if types:
                cp.set_types(types)
            for r in rows:
                cp.write_row(r)
                n += 1
        return n

    def _read(
        self, src: sqlite3.Connection, t: TableSync, scope: str | None
    ) -> tuple[RowStream, Iterator[tuple[Any, ...]]]:
        stream = self._stream(src, t, scope)
        return stream, (r for batch in stream.batches() for r in batch)

    def _reload(self, src: sqlite3.Connection, t: TableSync, result: Round) -> None:
        """A table without a usable key: replace its rows with transform(source)."""
        cols = t.tm.target_columns
        self.pg.execute(sql.SQL("DELETE FROM {}").format(qualified(self.opts.schema, t.tm.target)))
        stream, rows = self._read(src, t, None)
        stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
            qualified(self.opts.schema, t.tm.target),
            ident_list(cols),
        )
        with self.pg.cursor() as cur, cur.copy(stmt) as cp:
            if t.pipe.dump_types:
                cp.set_types(t.pipe.dump_types)
            n = 0
            for r in rows:
                cp.write_row(r)
                n += 1
        result.upserted += n
        result.reloaded_rows[t.name] = n
        result.rejected += stream.counts.rejected
        result.reloaded.append(t.name)
        self._set_rejected(t, None, [repr(("row", i)) for i in range(len(stream.reject_log))])

    def _stage(
        self,
        src: sqlite3.Connection,
        t: TableSync,
        keys: set[tuple[Any, ...]],
        result: Round,
    ) -> int:
        """Read the rows of `keys` that exist (and pass the plan) into a temporary table
        ("up"), and every changed key, in target form, into another ("del")."""
        assert t.keys is not None
        width = len(t.keys)
        src.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _lite2pg_keys ("
            + ", ".join(f"k{i}" for i in range(1, capture.MAX_KEY_COLUMNS + 1))
            + ")"
        )
        src.execute("DELETE FROM temp._lite2pg_keys")
        pad = (None,) * (capture.MAX_KEY_COLUMNS - width)
        src.executemany(
            "INSERT INTO temp._lite2pg_keys VALUES ("
            + ", ".join("?" * capture.MAX_KEY_COLUMNS)
            + ")",
            [k + pad for k in keys],
        )
        lhs = ", ".join(source.quote_ident(k) for k in t.keys)
        rhs = ", ".join(f"k{i}" for i in range(1, width + 1))
        scope = f"({lhs}) IN (SELECT {rhs} FROM temp._lite2pg_keys)"
        cols = t.tm.target_columns
        up = self._temp_name("up", t)
        self._temp_like(t, up, cols)
        stream, rows = self._read(src, t, scope)
        n = self._copy_rows(up, cols, rows, t.pipe.dump_types)
        result.rejected += stream.counts.rejected
        changed: list[tuple[Any, ...]] = []
        for k in keys:
            try:
                changed.append(t.target_key(k))
            except Exception:  # a key that cannot convert was never loaded
                continue
        gone = self._temp_name("del", t)
        self._temp_like(t, gone, t.target_keys)
        types = None
        if t.pipe.dump_types:
            pos = [cols.index(k) for k in t.target_keys]
            types = [t.pipe.dump_types[p] for p in pos]
        self._copy_rows(gone, t.target_keys, iter(changed), types)
        rejected_keys = [reject_key(r.key, t.keys) for r in stream.reject_log]
        self._set_rejected(t, [repr(k) for k in keys], rejected_keys)
        return n

    def _write(self, staged: list[tuple[TableSync, int]], result: Round) -> None:
        """Apply the staged rows. Deletes first (children first), then upserts (parents
        first): a row that takes over a deleted row's unique value finds it gone. Should a
        foreign key refuse that order (a child moved to another parent before its old
        parent went), upserts go first. Should a unique value move between two changed
        rows, their nullable unique columns are cleared first; failing that, the changed
        rows are deleted and inserted again. Each order is tried under a savepoint."""
        orders: list[tuple[str, ...]] = [
            ("gone", "upsert"),
            ("upsert", "gone"),
            ("clear", "gone", "upsert"),
            ("clear", "upsert", "gone"),
            ("all", "upsert"),
        ]
        orphans_rejected = False
        attempt_no = 0
        while attempt_no < len(orders):
            order = orders[attempt_no]
            attempt_no += 1
            upserted = deleted = 0
            net: dict[str, int] = {}
            try:
                with self.pg.transaction():
                    self.pg.execute("SET CONSTRAINTS ALL DEFERRED")
                    for step in order:
                        if step == "clear":
                            for t, n in staged:
                                if n:
                                    self._clear_unique(t)
                        elif step == "upsert":
                            for t, n in staged:
                                if n:
                                    written, inserted = self._upsert(t)
                                    upserted += written
                                    net[t.name] = net.get(t.name, 0) + inserted
                        else:
                            for t, _ in reversed(staged):
                                gone = self._delete(t, everything=step == "all")
                                if step == "gone":
                                    deleted += gone
                                net[t.name] = net.get(t.name, 0) - gone
                    self.pg.execute("SET CONSTRAINTS ALL IMMEDIATE")
            except psycopg.errors.IntegrityError as e:
                if attempt_no < len(orders):
                    continue
                # No order works. Rows that point at a parent PostgreSQL does not have (a
                # source that does not enforce foreign keys) are rejected, as a plan's
                # on_orphan = "reject" would, and the orders are tried once more.
                if orphans_rejected or not isinstance(e, psycopg.errors.ForeignKeyViolation):
                    raise
                orphans_rejected = True
                if not self._reject_orphans(staged, result):
                    raise
                attempt_no = 0
                continue
            result.upserted += upserted
            result.deleted += deleted
            for name, n in net.items():
                result.net[name] = result.net.get(name, 0) + n
            break
        for t, n in staged:
            if n:
                self._check_written(t, self._temp_name("up", t), t.tm.target_columns)

    def _reject_orphans(self, staged: list[tuple[TableSync, int]], result: Round) -> int:
        """Take out of the staged rows those whose foreign key finds no parent, neither in
        the target (unless it is about to be deleted) nor among the staged rows; log them
        as rejected. Returns how many."""
        by_target = {t.tm.target: t for t, _ in staged}
        total = 0
        for t, n in staged:
            if not n:
                continue
            fks = self.pg.execute(
                "SELECT n.nspname, r.relname, "
                "array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i) "
                "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i), "
                "array(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, i) "
                "JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i) "
                "FROM pg_constraint c JOIN pg_class r ON r.oid = c.confrelid "
                "JOIN pg_namespace n ON n.oid = r.relnamespace "
                "WHERE c.contype = 'f' AND c.conrelid = %s::regclass",
                (qualified(self.opts.schema, t.tm.target).as_string(self.pg),),
            ).fetchall()
            up = sql.Identifier(self._temp_name("up", t))
            for parent_schema, parent_name, cols, refs in fks:
                pt = by_target.get(parent_name) if parent_schema == self.opts.schema else None
                match = sql.SQL(" AND ").join(
                    sql.SQL("p.{} = u.{}").format(sql.Identifier(r), sql.Identifier(c))
                    for c, r in zip(cols, refs, strict=True)
                )
                parent = qualified(parent_schema, parent_name)
                alive = sql.SQL("EXISTS (SELECT 1 FROM {parent} p WHERE {match}{not_gone})")
                not_gone: sql.Composable = sql.SQL("")
                staged_parent: sql.Composable = sql.SQL("")
                if pt is not None:
                    # The parent's own keys (p.) against the key columns of its temporary
                    # tables (unqualified there, so they are not the outer row's).
                    not_gone = sql.SQL(
                        " AND ({p_keys}) NOT IN (SELECT {keys} FROM pg_temp.{gone} "
                        "EXCEPT SELECT {keys} FROM pg_temp.{pup})"
                    ).format(
                        p_keys=sql.SQL(", ").join(sql.SQL("p.") + sql.Identifier(k)
                                                  for k in pt.target_keys),
                        keys=ident_list(pt.target_keys),
                        gone=sql.Identifier(self._temp_name("del", pt)),
                        pup=sql.Identifier(self._temp_name("up", pt)),
                    )  # fmt: skip
                    staged_parent = sql.SQL(
                        " OR EXISTS (SELECT 1 FROM pg_temp.{pup} p WHERE {match})"
                    ).format(pup=sql.Identifier(self._temp_name("up", pt)), match=match)
                set_cols = sql.SQL(" AND ").join(
                    sql.SQL("u.{} IS NOT NULL").format(sql.Identifier(c)) for c in cols
                )
                gone_rows = self.pg.execute(
                    sql.SQL(
                        "DELETE FROM pg_temp.{up} u WHERE {set_cols} AND NOT ({alive}{staged}) "
                        "RETURNING {keys}, {fkcols}"
                    ).format(
                        up=up,
                        set_cols=set_cols,
                        alive=alive.format(parent=parent, match=match, not_gone=not_gone),
                        staged=staged_parent,
                        keys=ident_list(t.target_keys),
                        fkcols=ident_list(cols),
                    )
                ).fetchall()
                width = len(t.target_keys)
                for row in gone_rows:
                    key, ref = row[:width], row[width:]
                    assert t.keys is not None
                    if self._sink is not None:
                        self._sink.write(
                            t.name,
                            dict(zip(t.keys, key, strict=True)),
                            cols[0],
                            f"orphan: {', '.join(cols)} = {', '.join(map(repr, ref))} has no "
                            f"row in {parent_name}",
                            {},
                        )
                self._set_rejected(t, [], [repr(tuple(r[:width])) for r in gone_rows])
                result.rejected += len(gone_rows)
                total += len(gone_rows)
        return total

    def _clear_unique(self, t: TableSync) -> None:
        """Set the nullable UNIQUE columns of the rows about to be upserted to NULL, so
        that values moving between them cannot clash on the way."""
        rows = self.pg.execute(
            "SELECT DISTINCT a.attname FROM pg_index i "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = %s::regclass AND i.indisunique AND NOT i.indisprimary "
            "AND NOT a.attnotnull",
            (qualified(self.opts.schema, t.tm.target).as_string(self.pg),),
        ).fetchall()
        columns = [str(r[0]) for r in rows if str(r[0]) in t.tm.target_columns]
        if not columns:
            return
        keys = ident_list(t.target_keys)
        self.pg.execute(
            sql.SQL(
                "UPDATE {t} SET {sets} WHERE ({keys}) IN (SELECT {keys} FROM pg_temp.{up})"
            ).format(
                t=qualified(self.opts.schema, t.tm.target),
                sets=sql.SQL(", ").join(
                    sql.SQL("{} = NULL").format(sql.Identifier(c)) for c in columns
                ),
                keys=keys,
                up=sql.Identifier(self._temp_name("up", t)),
            )
        )

    def _upsert(self, t: TableSync) -> tuple[int, int]:
        """Upsert the staged rows; return how many were written and how many of them
        were new rows (xmax = 0: no earlier version)."""
        cols = t.tm.target_columns
        col_list = ident_list(cols)
        key_list = ident_list(t.target_keys)
        rest = [c for c in cols if c not in t.target_keys]
        action = (
            sql.SQL("DO UPDATE SET ")
            + sql.SQL(", ").join(
                sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in rest
            )
            if rest
            else sql.SQL("DO NOTHING")
        )
        cur = self.pg.execute(
            sql.SQL(
                "INSERT INTO {t} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM "
                "pg_temp.{up} ON CONFLICT ({keys}) {action} RETURNING (xmax = 0)"
            ).format(
                t=qualified(self.opts.schema, t.tm.target),
                cols=col_list,
                up=sql.Identifier(self._temp_name("up", t)),
                keys=key_list,
                action=action,
            )
        )
        flags = cur.fetchall()
        return len(flags), sum(1 for (new,) in flags if new)

    def _delete(self, t: TableSync, *, everything: bool) -> int:
        """Delete the changed keys that were not read back (gone, rejected or filtered
        out), or with `everything` all changed keys. PostgreSQL compares the keys, in the
        target's own types."""
        key_list = ident_list(t.target_keys)
        keep = (
            sql.SQL("")
            if everything
            else sql.SQL(" EXCEPT SELECT {keys} FROM pg_temp.{up}").format(
                keys=key_list, up=sql.Identifier(self._temp_name("up", t))
            )
        )
        cur = self.pg.execute(
            sql.SQL(
                "DELETE FROM {t} WHERE ({keys}) IN (SELECT {keys} FROM pg_temp.{gone}{keep})"
            ).format(
                t=qualified(self.opts.schema, t.tm.target),
                keys=key_list,
                gone=sql.Identifier(self._temp_name("del", t)),
                keep=keep,
            )
        )
        return max(cur.rowcount, 0)

    def _temp_name(self, kind: str, t: TableSync) -> str:
        return f"_lite2pg_{kind}_{self.tables.index(t)}"

    def _check_written(self, t: TableSync, up: str, cols: Sequence[str]) -> None:
        """Every upserted row now in the target equals, column by column as PostgreSQL
        renders it, the row written."""
        same = sql.SQL(" AND ").join(
            sql.SQL("x.{c}::text IS NOT DISTINCT FROM u.{c}::text").format(c=sql.Identifier(c))
            for c in cols
        )
        match = sql.SQL(" AND ").join(
            sql.SQL("x.{c} = u.{c}").format(c=sql.Identifier(c)) for c in t.target_keys
        )
        row = self.pg.execute(
            sql.SQL(
                "SELECT count(*) FROM pg_temp.{up} u WHERE NOT EXISTS "
                "(SELECT 1 FROM {t} x WHERE {match} AND {same})"
            ).format(
                up=sql.Identifier(up),
                t=qualified(self.opts.schema, t.tm.target),
                match=match,
                same=same,
            )
        ).fetchone()
        if row and row[0]:
            raise SyncError(
                f"{row[0]} row(s) of {t.tm.target} differ from what sync wrote (a trigger or "
                "rule on the target changed them?)",
                "nothing was applied; look at the target table's triggers, then sync again",
            )
