"""SOURCE pasted from an app's config: SQLite URLs name their file, or fail in one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lite2pg.errors import SourceError
from lite2pg.source_uri import sqlite_path

from ._cli import cli, known_error
from .conftest import MakeDb


@pytest.mark.parametrize(
    ("given", "path"),
    [
        ("app.db", "app.db"),
        ("sqlite:///app.db", "app.db"),
        ("sqlite:///data/app.db?timeout=5", "data/app.db"),
        ("sqlite:////srv/app.db", "/srv/app.db"),
        ("sqlite+pysqlite:///app.db", "app.db"),
        ("sqlite:app.db", "app.db"),
        ("file:./dev.db", "dev.db"),
        ("file:dev.db?mode=ro&cache=shared", "dev.db"),
        ("file:///srv/my%20app.db", "/srv/my app.db"),
        ("file://localhost/srv/app.db", "/srv/app.db"),
    ],
)
def test_a_sqlite_url_names_its_file(given: str, path: str) -> None:
    assert sqlite_path(given) == Path(path)


@pytest.mark.parametrize(
    "given", ["sqlite://", "sqlite:///:memory:", "file::memory:", "file://db.example/app.db"]
)
def test_a_sqlite_url_that_names_no_local_file_is_refused(given: str) -> None:
    with pytest.raises(SourceError, match="hint: "):
        sqlite_path(given)


def test_a_file_named_like_a_url_is_that_file(tmp_path: Path) -> None:
    odd = tmp_path / "file:x.db"
    odd.write_bytes(b"")
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        assert sqlite_path("file:x.db") == Path("file:x.db")
    finally:
        os.chdir(cwd)


def test_check_reads_the_database_a_sqlalchemy_url_names(make_db: MakeDb, tmp_path: Path) -> None:
    make_db(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);",
        ("INSERT INTO notes (body) VALUES (?)", [("one",), ("two",)]),
        name="app.db",
    )

    result = cli("check", "sqlite:///app.db", "--json", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert (found["source"], found["rows_read"]) == ("app.db", 2)


def test_migrate_of_an_in_memory_url_is_one_line_error(tmp_path: Path) -> None:
    line = known_error(cli("migrate", "sqlite://", cwd=tmp_path))
    assert "in-memory" in line
    assert not list(tmp_path.iterdir())
