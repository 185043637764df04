"""Hostile source files: missing, empty, not SQLite, truncated, corrupt, encrypted, in a
read-only directory, with committed data still in the -wal file, locked by a writer.

Each bad file ends in one error line with a hint, exit 2, the file byte-identical and the
target as it was; each good file (read-only directory, pending WAL) migrates completely.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, suppress
from pathlib import Path

import pytest

from ..conftest import MakeDb, PgSchema
from ._harness import (
    cli,
    file_digest,
    known_error,
    pg_count,
    pg_state,
    succeeded,
    target_args,
)
from .conftest import RowsLost

PAGE = 4096


def _filled(make_db: MakeDb, rows: int = 3000) -> Path:
    """A database of many pages: t(id, name, pad) with `rows` rows and an index."""
    return make_db(
        f"PRAGMA page_size={PAGE};"
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, pad TEXT);"
        "CREATE INDEX t_name ON t (name);",
        ("INSERT INTO t VALUES (?, ?, ?)", [(i, f"name {i}", "x" * 200) for i in range(rows)]),
    )


def _refused(
    source: Path,
    pg: PgSchema,
    tmp_path: Path,
    *problems: str,
    env: dict[str, str] | None = None,
    extra: list[str] | None = None,
) -> str:
    """Run migrate on a bad source: one line naming the file, nothing changed anywhere."""
    pg.execute("CREATE TABLE IF NOT EXISTS keep (x int); INSERT INTO keep VALUES (1);")
    before_src = file_digest(source) if source.is_file() else {}
    before = pg_state(pg)
    line = known_error(
        cli(
            "migrate",
            str(source),
            *target_args(pg, tmp_path / "run"),
            *(extra or []),
            cwd=tmp_path,
            env=env,
        )
    )
    for p in problems:
        assert p in line, line
    assert str(source) in line, line
    assert pg_state(pg) == before
    if before_src:
        assert file_digest(source) == before_src
    return line


def test_missing_file_is_named_with_a_hint(pg: PgSchema, tmp_path: Path) -> None:
    _refused(tmp_path / "nope.db", pg, tmp_path, "no such file")


def test_empty_file_is_refused(pg: PgSchema, tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    _refused(empty, pg, tmp_path, "file is empty")


@pytest.mark.parametrize(
    "content",
    [b"id,name\n1,ada\n", b"\x89PNG\r\n\x1a\n" + bytes(600), b"SQLite format 2\x00" + bytes(84)],
    ids=["csv", "png", "sqlite2"],
)
def test_a_file_that_is_not_sqlite_is_refused(pg: PgSchema, tmp_path: Path, content: bytes) -> None:
    other = tmp_path / "other.db"
    other.write_bytes(content)
    _refused(other, pg, tmp_path, "not a SQLite 3 database")


def test_encrypted_sqlcipher_like_file_says_to_decrypt_it(pg: PgSchema, tmp_path: Path) -> None:
    # SQLCipher encrypts page 1 too: the file starts with a random 16-byte salt.
    enc = tmp_path / "secret.db"
    enc.write_bytes(random.Random(7).randbytes(PAGE * 4))
    line = _refused(enc, pg, tmp_path, "not a SQLite 3 database")
    assert "SQLCipher" in line and "decrypt" in line


@pytest.mark.parametrize("keep", [0.5, 0.05, 100 / (PAGE * 200)], ids=["half", "5pct", "header"])
def test_truncated_file_is_refused(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, keep: float
) -> None:
    db = _filled(make_db)
    with db.open("r+b") as f:
        f.truncate(max(100, int(db.stat().st_size * keep)))
    _refused(db, pg, tmp_path, "corrupt")


@pytest.mark.parametrize("streaming", [False, True], ids=["artifacts", "streaming"])
@pytest.mark.parametrize("where", ["table-leaf", "index", "page1"])
def test_corrupt_page_is_refused(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, where: str, streaming: bool
) -> None:
    # The artifacts path runs quick_check on the snapshot; the streaming path meets the
    # damage while counting or reading rows, before anything is published.
    db = _filled(make_db)
    with closing(sqlite3.connect(db)) as conn:
        # dbstat is not in every build: find pages by rootpage and size instead.
        pages = db.stat().st_size // PAGE
        roots = dict(conn.execute("SELECT name, rootpage FROM sqlite_master"))
    root_t, root_i = roots["t"], roots["t_name"]
    page = {"table-leaf": max(root_t + 1, pages // 3), "index": root_i, "page1": 1}[where]
    with db.open("r+b") as f:
        offset = (page - 1) * PAGE + (100 if page == 1 else 0)
        f.seek(offset)
        f.write(random.Random(page).randbytes(PAGE - (100 if page == 1 else 0)))
    _refused(db, pg, tmp_path, "corrupt", extra=["--no-keep-artifacts"] if streaming else [])


# --- read-only directory ---------------------------------------------------------------


@pytest.fixture
def readonly_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory nobody can write to, root included (a read-only tmpfs when root)."""
    d = tmp_path / "ro"
    d.mkdir()
    if os.geteuid() != 0:
        yield d
        d.chmod(0o755)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(d)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"root cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def _make_readonly(d: Path) -> None:
    if os.geteuid() != 0:
        for p in d.iterdir():
            p.chmod(0o444)
        d.chmod(0o555)
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(d)], check=True)
    with pytest.raises(OSError):
        (d / "probe").write_text("x")


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_source_in_a_read_only_directory_migrates(
    readonly_dir: Path, pg: PgSchema, tmp_path: Path, rows_lost: RowsLost, journal: str
) -> None:
    db = readonly_dir / "app.db"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute(f"PRAGMA journal_mode={journal}")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(500)])
        conn.commit()
    _make_readonly(readonly_dir)
    before = file_digest(db)
    result = cli("migrate", str(db), *target_args(pg, tmp_path / "run"), cwd=tmp_path)
    succeeded(result)
    rows_lost(500 - pg_count(pg, "t"))
    assert pg_count(pg, "t") == 500
    assert file_digest(db) == before


