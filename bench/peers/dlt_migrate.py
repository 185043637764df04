"""Copy every table of a SQLite file into PostgreSQL with dlt, as a dlt user would.

    $PEERS/dlt/bin/python bench/peers/dlt_migrate.py SQLITE_DB postgresql://.../DBNAME
        [--backend connectorx|pyarrow|sqlalchemy|pandas] [--format parquet|csv|insert_values]

Run with the python of the venv holding dlt[postgres], connectorx, pyarrow and
adbc-driver-postgresql (bench/peers/install.sh). The `sql_database` source reads with
connectorx (SQLite -> Arrow); parquet load files go in through ADBC's COPY. dataset_name is
"public", so the tables land in public beside dlt's _dlt_* tables; write_disposition is
"replace". The pipeline's working folder is a temporary directory, removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from urllib.parse import urlsplit, urlunsplit

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt
from dlt.sources.sql_database import sql_database


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("pg")
    ap.add_argument("--backend", default="connectorx")
    ap.add_argument("--format", default="parquet")
    a = ap.parse_args()
    # dlt refuses credentials without a password, even for a trust-auth server.
    u = urlsplit(a.pg)
    if u.password is None and u.username:
        netloc = f"{u.username}:unused@{u.hostname}:{u.port or 5432}"
        a.pg = urlunsplit(u._replace(netloc=netloc))
    work = tempfile.mkdtemp(prefix="dlt-")
    try:
        src = sql_database(f"sqlite:///{os.path.abspath(a.db)}", backend=a.backend)
        pipe = dlt.pipeline(
            pipeline_name="bench",
            pipelines_dir=work,
            destination=dlt.destinations.postgres(a.pg),
            dataset_name="public",
        )
        info = pipe.run(src, write_disposition="replace", loader_file_format=a.format)
        print(info)
        return 1 if info.has_failed_jobs else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
