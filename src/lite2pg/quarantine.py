"""Rejected rows kept in PostgreSQL too, where the app team can query them.

One table per run, `lite2pg.rejects_<run id>`, made from the run's rejects files once the
load is committed: the source table, the row's key and the whole source row as jsonb (a
secret column's values redacted, as in the files), the column at fault, the reason and
its category (what `lite2pg check` groups by). The files stay the record verify reads; the
table is a copy for people.

    SELECT source_table, category, count(*) FROM lite2pg."rejects_20261203t150643z"
    GROUP BY 1, 2 ORDER BY 3 DESC;
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from lite2pg.rows import read_rejects

SCHEMA = "lite2pg"  # the schema sync keeps its state in, too


def table_name(run_id: str) -> str:
    """The quarantine table of a run (its id lower-cased, other characters as `_`)."""
    return "rejects_" + re.sub(r"[^0-9a-z]+", "_", run_id.lower()).strip("_")


def keep(conn: psycopg.Connection[Any], rejects_dir: Path, run_id: str) -> tuple[str, int]:
    """(Re)make the run's quarantine table from its rejects files, in one transaction;
    returns its qualified name and the rows it holds."""
    name = table_name(run_id)
    table = sql.Identifier(SCHEMA, name)
    rows = 0
    with conn.transaction():
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (source_table text NOT NULL, key jsonb NOT NULL, "
                "source_column text, category text, reason text NOT NULL, "
                "row jsonb NOT NULL, rejected_at timestamptz NOT NULL DEFAULT now())"
            ).format(table)
        )
        copy = sql.SQL(
            "COPY {} (source_table, key, source_column, category, reason, row) FROM STDIN"
        ).format(table)
        with conn.cursor().copy(copy) as cp:
            for r in read_rejects(rejects_dir):
                cp.write_row(
                    (
                        r["table"], Jsonb(r["key"]), r.get("column"), r.get("category"),
                        r["reason"], Jsonb(r["row"]),
                    )
                )  # fmt: skip
                rows += 1
        conn.execute(
            sql.SQL("COMMENT ON TABLE {} IS {}").format(
                table, sql.Literal(f"rows lite2pg run {run_id} rejected, with the reason")
            )
        )
    return f"{SCHEMA}.{name}", rows


def drop(conn: psycopg.Connection[Any], run_id: str) -> None:
    """Drop a run's quarantine table (rollback), inside the caller's transaction."""
    conn.execute(
        sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(SCHEMA, table_name(run_id)))
    )
