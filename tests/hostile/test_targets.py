"""Hostile targets: a server that is not there, a wrong password, a user without CREATE,
existing tables that do not fit, constraints the data breaks, and a full disk under the
run directory.

A target that cannot take the data at all gives one line with a hint, exit 2, and is left
as it was; rows it refuses one by one are rejected with the reason (exit 1) and the rest
load; a full disk fails cleanly and the same command completes once there is room.
"""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from lite2pg import embedded
from lite2pg.errors import TargetError

from ..conftest import MakeDb, PgSchema
from ._harness import (
    Result,
    cli,
    file_digest,
    known_error,
    lost,
    pg_state,
    rejects,
    report,
    run_artifacts,
    succeeded,
    target_args,
)
from .conftest import RowsLost

PATHS = ["stream", "artifacts"]
PASSWORD = "Kq9plover tamarind Zz7"


def _people(make_db: MakeDb) -> Path:
    return make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
        ("INSERT INTO t VALUES (?, ?)", [(1, "ada"), (2, "grace"), (3, "edsger")]),
    )


def _refused(db: Path, pg: PgSchema, tmp_path: Path, dsn: str, *args: str) -> str:
    before = pg_state(pg)
    digest = file_digest(db)
    line = known_error(
        cli("migrate", str(db), "--target", dsn, "--schema", pg.schema,
            "--run-dir", str(tmp_path / "run"), *args, cwd=tmp_path)
    )  # fmt: skip
    assert pg_state(pg) == before
    assert file_digest(db) == digest
    return line


# --- connecting ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dsn",
    ["postgresql://postgres@127.0.0.1:1/postgres", "postgresql://postgres@no-such-host.invalid/x"],
    ids=["closed-port", "unknown-host"],
)
def test_unreachable_server_is_one_line_error(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, dsn: str
) -> None:
    line = _refused(_people(make_db), pg, tmp_path, dsn)
    assert "cannot connect" in line and "check that the server runs" in line


