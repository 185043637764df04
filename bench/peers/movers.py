"""The raw movers bench/engines.py compares: all tables' rows SQLite -> PostgreSQL, nothing else.

    PYTHON bench/peers/movers.py ENGINE SQLITE_DB POSTGRES_URL SPEC_JSON RESULT_JSON

ENGINE, and the python to run it with:
  psycopg-text    lite2pg's venv: Python sqlite3 fetchmany -> psycopg COPY (text format)
                  write_row, with set_types as lite2pg passes them (what lite2pg's load does)
  psycopg-binary  lite2pg's venv: the same rows -> COPY (FORMAT BINARY) with set_types, psycopg's
                  C dumpers; timestamps and dates parsed to datetime/date in Python first
  duckdb          $PEERS/duck: ATTACH sqlite (READ_ONLY) and postgres, one
                  INSERT INTO pg.public.T SELECT ... FROM sq.T per table
  cx-adbc         $PEERS/dlt: connectorx SQLite -> Arrow record batches (arrow_stream), cast to
                  the target's Arrow types, ADBC PostgreSQL adbc_ingest (COPY binary)
  csv             any: sqlite3 -csv DB "SELECT ..." | psql URL -c "\\copy ... csv" (PGTZ=UTC)

The tables exist already (SPEC_JSON: {"tables": [{"name", "columns": [[name, pg type]]}]}),
with no keys. Each table is one transaction; a table that fails is recorded and the next
one is tried. RESULT_JSON gets {"move_s", "tables": {name: {"rows", "seconds", "error"}}}:
move_s runs from the first table's read to the last commit (imports, connecting and
ATTACH are before it). Only the standard library is imported at the top, so the script
runs in any of the venvs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

BATCH = 5_000  # lite2pg's fetchmany size


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def col_list(cols: list[list[str]]) -> str:
    return ", ".join(ident(c[0]) for c in cols)


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:240]


# ----------------------------------------------------------------------- psycopg, text/binary
def text_type(pg: str) -> str:
    """The psycopg dump type lite2pg passes for a column (coerce.DUMP_TYPES)."""
    if pg == "bigint" or pg == "boolean":
        return "int8"  # PostgreSQL's boolean reads '0'/'1'
    if pg == "double precision":
        return "float8"
    if pg.startswith("numeric"):
        return "numeric"
    if pg == "bytea":
        return "bytea"
    return "text"  # dates and timestamps go as ISO text


def _timestamptz(v: Any) -> Any:
    if not isinstance(v, str):
        return v  # not a timestamp: the dumper refuses it, and with it the table
    d = datetime.fromisoformat(v)
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def _date(v: Any) -> Any:
    return date.fromisoformat(v) if isinstance(v, str) else v


BINARY: dict[str, tuple[str, Callable[[Any], Any] | None]] = {
    "bigint": ("int8", None),
    "double precision": ("float8", None),
    "text": ("text", None),
    "bytea": ("bytea", None),
    "boolean": ("bool", None),  # psycopg's bool dumper takes 0/1 too
    "timestamptz": ("timestamptz", _timestamptz),
    "date": ("date", _date),
}


def sqlite_rows(db: str, table: dict[str, Any]) -> Iterator[list[tuple[Any, ...]]]:
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        cur = con.execute(f"SELECT {col_list(table['columns'])} FROM {ident(table['name'])}")
        while batch := cur.fetchmany(BATCH):
            yield batch
    finally:
        con.close()


def move_psycopg(db: str, url: str, tables: list[dict[str, Any]], binary: bool) -> dict[str, Any]:
    import psycopg

    out: dict[str, Any] = {}
    with psycopg.connect(url, options="-c TimeZone=UTC") as conn:
        started = time.perf_counter()
        for t in tables:
            t0, n = time.perf_counter(), 0
            pg_types = [c[1] for c in t["columns"]]
            fmt = " (FORMAT BINARY)" if binary else ""
            stmt = f"COPY public.{ident(t['name'])} ({col_list(t['columns'])}) FROM STDIN{fmt}"
            try:
                with conn.transaction(), conn.cursor() as cur, cur.copy(stmt) as cp:
                    if binary:
                        spec = [BINARY.get(p, ("numeric", None)) for p in pg_types]
                        cp.set_types([s[0] for s in spec])
                        conv = [(i, f) for i, (_, f) in enumerate(spec) if f]
                    else:
                        cp.set_types([text_type(p) for p in pg_types])
                        conv = []
                    write = cp.write_row
                    for batch in sqlite_rows(db, t):
                        for r in batch:
                            if conv:
                                row = list(r)
                                for i, f in conv:
                                    if row[i] is not None:
                                        row[i] = f(row[i])
                                write(row)
                            else:
                                write(r)
                        n += len(batch)
                out[t["name"]] = {"rows": n, "seconds": time.perf_counter() - t0, "error": None}
            except Exception as e:  # the table failed; the next one is tried
                out[t["name"]] = {
                    "rows": 0,
                    "seconds": time.perf_counter() - t0,
                    "error": first_line(e),
                }
        return {"move_s": time.perf_counter() - started, "tables": out}


# ------------------------------------------------------------------------------------- DuckDB
def move_duckdb(db: str, url: str, tables: list[dict[str, Any]]) -> dict[str, Any]:
    import duckdb

    def lit(s: str) -> str:
        return "'" + s.replace("'", "''") + "'"

    ext = os.path.join(os.path.dirname(duckdb.__file__), "..", "duckdb_ext", "extensions")
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute(f"SET extension_directory = {lit(os.path.abspath(ext))}")
    con.execute("LOAD sqlite")
    con.execute("LOAD postgres")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"ATTACH {lit(db)} AS sq (TYPE sqlite, READ_ONLY)")
    con.execute(f"ATTACH {lit(url)} AS pg (TYPE postgres)")
    out: dict[str, Any] = {}
    started = time.perf_counter()
    for t in tables:
        t0 = time.perf_counter()
        cols = col_list(t["columns"])
        try:
            row = con.execute(
                f"INSERT INTO pg.public.{ident(t['name'])} ({cols})"
                f" SELECT {cols} FROM sq.{ident(t['name'])}"
            ).fetchone()
            n = int(row[0]) if row else 0
            out[t["name"]] = {"rows": n, "seconds": time.perf_counter() - t0, "error": None}
        except duckdb.Error as e:
            out[t["name"]] = {
                "rows": 0,
                "seconds": time.perf_counter() - t0,
                "error": first_line(e),
            }
    return {"move_s": time.perf_counter() - started, "tables": out}


# ---------------------------------------------------------------------- connectorx + ADBC
def move_cx_adbc(db: str, url: str, tables: list[dict[str, Any]]) -> dict[str, Any]:
    import adbc_driver_postgresql.dbapi as adbc
    import connectorx as cx
    import pyarrow as pa

    arrow = {
        "bigint": pa.int64(),
        "double precision": pa.float64(),
        "text": pa.string(),
        "bytea": pa.binary(),
        "boolean": pa.bool_(),
        "timestamptz": pa.timestamp("us", tz="UTC"),  # connectorx reads naive: taken as UTC
        "date": pa.date32(),
    }
    out: dict[str, Any] = {}
    with adbc.connect(url) as conn:
        started = time.perf_counter()
        for t in tables:
            t0 = time.perf_counter()
            schema = pa.schema([(c[0], arrow.get(c[1], pa.string())) for c in t["columns"]])
            query = f"SELECT {col_list(t['columns'])} FROM {ident(t['name'])}"
            try:
                reader = cx.read_sql(
                    f"sqlite://{os.path.abspath(db)}",
                    query,
                    return_type="arrow_stream",
                    batch_size=10_000,
                )
                batches = (b.cast(schema) for b in reader)
                with conn.cursor() as cur:
                    n = cur.adbc_ingest(
                        t["name"],
                        pa.RecordBatchReader.from_batches(schema, batches),
                        mode="append",
                        db_schema_name="public",
                    )
                conn.commit()
                out[t["name"]] = {"rows": n, "seconds": time.perf_counter() - t0, "error": None}
            except Exception as e:  # the table failed; the next one is tried
                conn.rollback()
                out[t["name"]] = {
                    "rows": 0,
                    "seconds": time.perf_counter() - t0,
                    "error": first_line(e),
                }
        return {"move_s": time.perf_counter() - started, "tables": out}


# ----------------------------------------------------------------------------- sqlite3 | psql
def move_csv(db: str, url: str, tables: list[dict[str, Any]]) -> dict[str, Any]:
    env = {**os.environ, "PGTZ": "UTC"}
    out: dict[str, Any] = {}
    started = time.perf_counter()
    for t in tables:
        t0 = time.perf_counter()
        cols = col_list(t["columns"])
        sqlite = subprocess.Popen(
            ["sqlite3", "-csv", db, f"SELECT {cols} FROM {ident(t['name'])}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        psql = subprocess.run(
            [
                "psql",
                "-X",
                "-v",
                "ON_ERROR_STOP=1",
                url,
                "-c",
                f"\\copy public.{ident(t['name'])} ({cols}) from stdin csv",
            ],
            stdin=sqlite.stdout,
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert sqlite.stdout is not None and sqlite.stderr is not None
        sqlite.stdout.close()
        err = sqlite.stderr.read().decode(errors="replace")
        code = sqlite.wait()
        words = psql.stdout.split()
        n = int(words[-1]) if psql.returncode == 0 and words and words[-1].isdigit() else 0
        error = None
        if psql.returncode or code:
            error = (psql.stderr.strip() or err.strip() or f"exit {psql.returncode}/{code}")[:240]
        out[t["name"]] = {"rows": n, "seconds": time.perf_counter() - t0, "error": error}
    return {"move_s": time.perf_counter() - started, "tables": out}


def main() -> int:
    engine, db, url, spec_path, result_path = sys.argv[1:6]
    with open(spec_path) as fh:
        tables = json.load(fh)["tables"]
    if engine in ("psycopg-text", "psycopg-binary"):
        result = move_psycopg(db, url, tables, binary=engine == "psycopg-binary")
    elif engine == "duckdb":
        result = move_duckdb(db, url, tables)
    elif engine == "cx-adbc":
        result = move_cx_adbc(db, url, tables)
    elif engine == "csv":
        result = move_csv(db, url, tables)
    else:
        print(f"unknown engine {engine!r}", file=sys.stderr)
        return 2
    with open(result_path, "w") as fh:
        json.dump(result, fh)
    return 1 if any(t["error"] for t in result["tables"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
