"""lite2pg verify: prove that the target equals transform(source), every row and column.

A run is checked against its run directory, never against the live source: run.json (what
the run was asked to do), the SQLite snapshot it loaded, report.json (what it says it did),
rejects/ and the password cache. The checks:

0. Catalog (_catalog), first: columns, keys, indexes, CHECKs and foreign keys as the run
   built them (its DDL built again in a rolled-back scratch schema, then both catalogs
   compared), and every identity or serial sequence past max(key) and the AUTOINCREMENT
   mark. A table whose columns differ in type, or are missing, is not compared row by row
   (the casts would be lossy); it fails with the reason.
1. Counts: per table, rows in the snapshot = rows in PostgreSQL + rejected + filtered, with
   every number counted afresh on both sides and checked against report.json.
2. Foreign keys: validated constraints hold by PostgreSQL's word; NOT VALID or missing ones
   get an anti-join. Orphans the plan kept (`on_orphan = "keep"`) are listed apart.
3. Content: both sides streamed in primary-key order and merged; missing, extra and changed
   rows are reported with the key, the columns and both values (secrets redacted). Rows
   the run rejected must be absent, every other row present and equal. A table without a
   primary key is compared as a multiset of rows.
4. Digests: SHA-256 of each side's canonical rows, per table (lite2pg-v2: per column, the
   canonical text of its values in key order, then the column digests hashed together; for
   a table without a key the sum of the SHA-256 of each row's canonical text; the same
   whichever path compared a row), and of the snapshot (kept in report.json and checked
   again by every later verify).
5. Spot-checks: a few seeded random rows per table, source raw -> expected -> target.
6. Application-level checks: for every `map` column the value distribution, and for every
   foreign key column the rows per parent key, source-through-plan against PostgreSQL.
7. Evidence (_evidence): evidence.json's HMAC and the SHA-256 of every file it pins (run.json,
   snapshot, manifest, rejects/) and report.json's counts, recomputed; every row logged as
   refused by PostgreSQL replayed in a rolled-back transaction, to be refused again.

How content is compared fast, yet exactly. Tables keyed by an INTEGER PRIMARY KEY take the
fast path (_fast): chunks of rows are rendered as text in SQL by SQLite and by PostgreSQL
at once, and compared as bytes, with guards that make equal bytes a proof (the argument is
in _fast's docstring, the per-type renderings and their guards in _render). Columns with
plan transforms are rendered by Python from the snapshot through the run's own steps, the
others in SQL. Tables without a primary key (_sorted) are rendered the same way row by row
and compared as sequences, in stored order or else sorted (big ones in slices by the values
of an integer column, one job each). Any chunk not proven equal, and
the tables the fast paths do not take (password columns, interval and money columns, more
than 400 columns), go through the row-by-row path: PostgreSQL renders every column in SQL
into a *canonical* Python value (integers and 0/1 booleans as int, floats as float,
numerics as text without trailing zeros, timestamps as UTC text at microsecond precision,
text and enums as str, bytea as bytes). For most rows SQLite's raw value already is that
value, so a window of rows is compared with one list comparison in C. A window that differs
is merged row by row: each source row not equal as it stands goes through the run's own
pipeline (plan transforms, coercion, orphan policies, the password cache) before its
columns are compared. Neither shortcut can hide a difference: each only skips work on rows
it has shown equal. Large tables are split into key ranges verified in parallel processes.
The report counts the chunks each way and says why a table went row by row.

The package: this module is the public surface; the private modules hold one concern each
(_report: result objects, _main: the whole run, _catalog, _counts, _fks, _fast/_render/_sorted/
_content/_unordered/_stream: the comparison, _parallel: the jobs, _distributions, _spot,
_passwords, _rejects, _evidence, _canon, _table and _run: a run's tables reopened).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg

from lite2pg.target import Target
from lite2pg.verify._canon import REDACTED as REDACTED
from lite2pg.verify._canon import Row as Row
from lite2pg.verify._canon import numeric_text as numeric_text
from lite2pg.verify._canon import snapshot_sha256
from lite2pg.verify._canon import timestamp_text as timestamp_text
from lite2pg.verify._main import _run_verify
from lite2pg.verify._report import (
    DIGEST_NAME as DIGEST_NAME,
)
from lite2pg.verify._report import (
    MAX_PAIRS as MAX_PAIRS,
)
from lite2pg.verify._report import (
    MAX_SHOWN as MAX_SHOWN,
)
from lite2pg.verify._report import (
    CatalogCheck as CatalogCheck,
)
from lite2pg.verify._report import (
    DistributionCheck as DistributionCheck,
)
from lite2pg.verify._report import (
    ForeignKeyCheck as ForeignKeyCheck,
)
from lite2pg.verify._report import (
    TableVerification as TableVerification,
)
from lite2pg.verify._report import (
    VerifyError,
    VerifyReport,
)
from lite2pg.verify._stream import WINDOW as WINDOW

__all__ = ["VerifyError", "VerifyReport", "snapshot_sha256", "verify"]

# Tuning constants read by `verify` on each call (so that a test may set them here).
# Tables with an INTEGER PRIMARY KEY are verified in key ranges of about this many rows,
# in parallel (tables without a key: slices by an integer column's values, `_sorted`).
# Fixed, not derived from the core count: the digest combines the ranges'.
UNIT_ROWS = 250_000
# Below this many rows in all, starting worker processes costs more than it saves.
PARALLEL_MIN_ROWS = 200_000


def verify(
    run_dir: Path,
    target: Target,
    *,
    sample: int = 5,
    seed: int = 0,
    float_tolerance: float = 0.0,
    pg_snapshot: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> VerifyReport:
    """Check a migrate run's target against transform(snapshot) and return the report;
    also write it into report.json ("verify") and report.html in the run directory.

    `pg_snapshot` (from pg_export_snapshot(), its transaction still open) verifies the
    target as it was then: an online cutover checks the state it handed over while the
    app already writes to PostgreSQL. `progress` hears of each table's rows compared so
    far, and of its rows in all. PostgreSQL refusing one of verify's queries (a column's
    type changed since the run, a privilege taken away) is a VerifyError; a lost
    connection stays a psycopg.OperationalError, for the caller to say what to do next."""
    try:
        return _run_verify(
            run_dir, target, sample, seed, float_tolerance, UNIT_ROWS, PARALLEL_MIN_ROWS,
            pg_snapshot, progress,
        )  # fmt: skip
    except psycopg.OperationalError:
        raise
    except psycopg.Error as e:
        raise _refused(e) from None


def _refused(e: psycopg.Error) -> VerifyError:
    """A query of verify's that PostgreSQL refused, as one line that names the error."""
    text = str(e).strip()
    first = (e.diag.message_primary if e.diag else None) or (text.splitlines() or [""])[0]
    problem = f"PostgreSQL refused a query ({type(e).__name__}: {first})"
    if isinstance(e, psycopg.errors.InsufficientPrivilege):
        return VerifyError("the target", problem, "connect as a role that may read the tables")
    return VerifyError(
        "the target",
        problem + "; its tables differ from what the run built (a table, column or type "
        "dropped or changed since?)",
        "the target does not hold what the run loaded: migrate again, or undo the change",
    )
