"""A SQLAlchemy + Alembic app's SQLite database, migrated by lite2pg, runs on PostgreSQL.

Alembic builds the schema on SQLite, the ORM fills it (Uuid, JSON, Interval, Enum,
Numeric(10,2), DateTime); lite2pg moves it in create mode, or data-only into the schema
`alembic upgrade head` made on PostgreSQL. Then the app's queries return on PostgreSQL
what they returned on SQLite, Alembic sees its head, and a new row gets a fresh id.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sqlalchemy", reason="SQLAlchemy is not installed (pip install -e '.[test]')")
pytest.importorskip("alembic", reason="Alembic is not installed (pip install -e '.[test]')")

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from .._cli import cli
from ..conftest import PgSchema
from ._sa_app import (
    HEAD,
    add_invoice,
    alembic_current,
    alembic_upgrade,
    fill,
    snapshot,
    write_alembic_env,
)

pytestmark = [
    pytest.mark.orm,
    # SQLAlchemy warns that SQLite stores Numeric as a float; that is the app as it is.
    pytest.mark.filterwarnings("ignore:Dialect sqlite\\+pysqlite does \\*not\\* support Decimal"),
]


@pytest.fixture(scope="module")
def alembic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_alembic_env(tmp_path_factory.mktemp("sa-alembic") / "alembic")


@pytest.fixture(scope="module")
def sa_db(
    tmp_path_factory: pytest.TempPathFactory, alembic_dir: Path
) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The app's SQLite database (Alembic's schema, the ORM's rows) and its queries' results."""
    db = tmp_path_factory.mktemp("sa-sqlite") / "app.db"
    engine = create_engine(f"sqlite:///{db}")
    try:
        alembic_upgrade(alembic_dir, engine)
        fill(engine)
        found = snapshot(engine)
        assert alembic_current(alembic_dir, engine) == f"{HEAD} (head)"
    finally:
        engine.dispose()
    yield db, found


@pytest.fixture
def pg_engine(pg: PgSchema) -> Iterator[Engine]:
    url = make_url(pg.dsn).set(drivername="postgresql+psycopg")
    engine = create_engine(url, connect_args={"options": f"-c search_path={pg.schema}"})
    yield engine
    engine.dispose()


def _lite2pg(db: Path, pg: PgSchema, work: Path, *options: str) -> None:
    result = cli(
        "migrate", str(db), "--target", pg.dsn, "--schema", pg.schema,
        "--run-dir", str(work / "run"), *options, cwd=work,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def _assert_app_runs(engine: Engine, alembic_dir: Path, on_sqlite: dict[str, Any]) -> None:
    on_pg = snapshot(engine)
    for key, value in on_sqlite.items():
        assert on_pg[key] == value, f"{key}: SQLite gave {value!r}, PostgreSQL {on_pg[key]!r}"
    assert alembic_current(alembic_dir, engine) == f"{HEAD} (head)"
    old, new = add_invoice(engine)
    assert new > old


def test_sqlalchemy_app_runs_on_a_database_lite2pg_created(
    sa_db: tuple[Path, dict[str, Any]],
    alembic_dir: Path,
    pg: PgSchema,
    pg_engine: Engine,
    tmp_path: Path,
) -> None:
    db, on_sqlite = sa_db

    _lite2pg(db, pg, tmp_path)

    types = dict(
        pg.query(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'invoice'"
        )
    )
    assert types["public_id"] == "uuid"
    assert types["term"] == "interval"
    assert types["details"] in {"json", "jsonb"}
    assert types["amount"] == "numeric"
    _assert_app_runs(pg_engine, alembic_dir, on_sqlite)


def test_sqlalchemy_app_runs_after_a_data_only_load_into_alembics_schema(
    sa_db: tuple[Path, dict[str, Any]],
    alembic_dir: Path,
    pg: PgSchema,
    pg_engine: Engine,
    tmp_path: Path,
) -> None:
    db, on_sqlite = sa_db
    alembic_upgrade(alembic_dir, pg_engine)

    _lite2pg(db, pg, tmp_path, "--data-only")

    _assert_app_runs(pg_engine, alembic_dir, on_sqlite)
