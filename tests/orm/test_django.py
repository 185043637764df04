"""A Django app's SQLite database, migrated by lite2pg, runs the same app on PostgreSQL.

The database is built by Django's own `migrate` and filled through the ORM (models in
tests/orm/djangoapp/shop). After lite2pg moved it (create mode, or data-only into the
schema Django's `migrate` made on PostgreSQL), Django runs against PostgreSQL: nothing is
left to migrate, the app's queries return what they returned on SQLite, logins work, new
rows get fresh ids, and the app's next release, which drops two constraints by name,
applies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("django", reason="Django is not installed (pip install -e '.[test]')")

from .._cli import cli
from ..conftest import PgSchema
from ._django import pg_settings, run_django, sqlite_settings

pytestmark = pytest.mark.orm

NAMED_CONSTRAINTS = {"shop_product_price_not_negative", "shop_product_once"}

# What each Django field needs on PostgreSQL for its lookups to work (what Django's own
# `migrate` creates there).
NATIVE_TYPES = {
    "sku": "uuid",
    "price": "numeric",
    "attributes": "jsonb",
    "warranty": "interval",
    "in_stock": "boolean",
    "added_at": "timestamp with time zone",
    "server_ip": "inet",
}


@pytest.fixture(scope="module")
def django_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The app's SQLite database (built once per module) and what its queries return."""
    work = tmp_path_factory.mktemp("django-sqlite")
    db = work / "app.sqlite3"
    found = run_django(sqlite_settings(db), "migrate", "fill", "snapshot", work=work)
    return db, found["snapshot"]


def _column_types(pg: PgSchema, table: str) -> dict[str, str]:
    rows = pg.query(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = %s",
        (table,),
    )
    return {str(name): str(kind) for name, kind in rows}


def _constraint_names(pg: PgSchema, table: str) -> set[str]:
    rows = pg.query(
        "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass",
        (f'"{pg.schema}"."{table}"',),
    )
    return {str(name) for (name,) in rows}


def _lite2pg(db: Path, pg: PgSchema, work: Path, *options: str) -> str:
    result = cli(
        "migrate", str(db), "--target", pg.dsn, "--schema", pg.schema,
        "--run-dir", str(work / "run"), *options, cwd=work, env={"COLUMNS": "400"},
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def _assert_django_runs(pg: PgSchema, on_sqlite: dict[str, Any], work: Path) -> None:
    db = pg_settings(pg)
    found = run_django(db, "migrate-check", "snapshot", "prove", work=work)

    assert found["migrate-check"]["clean"], found["migrate-check"]["output"]
    on_pg = found["snapshot"]
    for key, value in on_sqlite.items():
        assert on_pg[key] == value, f"{key}: SQLite gave {value!r}, PostgreSQL {on_pg[key]!r}"

    proof = found["prove"]
    users = {name: pk for pk, name, *_ in on_sqlite["users"]}
    assert proof["logins"] == {"alice": users["alice"], "bob": users["bob"]}
    assert proof["wrong_password"] is None
    assert proof["passwordless"] is None
    assert proof["new_user_login"] == proof["new_ids"]["user"]
    for kind, old in proof["old_max_ids"].items():
        assert proof["new_ids"][kind] > old, (kind, proof)

    # The app's release 2 drops both named constraints by name.
    assert _constraint_names(pg, "shop_product") >= NAMED_CONSTRAINTS
    release2 = run_django(db, "migrate", "migrate-check", release=2, work=work)
    assert "Applying shop.0002_drop_named_constraints... OK" in release2["migrate"]["output"]
    assert release2["migrate-check"]["clean"], release2["migrate-check"]["output"]
    assert not _constraint_names(pg, "shop_product") & NAMED_CONSTRAINTS


def test_django_runs_on_a_database_lite2pg_created(
    django_db: tuple[Path, dict[str, Any]], pg: PgSchema, tmp_path: Path
) -> None:
    db, on_sqlite = django_db
    # SQLite's DDL cannot tell a DurationField (bigint microseconds) from a
    # BigIntegerField, nor say a DecimalField's digits (Django declares a bare `decimal`).
    # A team does what `check` tells it, with what it knows of its models.
    found = cli("check", str(db), cwd=tmp_path, env={"COLUMNS": "400"})
    assert "--cast shop_product.warranty=interval" in found.stdout, found.stdout
    casts = ["--cast", "shop_product.warranty=interval"]
    assert "--cast shop_product.price=numeric(MAX_DIGITS,DECIMAL_PLACES)" in found.stdout
    casts += ["--cast", "shop_product.price=numeric(10,2)"]  # the model's digits

    _lite2pg(db, pg, tmp_path, *casts)

    assert {k: v for k, v in _column_types(pg, "shop_product").items() if k in NATIVE_TYPES} == (
        NATIVE_TYPES
    )
    _assert_django_runs(pg, on_sqlite, tmp_path)


def test_django_runs_after_a_data_only_load_into_the_schema_its_migrate_made(
    django_db: tuple[Path, dict[str, Any]], pg: PgSchema, tmp_path: Path
) -> None:
    db, on_sqlite = django_db
    run_django(pg_settings(pg), "migrate", work=tmp_path)

    output = _lite2pg(db, pg, tmp_path, "--data-only")

    # Django's own migration rows on PostgreSQL win, and the run says so.
    said = [line for line in output.splitlines() if "django_migrations" in line]
    assert any("win" in line or "kept" in line for line in said), output
    _assert_django_runs(pg, on_sqlite, tmp_path)
