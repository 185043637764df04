"""--exclude-table GLOB: the tables it matches stay behind, in every stage of a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from lite2pg.check import check
from lite2pg.errors import UsageError
from lite2pg.plan import parse_plan
from lite2pg.run import MigrateOptions, migrate
from lite2pg.verify import verify

from ._cli import cli
from .conftest import MakeDb, PgSchema


def _app_db(make_db: MakeDb) -> Path:
    return make_db(
        "CREATE TABLE teams (id INTEGER PRIMARY KEY, name TEXT);"
        "CREATE TABLE users (id INTEGER PRIMARY KEY,"
        " team_id INTEGER REFERENCES teams(id), name TEXT);"
        "CREATE TABLE Django_Session (k TEXT PRIMARY KEY, v TEXT);"
        "CREATE TABLE django_admin_log (id INTEGER PRIMARY KEY, what TEXT);"
        "INSERT INTO teams VALUES (1, 'a'), (2, 'b');"
        "INSERT INTO users VALUES (1, 1, 'x'), (2, 2, 'y'), (3, NULL, 'z');"
        "INSERT INTO Django_Session VALUES ('s', 'v');"
        "INSERT INTO django_admin_log VALUES (1, 'w');",
    )


def _tables(pg: PgSchema) -> list[str]:
    return [
        r[0]
        for r in pg.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1",
            (pg.schema,),
        )
    ]


def test_excluded_tables_match_globs_case_insensitively_and_stay_behind(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    report = migrate(
        _app_db(make_db),
        pg.target,
        MigrateOptions(schema=pg.schema, run_dir=run_dir, exclude=("DJANGO_*",), profile="none"),
    )

    assert _tables(pg) == ["teams", "users"]
    assert {(m["name"], m["reason"]) for m in report.not_migrated} == {
        ("Django_Session", "excluded by --exclude-table"),
        ("django_admin_log", "excluded by --exclude-table"),
    }
    assert report.exit_code() == 0
    # verify reads the run's files alone and sees the same two tables
    assert verify(run_dir, pg.target).ok


def test_rows_referencing_an_excluded_table_follow_the_plans_orphan_policy(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    plan = parse_plan('[tables.users.foreign_keys.team_id]\non_orphan = "null"\n')
    report = migrate(
        _app_db(make_db),
        pg.target,
        MigrateOptions(
            schema=pg.schema, run_dir=tmp_path / "run", exclude=("teams", "django_*"), plan=plan
        ),
    )

    assert _tables(pg) == ["users"]
    assert pg.query("SELECT id, team_id FROM users ORDER BY id") == [
        (1, None),
        (2, None),
        (3, None),
    ]
    (users,) = report.tables
    assert (users.loaded, users.rejected) == (3, 0)
    assert verify(tmp_path / "run", pg.target).ok


def test_rows_referencing_an_excluded_table_are_rejected_by_default_under_a_plan(
    make_db: MakeDb,
) -> None:
    plan = parse_plan("[tables.users]\n")

    found = check(_app_db(make_db), plan, exclude=["teams"], profile="none")

    assert found.rows_rejected == 2  # users 1 and 2; user 3 has no team
    assert [(o["table"], o["rows"], o["policy"]) for o in found.orphans] == [("users", 2, "reject")]


def test_an_exclude_glob_that_matches_no_table_is_refused(make_db: MakeDb) -> None:
    with pytest.raises(
        UsageError, match=r"'sesions' matches no table .*tables: django_admin_log, Django_Session"
    ):
        check(_app_db(make_db), exclude=["sesions"])


def test_check_and_export_take_exclude_table(make_db: MakeDb, tmp_path: Path) -> None:
    db = _app_db(make_db)

    checked = cli("check", str(db), "--exclude-table", "django_*", "--json", cwd=tmp_path)
    exported = cli("export", str(db), "--exclude-table", "django_*", "--run-dir", "r", cwd=tmp_path)

    assert checked.returncode == 0, checked.stderr
    assert exported.returncode == 0, exported.stderr
    assert sorted(p.name for p in (tmp_path / "r" / "export").iterdir()) == [
        "teams.csv",
        "users.csv",
    ]
