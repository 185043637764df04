"""Shared fixtures: a real PostgreSQL (LITE2PG_TEST_DSN, else embedded) and SQLite files."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import settings
from psycopg import sql

from lite2pg import capture, embedded, quarantine
from lite2pg.target import Target

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"

# Hypothesis keeps its caches and example database under ./.hypothesis unless told
# otherwise: outside the checkout, and kept between runs, unless the caller chose a place.
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY", str(Path(tempfile.gettempdir()) / "lite2pg-hypothesis")
)

# CI runs the property tests on a fixed sequence of examples (the same on every run, so a
# red CI names a change, not a dice roll); at a desk they explore anew each time.
settings.register_profile("ci", derandomize=True, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--all-points",
        action="store_true",
        default=False,
        help="tests/crash: kill each command after every state-changing system call, "
        "not a sample of them (minutes longer).",
    )


def pytest_configure(config: pytest.Config) -> None:
    """The tables printed at the end: counted from the reports, so that they come out
    whole when pytest-xdist runs the tests in several processes."""
    from tests._tables import CrashPoints, Mutations, Reliability

    config.pluginmanager.register(Reliability(), "lite2pg-reliability")
    config.pluginmanager.register(Mutations(), "lite2pg-mutations")
    config.pluginmanager.register(CrashPoints(), "lite2pg-crash-points")


def _forget_runs(dsn: str, base: Path) -> None:
    """What the session's runs kept in the server's shared `lite2pg` schema (sync
    positions, quarantine tables), found by the run ids and directories under `base`:
    removed, so that the suite leaves nothing behind on a server it shares."""
    ids = set()
    for run_file in base.rglob("run.json"):
        with contextlib.suppress(OSError, ValueError):
            ids.add(str(json.loads(run_file.read_text()).get("id") or ""))
    ids.discard("")
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT to_regnamespace('lite2pg')").fetchone() == (None,):
            return
        for name in sorted({quarantine.table_name(i) for i in ids}):
            conn.execute(sql.SQL("DROP TABLE IF EXISTS lite2pg.{}").format(sql.Identifier(name)))
        if conn.execute("SELECT to_regclass('lite2pg.sync_state')").fetchone() == (None,):
            return
        gone = conn.execute(
            "DELETE FROM lite2pg.sync_state WHERE run = ANY(%s) OR run_dir LIKE %s RETURNING run",
            (list(ids), str(base.resolve()) + "/%"),
        ).fetchall()
        runs = [str(r[0]) for r in gone] + list(ids)
        conn.execute("DELETE FROM lite2pg.sync_rejected WHERE run = ANY(%s)", (runs,))


@pytest.fixture(scope="session")
def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The test server: LITE2PG_TEST_DSN when set, else an embedded one for this session."""
    dsn = os.environ.get("LITE2PG_TEST_DSN")
    if dsn:
        yield dsn
        _forget_runs(dsn, tmp_path_factory.getbasetemp())
        return
    # The major is $LITE2PG_EMBEDDED_PG when set (CI runs the suite on each one shipped).
    data_dir = tmp_path_factory.mktemp("embedded-pg") / "pg"
    server = embedded.start(data_dir)
    try:
        yield server.uri
    finally:
        embedded.stop(data_dir)


def staging_schema(schema: str) -> str:
    """The staging schema of a target schema, written out here rather than taken from
    lite2pg (its name is no setting): lite2pg_stage_ and the first 12 hex digits of the
    SHA-256 of the target schema's name. The kill tests in tests/hostile/test_faults.py
    find it left behind by a run killed mid-COPY, so this name is the one in use."""
    return "lite2pg_stage_" + hashlib.sha256(schema.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class PgSchema:
    """A fresh schema of the test server, dropped after the test."""

    dsn: str
    schema: str

    @property
    def target(self) -> Target:
        return Target(self.dsn, "--target")

    def query(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("SET TimeZone = 'UTC'")
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
            cur = conn.execute(statement.encode(), params)
            return list(cur.fetchall()) if cur.description else []

    def execute(self, statement: str) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
            conn.execute(statement.encode())


@pytest.fixture
def pg(pg_dsn: str) -> Iterator[PgSchema]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    yield PgSchema(pg_dsn, name)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


MakeDb = Callable[..., Path]


@pytest.fixture
def make_db(tmp_path: Path) -> MakeDb:
    """Write a SQLite file from DDL and rows: make_db("CREATE ...", ("INSERT ...", rows))."""
    counter = iter(range(1_000_000))

    def make(*statements: str | tuple[str, list[tuple[Any, ...]]], name: str | None = None) -> Path:
        path = tmp_path / (name or f"db{next(counter)}.sqlite")
        conn = sqlite3.connect(path)
        for st in statements:
            if isinstance(st, tuple):
                conn.executemany(st[0], st[1])
            else:
                conn.executescript(st)
        conn.commit()
        conn.close()
        return path

    return make


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.iterdir() if p.suffix in (".db", ".sqlite"))


def sqlite_refuses_writes(db: Path) -> bool:
    """Whether lite2pg's write block (cutover) refuses an app's write to `notes` in `db`;
    a write that goes through is committed."""
    with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
        try:
            conn.execute("INSERT INTO notes (body) VALUES ('late app write')")
            conn.commit()
        except sqlite3.IntegrityError as e:
            assert capture.MOVED_MESSAGE in str(e)
            return True
    return False
