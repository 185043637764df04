"""The psql command lite2pg prints for the embedded server opens the schema the run loaded:
`\\dt` lists its tables, whatever the schema is called."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from lite2pg.embedded import uri_in_schema
from lite2pg.target import Target

from .conftest import PgSchema


@pytest.fixture(params=["helpdesk", "Help Desk", 'odd\\"name'])
def odd_schema(request: pytest.FixtureRequest, pg: PgSchema) -> Iterator[str]:
    name = f"{request.param}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE TABLE {}.tickets (id int)").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def test_the_uri_puts_the_schema_first_on_the_search_path(pg: PgSchema, odd_schema: str) -> None:
    with psycopg.connect(uri_in_schema(pg.dsn, odd_schema)) as conn:
        assert conn.execute("SELECT current_schema()").fetchone() == (odd_schema,)


def test_the_printed_psql_command_lists_the_runs_tables(pg: PgSchema, odd_schema: str) -> None:
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("no psql on PATH")
    target = Target(pg.dsn, "embedded", f'{psql} "{pg.dsn}"')

    command = target.psql_command_in(odd_schema)

    assert command is not None
    listed = subprocess.run(
        [*shlex.split(command), "-Atc", r"\dt"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert f"{odd_schema}|tickets|table|" in listed.stdout


def test_the_public_schema_needs_no_option() -> None:
    uri = "postgresql://postgres:@/postgres?host=/tmp/x"
    assert uri_in_schema(uri, "public") == uri
    assert uri_in_schema(uri, "app").startswith(uri + "&options=")
