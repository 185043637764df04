"""Commands over a run directory use the target the run recorded (never its password) unless
--target names another, and a server that refuses verify's queries is one line, not a
traceback."""

from __future__ import annotations

from pathlib import Path

import psycopg.conninfo

from ._cli import cli, known_error
from .conftest import MakeDb, PgSchema

PASSWORD = "s3cret-Horse-42"  # trust auth on the test server takes any password


def _migrate(source: Path, dsn: str, pg: PgSchema, run_dir: Path) -> str:
    done = cli(
        "migrate", str(source), "--target", dsn, "--schema", pg.schema, "--run-dir", str(run_dir),
        cwd=run_dir.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout + done.stderr


def _source(make_db: MakeDb) -> Path:
    return make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, at DATETIME);",
        ("INSERT INTO t VALUES (?, ?, ?)", [(i, i * 7, "2021-01-01 10:00:00") for i in range(50)]),
    )


def _everything_written(run_dir: Path) -> str:
    return "".join(
        p.read_bytes().decode("utf-8", "replace") for p in run_dir.rglob("*") if p.is_file()
    )


def test_verify_without_target_uses_the_runs_target_and_never_writes_its_password(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    dsn = psycopg.conninfo.make_conninfo(pg.dsn, password=PASSWORD)
    run_dir = tmp_path / "run"
    said = _migrate(_source(make_db), dsn, pg, run_dir)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    checked = cli("verify", str(run_dir), cwd=elsewhere)

    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("VERIFIED"), checked.stdout
    assert list(elsewhere.iterdir()) == []  # no embedded server started here
    for text in (said, checked.stdout, checked.stderr, _everything_written(run_dir)):
        assert PASSWORD not in text


def test_rollback_without_target_empties_the_tables_in_the_runs_target(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    _migrate(_source(make_db), pg.dsn, pg, run_dir)
    assert pg.query("SELECT count(*) FROM t") == [(50,)]

    undone = cli("rollback", str(run_dir), cwd=tmp_path)

    assert undone.returncode == 0, undone.stderr
    assert pg.query("SELECT count(*) FROM t") == [(0,)]
    assert not (tmp_path / ".lite2pg").exists()


def test_given_target_wins_over_the_recorded_one(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    _migrate(_source(make_db), pg.dsn, pg, run_dir)
    nowhere = "postgresql://nobody@127.0.0.1:1/none"

    refused = cli("verify", str(run_dir), "--target", nowhere, cwd=tmp_path)

    assert "cannot connect to postgresql://nobody@127.0.0.1:1/none" in known_error(refused)


def test_verify_after_a_column_type_change_fails_naming_it_not_a_traceback(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    _migrate(_source(make_db), pg.dsn, pg, run_dir)
    pg.execute("ALTER TABLE t ALTER COLUMN at TYPE text")

    checked = cli("verify", str(run_dir), cwd=tmp_path)

    # The catalog check names the change first; the rows of that table are not cast.
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "Traceback" not in checked.stdout + checked.stderr
    assert "t: column at type: expected " in checked.stdout and "found text" in checked.stdout


def test_rollback_of_a_table_dropped_since_the_run_is_one_line_not_a_traceback(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    _migrate(_source(make_db), pg.dsn, pg, run_dir)
    pg.execute("DROP TABLE t")

    undone = cli("rollback", str(run_dir), cwd=tmp_path)

    line = known_error(undone)
    assert "while running lite2pg rollback (UndefinedTable: " in line, line


def test_rollback_drop_on_the_command_line_drops_the_tables_instead_of_emptying_them(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    _migrate(_source(make_db), pg.dsn, pg, run_dir)

    undone = cli("rollback", str(run_dir), "--drop", cwd=tmp_path)

    assert undone.returncode == 0, undone.stderr
    # PostgreSQL's catalog, not lite2pg's report: the table is gone, not empty.
    assert (
        pg.query(
            "SELECT relname FROM pg_class WHERE relnamespace = %s::regnamespace AND relname = 't'",
            (pg.schema,),
        )
        == []
    )
