"""`check` predicts a real run: the same rejects, written nowhere."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from lite2pg.check import check
from lite2pg.demo import make_legacy_helpdesk
from lite2pg.plan import load_plan
from lite2pg.run import MigrateOptions, migrate, prepare_schema

from .conftest import MakeDb, PgSchema


def _reject_keys(run_dir: Path) -> set[tuple[str, str]]:
    keys: set[tuple[str, str]] = set()
    for path in (run_dir / "rejects").glob("*.jsonl"):
        for line in path.read_text().split("\n"):
            if line:
                r = json.loads(line)
                keys.add((r["table"], json.dumps(r["key"], sort_keys=True)))
    return keys


def test_check_predicts_exactly_the_rows_a_real_run_rejects(tmp_path: Path, pg: PgSchema) -> None:
    db = tmp_path / "dev.db"
    make_legacy_helpdesk(db, users=40, tickets=300, audit_logs=900, seed=5)
    plan = load_plan("helpdesk")

    found = check(db, plan)
    predicted = {
        (g.table, json.dumps(k, sort_keys=True)) for g in found.rejects for k in g.examples
    }
    everything = check(db, plan, examples=100_000)

    prepare_schema(pg.target, pg.schema, plan)
    run_dir = tmp_path / "run"
    report = migrate(
        db, pg.target, MigrateOptions(schema=pg.schema, plan=plan, data_only=True, run_dir=run_dir)
    )

    assert not found.ok
    assert found.rows_rejected == report.rows_rejected > 0
    assert found.rows_read == report.rows_read
    actual = _reject_keys(run_dir)
    assert predicted <= actual
    assert {
        (g.table, json.dumps(k, sort_keys=True)) for g in everything.rejects for k in g.examples
    } == actual


def test_check_lists_unknown_mapped_values_first_and_counts_orphans(tmp_path: Path) -> None:
    db = tmp_path / "dev.db"
    # ~0.5% of legacy statuses are junk: 2,000 tickets hold a handful.
    make_legacy_helpdesk(db, users=40, tickets=2_000, audit_logs=900, seed=5)

    found = check(db, load_plan("helpdesk"))

    statuses = found.maps["tickets.status"]
    unknown = [v for v in statuses if v.unknown]
    assert unknown and statuses[: len(unknown)] == unknown
    assert all(v.result in {"open", "in_progress", "pending", "resolved", "closed"}
               for v in statuses if not v.unknown)  # fmt: skip
    assert {(o["table"], o["policy"]) for o in found.orphans} >= {("audit_logs", "null")}


def test_check_without_a_plan_reports_type_disagreements_and_exits_nonzero(
    make_db: MakeDb,
) -> None:
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, qty INTEGER, at DATETIME);"
        "INSERT INTO t VALUES (1, 5, '2020-01-01 00:00:00'), (2, 'lots', 1700000000);"
    )
    result = subprocess.run(
        [sys.executable, "-m", "lite2pg", "check", str(db), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert data["rows_rejected"] == 1
    found = {(d["column"], tuple(d["found"])) for d in data["type_disagreements"]}
    assert found == {("qty", ("text",)), ("at", ("integer",))}


def test_check_of_a_clean_database_exits_zero(make_db: MakeDb) -> None:
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO t VALUES (1, 'a');"
    )
    result = subprocess.run(
        [sys.executable, "-m", "lite2pg", "check", str(db)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: all 1 rows would migrate" in result.stdout


def test_check_reads_a_file_that_needs_the_apps_collations_and_lists_behaviour_changes(
    tmp_path: Path,
) -> None:
    db = tmp_path / "app.db"
    app = sqlite3.connect(db)
    app.create_collation(
        "NOCASE_UTF8", lambda a, b: (a.upper() > b.upper()) - (a.upper() < b.upper())
    )
    app.executescript(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT COLLATE NOCASE_UTF8,"
        "  at TEXT DEFAULT (datetime('now', 'localtime')));"
        "CREATE UNIQUE INDEX notes_title ON notes (title);"
        "INSERT INTO notes (id, title) VALUES (1, 'b'), (2, 'A');"
    )
    app.commit()
    app.close()

    report = check(db)

    assert report.ok and report.rows_read == 2
    assert report.behaviour_changes == [
        "column notes.title uses collation NOCASE_UTF8, which the app registers; read with a "
        "fallback (case-insensitive, by casefold); PostgreSQL uses its default collation",
        "notes: column 'at': default datetime('now', 'localtime') dropped: 'localtime' is the "
        "local time of the app's host, which PostgreSQL does not know; not translated",
    ]
    assert report.as_dict()["behaviour_changes"] == report.behaviour_changes
