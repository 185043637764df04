"""Only what lite2pg itself installed in a SQLite source is left out of a migration, and it
is listed; a user's table or trigger that merely starts with `_lite2pg_` is the user's."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from lite2pg import capture, source
from lite2pg.run import MigrateOptions, migrate

from .conftest import MakeDb, PgSchema

USER_DDL = """
CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
CREATE TABLE _lite2pg_settings (id INTEGER PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE audit (at TEXT);
CREATE TRIGGER _lite2pg_audit AFTER INSERT ON t BEGIN INSERT INTO audit VALUES ('x'); END;
INSERT INTO t VALUES (1, 'a'), (2, 'b');
INSERT INTO _lite2pg_settings VALUES (1, 'dark mode'), (2, 'metric');
"""


def _discover(db: Path) -> source.SourceSchema:
    with closing(sqlite3.connect(db)) as conn:
        return source.discover(conn)


def test_a_users_table_named_like_lite2pgs_own_is_migrated_and_verified(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(USER_DDL)
    capture.prepare(db)  # lite2pg's own log table and triggers, beside the user's
    schema = _discover(db)
    assert {t.name for t in schema.tables} == {"t", "_lite2pg_settings", "audit"}
    skipped = {(s.kind, s.name) for s in schema.skipped}
    assert ("trigger", "_lite2pg_audit") in skipped  # listed as every user trigger is
    assert ("lite2pg table", "_lite2pg_changes") in skipped
    assert not any(k == "trigger" and n != "_lite2pg_audit" for k, n in skipped)

    report = migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=tmp_path / "run"))

    assert report.exit_code() == 0, report.as_dict()
    assert report.verify is not None and report.verify["ok"]
    assert pg.query("SELECT id, value FROM _lite2pg_settings ORDER BY id") == [
        (1, "dark mode"),
        (2, "metric"),
    ]
    tables = pg.query("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    assert {r[0] for r in tables} == {"t", "_lite2pg_settings", "audit"}
    listed = {(n["kind"], n["name"]) for n in report.not_migrated}
    assert {("lite2pg table", "_lite2pg_changes"), ("trigger", "_lite2pg_audit")} <= listed


def test_a_users_table_with_lite2pgs_log_name_but_another_shape_is_the_users(
    make_db: MakeDb,
) -> None:
    db = make_db(
        "CREATE TABLE _lite2pg_changes (seq INTEGER PRIMARY KEY, what TEXT);"
        "INSERT INTO _lite2pg_changes VALUES (1, 'mine');"
    )
    schema = _discover(db)
    assert [t.name for t in schema.tables] == ["_lite2pg_changes"]
    assert not schema.skipped


def test_capture_is_installed_on_and_cleanup_leaves_the_users_own_lite2pg_named_objects(
    make_db: MakeDb,
) -> None:
    db = make_db(USER_DDL)
    added = capture.prepare(db)
    assert "_lite2pg_settings" in added.tables  # migrated, so its changes are captured

    cleaned = capture.cleanup(db)

    with closing(sqlite3.connect(db)) as conn:
        left = sorted(conn.execute("SELECT type, name FROM sqlite_master WHERE name LIKE '_l%'"))
    assert left == [("table", "_lite2pg_settings"), ("trigger", "_lite2pg_audit")]
    assert cleaned.triggers == added.triggers and cleaned.table
