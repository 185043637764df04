"""Loading in parallel: tables side by side, a big table in parts, one atomic publish."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lite2pg import staging
from lite2pg.plan import parse_plan
from lite2pg.run import MigrateOptions, migrate

from .conftest import MakeDb, PgSchema


def test_a_table_loaded_in_parts_by_several_workers_arrives_whole(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Make a small database take the path a multi-million-row one takes.
    monkeypatch.setattr(staging, "PARALLEL_MIN_ROWS", 1)
    monkeypatch.setattr(staging, "SPLIT_MIN_ROWS", 100)
    rows = [(i, i % 7, "ok" if i % 500 else "bad") for i in range(1, 3001)]
    db = make_db(
        "CREATE TABLE big (id INTEGER PRIMARY KEY, k INTEGER, v TEXT);"
        "CREATE TABLE small (id INTEGER PRIMARY KEY, big_id INTEGER REFERENCES big(id));"
        "CREATE INDEX big_k ON big (k);",
        ("INSERT INTO big VALUES (?, ?, ?)", rows),
        ("INSERT INTO small VALUES (?, ?)", [(1, 11), (2, 20)]),
    )
    plan = parse_plan('[tables.big]\nwhere = "k <> 3"\n', origin="test")

    report = migrate(
        db, pg.target, MigrateOptions(schema=pg.schema, run_dir=tmp_path / "run", plan=plan)
    )

    big = next(t for t in report.tables if t.source == "big")
    expected_filtered = sum(1 for r in rows if r[1] == 3)
    assert big.read == 3000
    assert big.filtered == expected_filtered
    assert big.loaded == 3000 - expected_filtered
    assert pg.query("SELECT count(*), count(DISTINCT id) FROM big") == [(big.loaded, big.loaded)]
    assert pg.query(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'big'"
    ) == [(2,)]
    assert pg.query("INSERT INTO big (k, v) VALUES (1, 'x') RETURNING id") == [(3001,)]
    assert report.exit_code() == 0, report.as_dict()


def test_rejects_of_a_table_loaded_in_parts_end_up_in_one_file(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(staging, "PARALLEL_MIN_ROWS", 1)
    monkeypatch.setattr(staging, "SPLIT_MIN_ROWS", 100)
    rows = [(i, i if i % 500 else "many") for i in range(1, 3001)]
    db = make_db(
        "CREATE TABLE big (id INTEGER PRIMARY KEY, n INTEGER);",
        ("INSERT INTO big VALUES (?, ?)", rows),
    )

    report = migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=tmp_path / "run"))

    rejects = tmp_path / "run" / "rejects"
    assert sorted(p.name for p in rejects.iterdir()) == ["big.jsonl"]
    ids = {
        json.loads(line)["key"]["id"] for line in (rejects / "big.jsonl").read_text().splitlines()
    }
    assert ids == {500, 1000, 1500, 2000, 2500, 3000}
    assert report.rows_rejected == 6 and report.rows_loaded == 2994


@pytest.mark.parametrize("workers", [True, False])
def test_a_key_name_the_target_schema_holds_already_gets_a_unique_name_and_a_note(
    make_db: MakeDb,
    pg: PgSchema,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    workers: bool,
) -> None:
    if workers:  # the worker processes must pick the same names as the run
        monkeypatch.setattr(staging, "PARALLEL_MIN_ROWS", 1)
    db = make_db(
        "CREATE TABLE film (id INTEGER CONSTRAINT pk_film PRIMARY KEY, t TEXT);"
        "CREATE INDEX idx_film_t ON film (t);"
        "INSERT INTO film VALUES (1, 'a'), (2, 'b');"
    )
    pg.execute("CREATE TABLE app_table (id integer CONSTRAINT pk_film PRIMARY KEY)")

    report = migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=tmp_path / "run"))

    assert report.exit_code() == 0, report.as_dict()
    (renamed,) = pg.query(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'film'::regclass AND contype = 'p'"
    )[0]
    assert renamed.startswith("pk_film_")
    assert any("'pk_film'" in n and repr(renamed) in n for n in report.notes), report.notes

    # Replacing the run's own tables: their key and index names are free again.
    pg.execute("DROP TABLE app_table")
    again = migrate(
        db, pg.target, MigrateOptions(schema=pg.schema, run_dir=tmp_path / "again", drop=True)
    )
    assert again.exit_code() == 0, again.as_dict()
    assert pg.query(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'film' AND schemaname = %s ORDER BY 1",
        (pg.schema,),
    ) == [("idx_film_t",), ("pk_film",)]