def test_unwritable_run_directory_is_one_line_error(
    make_db: MakeDb, readonly_dir: Path, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
    _make_readonly(readonly_dir)
    before = pg_state(pg)
    line = known_error(
        cli("migrate", str(db), *target_args(pg, readonly_dir / "run"), cwd=tmp_path)
    )
    assert str(readonly_dir / "run") in line
    assert pg_state(pg) == before


# --- WAL and locks -----------------------------------------------------------------------

_WRITER = """
import os, sqlite3, sys, time
db, mode, hold = sys.argv[1], sys.argv[2], float(sys.argv[3])
conn = sqlite3.connect(db, isolation_level=None)
if mode == "wal-crash":
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"wal {i}") for i in range(1000, 1700)])
    conn.execute("COMMIT")
    os._exit(0)  # the app died: no checkpoint, the committed rows stay in -wal
conn.execute("BEGIN EXCLUSIVE")
conn.execute("INSERT INTO t VALUES (99999, 'in flight')")
print("locked", flush=True)
time.sleep(hold)
conn.execute("ROLLBACK")
"""


def _writer(db: Path, mode: str, hold: float = 0) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(db), mode, str(hold)],
        stdout=subprocess.PIPE,
        text=True,
    )


def _stop(writer: subprocess.Popen[str]) -> None:
    writer.kill()
    writer.wait()
    if writer.stdout is not None:
        writer.stdout.close()


def test_committed_rows_in_an_uncheckpointed_wal_are_included(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, rows_lost: RowsLost
) -> None:
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);",
        ("INSERT INTO t VALUES (?, ?)", [(i, f"main {i}") for i in range(1000)]),
    )
    crashed = _writer(db, "wal-crash")
    assert crashed.wait(timeout=30) == 0
    _stop(crashed)
    wal = Path(f"{db}-wal")
    assert wal.stat().st_size > 0
    with db.open("rb") as f:  # the main file alone does not have them yet
        assert f.read(100)[18:20] == b"\x02\x02"
    before = file_digest(db)

    result = cli("migrate", str(db), *target_args(pg, tmp_path / "run"), cwd=tmp_path)
    succeeded(result)
    rows_lost(1700 - pg_count(pg, "t"))
    assert pg.query("SELECT count(*), max(id) FROM t WHERE starts_with(v, 'wal ')") == [(700, 1699)]
    assert pg_count(pg, "t") == 1700
    assert file_digest(db) == before  # no checkpoint ran: db and -wal are byte-identical