@pytest.fixture(scope="module")
def password_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private PostgreSQL that asks role `lite2pg_pw` for its password (scram-sha-256).

    The shared test server trusts every local connection, so it cannot test a wrong
    password; this one is an embedded server whose pg_hba.conf we may change."""
    data_dir = tmp_path_factory.mktemp("pw-pg") / "pg"
    for attempt in range(3):  # initdb now and then fails on a busy machine: try again
        try:
            uri = embedded.start(data_dir).uri
            break
        except TargetError as e:
            if attempt == 2:
                pytest.skip(f"cannot start a private embedded PostgreSQL: {e}")
    try:
        with psycopg.connect(uri, autocommit=True) as conn:
            hba = conn.execute("SHOW hba_file").fetchone()
            assert hba is not None
            conn.execute(
                sql.SQL("CREATE ROLE lite2pg_pw LOGIN PASSWORD {}").format(sql.Literal(PASSWORD))
            )
            conn.execute("GRANT CREATE ON DATABASE postgres TO lite2pg_pw")
            path = Path(str(hba[0]))
            rules = "local all lite2pg_pw scram-sha-256\nhost all lite2pg_pw all scram-sha-256\n"
            path.write_text(rules + path.read_text())
            conn.execute("SELECT pg_reload_conf()")
        yield uri
    finally:
        embedded.stop(data_dir)


def _never_shown(secret: str, result: Result, run_dir: Path) -> None:
    """No word of `secret` in the output or in any file of the run directory."""
    for word in secret.split():
        assert word not in result.stdout + result.stderr, word
        for f in run_dir.rglob("*"):
            if f.is_file():
                assert word.encode() not in f.read_bytes(), (word, f)


@pytest.mark.parametrize("form", ["uri", "key=value"])
def test_wrong_password_is_one_line_error_that_never_shows_the_password(
    make_db: MakeDb, tmp_path: Path, password_server: str, form: str
) -> None:
    db = _people(make_db)
    secret = "Xj4quokka frond-Yy9"  # a space: a key=value password is quoted
    if form == "uri":
        params = conninfo_to_dict(password_server)
        dsn = (
            f"postgresql://lite2pg_pw:{quote(secret, safe='')}@/{params.get('dbname', '')}"
            f"?host={quote(str(params['host']), safe='')}"
        )
    else:
        dsn = make_conninfo(password_server, user="lite2pg_pw", password=secret)
    result = cli("migrate", str(db), "--target", dsn, "--run-dir", str(tmp_path / "run"),
                 cwd=tmp_path)  # fmt: skip
    line = known_error(result)
    assert "password authentication failed" in line and "check the user name and password" in line
    _never_shown(secret, result, tmp_path / "run")

    # The right password works, and shows up nowhere either.
    right = make_conninfo(password_server, user="lite2pg_pw", password=PASSWORD)
    ok = cli("migrate", str(db), "--target", right, "--schema", f"pw_{uuid.uuid4().hex[:8]}",
             "--run-dir", str(tmp_path / "run2"), cwd=tmp_path)  # fmt: skip
    succeeded(ok)
    _never_shown(PASSWORD, ok, tmp_path / "run2")


@pytest.fixture
def no_create_role(pg: PgSchema) -> Iterator[str]:
    """A login role that may use the test schema but create nothing, anywhere (PUBLIC has
    no CREATE on a database, and the test schema belongs to another role)."""
    role = f"lite2pg_nc_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                sql.Identifier(pg.schema), sql.Identifier(role)
            )
        )
    yield make_conninfo(pg.dsn, user=role)
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.mark.parametrize("path", PATHS)
def test_user_without_create_permission_is_one_line_error(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, no_create_role: str, path: str
) -> None:
    extra = ["--no-keep-artifacts"] if path == "stream" else ["--keep-artifacts"]
    line = _refused(_people(make_db), pg, tmp_path, no_create_role, *extra)
    assert "permission denied" in line and "grant" in line.lower()


# --- existing tables that do not fit ------------------------------------------------------


def _run(
    db: Path, pg: PgSchema, tmp_path: Path, path: str, *args: str
) -> subprocess.CompletedProcess[str]:
    run_dir = tmp_path / "run"
    if path == "stream":
        return cli("migrate", str(db), *target_args(pg, run_dir), "--no-keep-artifacts", *args,
                   cwd=tmp_path)  # fmt: skip
    exp, tr, result = run_artifacts(db, pg, run_dir, tmp_path, *args)
    succeeded(exp)
    succeeded(tr)
    return result


@pytest.mark.parametrize("path", PATHS)
def test_data_only_into_columns_of_incompatible_types_fails_before_writing(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, path: str
) -> None:
    pg.execute(
        "CREATE TABLE t (id bigint PRIMARY KEY, photo integer, born date);"
        "INSERT INTO t VALUES (1, 1, '2000-01-01');"
    )
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, photo BLOB, born REAL);",
        ("INSERT INTO t VALUES (?, ?, ?)", [(1, b"\x89PNG", 1.5)]),
    )
    before = pg_state(pg)
    line = known_error(_run(db, pg, tmp_path, path, "--data-only", "--truncate"))
    assert "'photo'" in line and "cannot go into" in line
    assert pg_state(pg) == before


DATA_ONLY_REFUSALS: dict[str, tuple[str, list[str | None], set[int], str]] = {
    "varchar-10": (
        "CREATE TABLE t (id bigint PRIMARY KEY, code varchar(10))",
        ["0123456789", "0123456789x", "ok", "ünïcødé✓✓✓", "ünïcødé✓✓✓✓", None],
        {2, 5},
        "10",
    ),
    "enum-without-value": (
        "CREATE TYPE {schema}.mood AS ENUM ('happy', 'sad');"
        "CREATE TABLE t (id bigint PRIMARY KEY, code {schema}.mood)",
        ["happy", "angry", "sad", "Happy", None],
        {2, 4},
        "enum",
    ),
    "check-violated": (
        "CREATE TABLE t (id bigint PRIMARY KEY, code text CHECK (code <> 'bad'))",
        ["good", "bad", "fine", "bad"],
        {2, 4},
        "check",
    ),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", list(DATA_ONLY_REFUSALS))
def test_rows_the_target_refuses_are_rejected_with_the_reason_and_the_rest_load(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, rows_lost: RowsLost, case: str, path: str
) -> None:
    ddl, values, refused_ids, word = DATA_ONLY_REFUSALS[case]
    pg.execute(ddl.replace("{schema}", f'"{pg.schema}"'))
    rows = list(enumerate(values, start=1))
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, code TEXT);", ("INSERT INTO t VALUES (?, ?)", rows)
    )
    result = _run(db, pg, tmp_path, path, "--data-only")
    succeeded(result, code=1)
    run_dir = tmp_path / "run"
    gone = lost(len(rows), pg, "t", run_dir)
    rows_lost(gone)
    refused = {int(r["key"]["id"]): r for r in rejects(run_dir, "t")}
    assert set(refused) == refused_ids, {k: r["reason"] for k, r in refused.items()}
    assert all(word in r["reason"].lower() for r in refused.values()), refused
    assert pg.query("SELECT id, code::text FROM t ORDER BY id") == [
        r for r in rows if r[0] not in refused_ids
    ]
    assert report(run_dir)["verify"]["ok"]
    assert gone == 0


@pytest.mark.parametrize("path", PATHS)
def test_sqlite_check_the_stored_data_violates(
    tmp_path: Path, pg: PgSchema, rows_lost: RowsLost, path: str
) -> None:
    # SQLite enforces CHECK on insert, but not on rows written while checks were off.
    db = tmp_path / "checked.db"
    with closing(sqlite3.connect(db)) as conn:
        conn.executescript(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, qty INTEGER CHECK (qty >= 0));"
            "PRAGMA ignore_check_constraints = 1;"
            "INSERT INTO t VALUES (1, 5), (2, -3), (3, 0);"
        )
    result = _run(db, pg, tmp_path, path)
    assert "Traceback" not in result.stderr
    run_dir = tmp_path / "run"
    gone = lost(3, pg, "t", run_dir)
    rows_lost(gone)
    assert gone == 0
    # Either the row that breaks the CHECK is rejected and the CHECK built, or every row
    # loads and the report says the CHECK could not be built: never silently neither.
    checks = pg.query(
        "SELECT count(*) FROM pg_constraint WHERE contype = 'c' AND conrelid = %s::regclass",
        (f"{pg.schema}.t",),
    )
    refused = {int(r["key"]["id"]) for r in rejects(run_dir, "t")}
    assert result.returncode == 1, result.stderr
    if refused:
        assert refused == {2} and checks == [(1,)]
    else:
        assert checks == [(0,)]
        assert any(p["failed"] for p in report(run_dir)["phases"] if p["name"] == "checks"), report(
            run_dir
        )["phases"]


# --- a full disk under the run directory ----------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[tuple[Path, int | None]]:
    """A directory on a 1.5 MB disk (a tmpfs when root can mount one), else a directory
    with a 512 kB file size limit for the child (RLIMIT_FSIZE): (directory, limit)."""
    d = tmp_path / "small"
    d.mkdir()
    size = 1536 * 1024
    if os.geteuid() == 0:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)],
            capture_output=True,
            check=False,
        )
        if mounted.returncode == 0:
            try:
                yield d, None
            finally:
                subprocess.run(["umount", "-l", str(d)], check=False)
            return
    yield d, 512 * 1024  # smaller than the snapshot: one file is enough to hit it


def _limited(limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("path", PATHS)
def test_full_artifact_disk_fails_cleanly_and_the_run_completes_with_room(
    make_db: MakeDb,
    pg: PgSchema,
    tmp_path: Path,
    small_disk: tuple[Path, int | None],
    rows_lost: RowsLost,
    path: str,
) -> None:
    # ~1 MB of SQLite that fits the disk; its CSV export (or its rejects) do not.
    rows = [(i, f"row {i} " + "x" * 300, "bad" if i % 2 else i) for i in range(3000)]
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT, n INTEGER);",
        ("INSERT INTO t VALUES (?, ?, ?)", rows),
    )
    assert db.stat().st_size < 1536 * 1024
    directory, limit = small_disk
    pg.execute("CREATE TABLE keep (x int); INSERT INTO keep VALUES (1);")
    before = pg_state(pg)
    digest = file_digest(db)
    extra = ["--no-keep-artifacts"] if path == "stream" else ["--keep-artifacts"]
    run_args = target_args(pg, directory / "run")
    args = [sys.executable, "-m", "lite2pg", "migrate", str(db), *run_args, *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    full = subprocess.run(
        args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False,
        preexec_fn=(lambda: _limited(limit)) if limit else None,
    )  # fmt: skip
    line = known_error(full)
    full_disk = ("No space left", "too large", "disk is full")
    assert "cannot write" in line and any(w in line for w in full_disk), line
    assert "--run-dir" in line
    assert pg_state(pg) == before
    assert file_digest(db) == digest

    # With room, the same command finishes: every row loaded or rejected, verified.
    again = cli("migrate", str(db), *target_args(pg, tmp_path / "roomy"), *extra, cwd=tmp_path)
    succeeded(again, code=1)
    gone = lost(len(rows), pg, "t", tmp_path / "roomy")
    rows_lost(gone)
    assert gone == 0
    assert pg.query("SELECT count(*) FROM t") == [(1500,)]
    assert report(tmp_path / "roomy")["verify"]["ok"]
