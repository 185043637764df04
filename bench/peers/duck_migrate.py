"""Copy every table of a SQLite file into PostgreSQL with DuckDB, as a DuckDB user would.

    $PEERS/duck/bin/python bench/peers/duck_migrate.py SQLITE_DB postgresql://.../DBNAME

Run with the python of the venv holding duckdb and the duckdb-ext-sqlite /
duckdb-ext-postgres wheels (bench/peers/install.sh). Those wheels carry the extension files
under site-packages/duckdb_ext/extensions, so LOAD works with no download at run time.
`COPY FROM DATABASE sq TO pg` fails on 1.4.4 ("Calling GetStorage on a TableCatalogEntry
that is not a DuckTableEntry"), so each table is `CREATE TABLE pg.public.T AS SELECT * FROM
sq.T`. A table that fails is reported and the others are still tried (exit 1 if any
failed). DuckDB makes no keys, indexes, FKs or sequences: race.py tops them up.
"""

from __future__ import annotations

import os
import sys

import duckdb


def lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def connect() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the sqlite and postgres extensions loaded from the wheels."""
    ext = os.path.join(os.path.dirname(duckdb.__file__), "..", "duckdb_ext", "extensions")
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute(f"SET extension_directory = {lit(os.path.abspath(ext))}")
    con.execute("LOAD sqlite")
    con.execute("LOAD postgres")
    return con


def main() -> int:
    db, pg = sys.argv[1], sys.argv[2]
    con = connect()
    con.execute(f"ATTACH {lit(db)} AS sq (TYPE sqlite, READ_ONLY)")
    con.execute(f"ATTACH {lit(pg)} AS pg (TYPE postgres)")
    tables = [
        r[0]
        for r in con.execute(
            "SELECT name FROM sqlite_scan(?, 'sqlite_master')"
            " WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
            [db],
        ).fetchall()
    ]
    failed = 0
    for t in tables:
        try:
            con.execute(f"CREATE TABLE pg.public.{ident(t)} AS SELECT * FROM sq.{ident(t)}")
            print(f"{t}: copied", flush=True)
        except duckdb.Error as e:
            failed += 1
            print(f"{t}: FAILED: {type(e).__name__}: {str(e).splitlines()[0]}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