def test_writer_holding_the_lock_too_long_fails_after_the_configured_timeout(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a');")
    writer = _writer(db, "exclusive", hold=60)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "locked"
        before = file_digest(db)
        line = _refused(db, pg, tmp_path, "locked", env={"LITE2PG_BUSY_TIMEOUT": "1.5"})
        # It gave up on its own timeout: the writer holds the lock still (for 60 s).
        assert writer.poll() is None
        assert "held the lock for more than 1.5s" in line and "LITE2PG_BUSY_TIMEOUT" in line
        assert file_digest(db) == before
    finally:
        _stop(writer)


def test_writer_that_lets_go_within_the_timeout_is_waited_for(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, rows_lost: RowsLost
) -> None:
    db = make_db("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a');")
    writer = _writer(db, "exclusive", hold=2)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "locked"
        result = cli(
            "migrate", str(db), *target_args(pg, tmp_path / "run"), cwd=tmp_path,
            env={"LITE2PG_BUSY_TIMEOUT": "30"},
        )  # fmt: skip
    finally:
        with suppress(subprocess.TimeoutExpired):
            writer.wait(timeout=30)
        _stop(writer)
    succeeded(result)
    rows_lost(1 - pg_count(pg, "t"))
    assert pg.query("SELECT id, v FROM t") == [(1, "a")]  # the rolled-back row never shows


def test_busy_timeout_that_is_not_a_number_is_a_usage_error(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db("CREATE TABLE t (id INTEGER PRIMARY KEY);")
    before = pg_state(pg)
    line = known_error(
        cli("migrate", str(db), *target_args(pg, tmp_path / "run"), cwd=tmp_path,
            env={"LITE2PG_BUSY_TIMEOUT": "soon"})
    )  # fmt: skip
    assert "LITE2PG_BUSY_TIMEOUT" in line and "'soon'" in line
    assert pg_state(pg) == before


_CRASH_MID_WRITE = """
import os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA cache_size=10")  # small: changed pages spill into the file itself
conn.execute("BEGIN")
conn.execute("UPDATE t SET v = 'half-written'")
conn.execute("INSERT INTO t SELECT id + 100000, v FROM t")
os._exit(0)  # the app died mid-transaction: a hot -journal stays behind
"""


def test_hot_journal_of_a_crashed_writer_is_refused_with_how_to_roll_it_back(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);",
        ("INSERT INTO t VALUES (?, ?)", [(i, "x" * 200) for i in range(5000)]),
    )
    subprocess.run([sys.executable, "-c", _CRASH_MID_WRITE, str(db)], check=True)
    assert Path(f"{db}-journal").stat().st_size > 0
    # Reading the file as it is would see half a transaction: refuse, and say how to fix.
    line = _refused(db, pg, tmp_path, "journal", "rolled back")
    assert "sqlite3" in line


def test_pending_wal_in_a_read_only_directory_is_included(
    make_db: MakeDb, readonly_dir: Path, pg: PgSchema, tmp_path: Path, rows_lost: RowsLost
) -> None:
    db = readonly_dir / "app.db"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"main {i}") for i in range(1000)])
        conn.commit()
    crashed = _writer(db, "wal-crash")
    assert crashed.wait(timeout=30) == 0
    _stop(crashed)
    _make_readonly(readonly_dir)
    before = file_digest(db)
    result = cli("migrate", str(db), *target_args(pg, tmp_path / "run"), cwd=tmp_path)
    succeeded(result)
    rows_lost(1700 - pg_count(pg, "t"))
    assert pg_count(pg, "t") == 1700  # the -wal rows too, never only the main file's
    assert file_digest(db) == before


@pytest.mark.parametrize("command", ["check", "export"])
def test_other_commands_refuse_a_corrupt_file_in_one_line(
    make_db: MakeDb, tmp_path: Path, command: str
) -> None:
    db = _filled(make_db)
    with db.open("r+b") as f:
        f.seek(PAGE * 5)
        f.write(random.Random(5).randbytes(PAGE))
    before = file_digest(db)
    args = ["--run-dir", str(tmp_path / "run")] if command == "export" else []
    line = known_error(cli(command, str(db), *args, cwd=tmp_path))
    assert "corrupt" in line and str(db) in line
    assert file_digest(db) == before


@pytest.mark.parametrize("flag", ["--keep-artifacts", "--no-keep-artifacts"])
def test_a_database_without_tables_migrates_to_nothing(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, flag: str
) -> None:
    db = make_db("PRAGMA user_version = 3;")
    before = pg_state(pg)
    result = cli("migrate", str(db), *target_args(pg, tmp_path / "run"), flag, cwd=tmp_path)
    succeeded(result)
    assert "0 rows loaded into 0 tables" in result.stdout
    assert pg_state(pg) == before


def test_a_path_with_spaces_and_uri_characters_migrates(
    tmp_path: Path, pg: PgSchema, rows_lost: RowsLost
) -> None:
    # lite2pg opens the source as a file: URI; ?, # and % must not end or escape the path.
    d = tmp_path / "dír x"
    d.mkdir()
    db = d / "we ird?#%41&mode=rw.db"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(10)])
        conn.commit()
    before = file_digest(db)
    succeeded(cli("migrate", str(db), *target_args(pg, tmp_path / "run"), cwd=tmp_path))
    rows_lost(10 - pg_count(pg, "t"))
    assert pg_count(pg, "t") == 10
    assert file_digest(db) == before
