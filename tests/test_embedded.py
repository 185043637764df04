"""The embedded PostgreSQL: started when no target is given, on the major that made its data
directory, upgraded with pg_upgrade on request, and an interrupted upgrade finished."""

from __future__ import annotations

import importlib.metadata
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from lite2pg import embedded
from lite2pg.errors import TargetError

from ._cli import cli, known_error

OLDER = min(embedded.shipped_majors())


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """An embedded data directory of the test's own, stopped afterwards."""
    path = tmp_path / ".lite2pg" / "pg"
    yield path
    for leftover in (path, path.with_name(f"pg.{OLDER}")):
        if leftover.exists():
            embedded.stop(leftover)


def _fill(uri: str) -> None:
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO kept VALUES (1, 'from the old major'), (2, 'é')")


def _read(uri: str) -> tuple[int, list[tuple[int, str]]]:
    with psycopg.connect(uri) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
        rows = conn.execute("SELECT id, v FROM kept ORDER BY id").fetchall()
    assert version is not None
    return int(version[0]) // 10000, rows


def test_migrate_without_any_target_loads_into_an_embedded_server(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(1, "a"), (2, "b")])
    conn.close()
    try:
        result = cli("migrate", str(db), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "embedded PostgreSQL: postgresql://" in result.stderr
        uri = embedded.running_uri(tmp_path / ".lite2pg" / "pg")
        assert uri is not None
        with psycopg.connect(uri) as pg:
            assert pg.execute("SELECT id, name FROM t ORDER BY id").fetchall() == [
                (1, "a"),
                (2, "b"),
            ]
            version = pg.execute("SHOW server_version_num").fetchone()
        assert version is not None and int(version[0]) // 10000 == embedded.default_major()
        status = cli("embedded", "status", cwd=tmp_path)
        assert f"PostgreSQL {embedded.default_major()}" in status.stdout
        assert "running at postgresql://" in status.stdout
    finally:
        stopped = cli("embedded", "stop", cwd=tmp_path)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr
    assert embedded.running_uri(tmp_path / ".lite2pg" / "pg") is None


@pytest.mark.skipif(OLDER == embedded.NEWEST_MAJOR, reason="only one major is shipped")
def test_data_directory_of_an_older_major_runs_on_it_and_says_how_to_upgrade(
    data_dir: Path,
) -> None:
    _fill(embedded.start(data_dir, major=OLDER).uri)
    embedded.stop(data_dir)
    again = embedded.start(data_dir)  # no major asked: the directory's own
    assert again.major == OLDER
    assert _read(again.uri) == (OLDER, [(1, "from the old major"), (2, "é")])
    assert again.note is not None and "lite2pg embedded upgrade" in again.note


@pytest.mark.skipif(OLDER == embedded.NEWEST_MAJOR, reason="only one major is shipped")
def test_upgrade_moves_the_data_to_the_newest_major_and_keeps_the_old_directory(
    data_dir: Path,
) -> None:
    _fill(embedded.start(data_dir, major=OLDER).uri)  # left running: upgrade stops it
    result = cli("embedded", "upgrade", "--dir", str(data_dir), cwd=data_dir.parent)
    assert result.returncode == 0, result.stderr
    assert f"from PostgreSQL {OLDER} to {embedded.NEWEST_MAJOR}" in result.stdout
    backup = data_dir.with_name(f"pg.{OLDER}")
    assert embedded.data_major(backup) == OLDER
    assert not data_dir.with_name("pg.upgrading").exists()
    upgraded = embedded.start(data_dir)
    assert upgraded.note is None
    assert _read(upgraded.uri) == (embedded.NEWEST_MAJOR, [(1, "from the old major"), (2, "é")])
    # The backup still runs on its own major, unchanged.
    embedded.stop(data_dir)
    assert _read(embedded.start(backup).uri)[1] == [(1, "from the old major"), (2, "é")]
    again = cli("embedded", "upgrade", "--dir", str(data_dir), cwd=data_dir.parent)
    assert again.returncode == 0 and "already" in again.stdout


@pytest.mark.skipif(OLDER == embedded.NEWEST_MAJOR, reason="only one major is shipped")
@pytest.mark.parametrize("crashed", ["before the first rename", "between the renames"])
def test_upgrade_killed_after_pg_upgrade_is_finished_by_the_next_start(
    data_dir: Path, crashed: str
) -> None:
    _fill(embedded.start(data_dir, major=OLDER).uri)
    done = embedded.upgrade(data_dir)
    assert done is not None
    # Put the directories back as a kill at that moment leaves them (the marker is written
    # and fsynced before the first rename).
    fresh = data_dir.with_name("pg.upgrading")
    data_dir.rename(fresh)
    (fresh / "LITE2PG_UPGRADED").write_text(f"{OLDER}\n")
    if crashed == "before the first rename":
        done.backup_dir.rename(data_dir)
    server = embedded.start(data_dir)
    assert _read(server.uri) == (embedded.NEWEST_MAJOR, [(1, "from the old major"), (2, "é")])
    assert embedded.data_major(done.backup_dir) == OLDER
    assert not fresh.exists() and not (data_dir / "LITE2PG_UPGRADED").exists()


@pytest.mark.parametrize(
    ("name", "content", "said"),
    [
        # A cluster of a major the package does not ship: dump it with that major.
        ("PG_VERSION", "12\n", ("made by PostgreSQL 12", "pg_dumpall")),
        # Files that are no cluster at all: initdb's own reason, and where to look.
        ("notes.txt", "not a database\n", ("not empty", "move it aside")),
    ],
)
def test_data_directory_lite2pg_cannot_run_is_refused_in_one_line_and_left_alone(
    tmp_path: Path, name: str, content: str, said: tuple[str, str]
) -> None:
    db = tmp_path / "app.db"
    with closing(sqlite3.connect(db)) as conn:  # a real source: the check of it comes first
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    stray = tmp_path / ".lite2pg" / "pg"
    stray.mkdir(parents=True)
    (stray / name).write_text(content)
    line = known_error(cli("migrate", str(db), cwd=tmp_path))
    assert all(words in line for words in said), line
    assert [f.name for f in stray.iterdir()] == [name]
    assert (stray / name).read_text() == content


def test_unknown_embedded_major_in_the_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(embedded.MAJOR_ENV, "17")
    with pytest.raises(TargetError, match=r"LITE2PG_EMBEDDED_PG='17' names no PostgreSQL"):
        embedded.start(tmp_path / "pg")
    assert not (tmp_path / "pg").exists()


def test_python_m_lite2pg_reports_the_installed_version(tmp_path: Path) -> None:
    result = cli("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert importlib.metadata.version("lite2pg") in result.stdout


def test_server_is_another_name_for_the_embedded_commands(tmp_path: Path) -> None:
    by_name = {name: cli(name, "status", "--dir", str(tmp_path / "pg"), cwd=tmp_path)
               for name in ("embedded", "server")}  # fmt: skip
    assert by_name["server"].returncode == 0, by_name["server"].stderr
    assert by_name["server"].stdout == by_name["embedded"].stdout
    assert "made by         nothing yet" in by_name["server"].stdout
