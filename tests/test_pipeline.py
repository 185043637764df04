"""One pipeline, several sinks: the COPY data a migrate sends is kept as the transformed
artifact, the export CSVs are written beside the load, and both are pinned by the manifest."""

from __future__ import annotations

import json
import sqlite3
import stat
import time
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from lite2pg import staging
from lite2pg.artifacts import ArtifactChanged, read_manifest, read_table_csv, verify_file
from lite2pg.lifecycle import rollback
from lite2pg.plan import parse_plan
from lite2pg.run import MigrateOptions, migrate
from lite2pg.stages import copy_text_fields, load
from lite2pg.verify import verify

from .conftest import MakeDb, PgSchema

ROWS = [
    (i, i % 7 if i % 500 else "many", f"name {i}\twith\\tab\nline" if i % 3 else None, i / 8)
    for i in range(1, 3001)
]


def _big_db(make_db: MakeDb) -> Path:
    return make_db(
        "CREATE TABLE big (id INTEGER PRIMARY KEY, k INTEGER, v TEXT, r REAL);"
        "CREATE TABLE small (id INTEGER PRIMARY KEY, note BLOB);",
        ("INSERT INTO big VALUES (?, ?, ?, ?)", ROWS),
        ("INSERT INTO small VALUES (?, ?)", [(1, b"\x00\xff\\"), (2, None)]),
    )


def _reloaded_equals_table(pg: PgSchema, table: str, kept: Path) -> None:
    """PostgreSQL itself says the kept file holds exactly the table's rows: COPY it into an
    empty table of the same shape and compare both ways, duplicates counted."""
    copy = f"{table}_kept"
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(pg.schema)))
        conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE {})").format(sql.Identifier(copy), sql.Identifier(table))
        )
        with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(copy))) as cp:
            cp.write(kept.read_bytes())
        for a, b in ((table, copy), (copy, table)):
            extra = conn.execute(
                sql.SQL("SELECT count(*) FROM (TABLE {} EXCEPT ALL TABLE {}) d").format(
                    sql.Identifier(a), sql.Identifier(b)
                )
            ).fetchone()
            assert extra == (0,), f"{a} holds rows {b} does not"


@pytest.mark.parametrize("in_parts", [False, True])
def test_the_kept_copy_data_is_exactly_what_each_table_holds(
    make_db: MakeDb,
    pg: PgSchema,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    in_parts: bool,
) -> None:
    if in_parts:  # a small database takes the path a multi-million-row one takes
        monkeypatch.setattr(staging, "PARALLEL_MIN_ROWS", 1)
        monkeypatch.setattr(staging, "SPLIT_MIN_ROWS", 100)
    db = _big_db(make_db)
    plan = parse_plan('[tables.big]\nwhere = "k <> 3"\n', origin="test")
    run_dir = tmp_path / "run"

    report = migrate(
        db,
        pg.target,
        MigrateOptions(schema=pg.schema, run_dir=run_dir, plan=plan, keep_artifacts=True),
    )

    assert report.rows_rejected == 6 and report.verify is not None and report.verify["ok"]
    transformed = run_dir / "transformed"
    assert sorted(p.name for p in transformed.iterdir()) == ["big.copy", "small.copy"]
    for table in ("big", "small"):
        kept = transformed / f"{table}.copy"
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        verify_file(run_dir, f"transformed/{table}.copy")
        _reloaded_equals_table(pg, table, kept)
    manifest = read_manifest(run_dir)
    big = next(t for t in report.tables if t.source == "big")
    assert manifest.files["transformed/big.copy"].rows == big.loaded


def test_a_careful_replay_keeps_only_the_rows_postgresql_took(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    pg.execute("CREATE TABLE t (id integer PRIMARY KEY, n integer CHECK (n % 10 <> 0))")
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER);",
        ("INSERT INTO t VALUES (?, ?)", [(i, i) for i in range(1, 101)]),
    )
    run_dir = tmp_path / "run"

    report = migrate(
        db,
        pg.target,
        MigrateOptions(schema=pg.schema, data_only=True, run_dir=run_dir, keep_artifacts=True),
    )

    assert report.rows_loaded == 90 and report.rows_rejected == 10
    kept = run_dir / "transformed" / "t.copy"
    lines = kept.read_text().splitlines()
    assert sorted(int(line.split("\t")[0]) for line in lines) == [
        i for i in range(1, 101) if i % 10
    ]
    _reloaded_equals_table(pg, "t", kept)


def test_the_export_csvs_written_beside_the_load_hold_the_snapshot_rows(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = _big_db(make_db)
    run_dir = tmp_path / "run"

    migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir, keep_artifacts=True))

    with closing(sqlite3.connect(db)) as conn:
        for table in ("big", "small"):
            expected = conn.execute(f"SELECT * FROM {table}").fetchall()
            path = run_dir / "export" / f"{table}.csv"
            got = [row for batch in read_table_csv(path) for row in batch]
            assert got == expected
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            verify_file(run_dir, f"export/{table}.csv")
    (run_dir / "export" / "small.csv").write_text("id,note\r\n1,\r\n")
    with pytest.raises(ArtifactChanged):
        verify_file(run_dir, "export/small.csv")
    assert not list((run_dir / "export").glob(".*.tmp"))


def test_a_migrate_run_loads_again_from_its_kept_copy_data_and_verifies(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = _big_db(make_db)
    run_dir = tmp_path / "run"
    migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir, keep_artifacts=True))
    before = pg.query("SELECT id, k, v, r FROM big ORDER BY id")
    rollback(run_dir, pg.target, drop=True)
    assert pg.query(
        "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'big'"
    ) == [(0,)]

    report = load(run_dir, pg.target)

    assert report.verify is not None and report.verify["ok"], report.verify
    assert pg.query("SELECT id, k, v, r FROM big ORDER BY id") == before


@pytest.mark.parametrize(
    ("line", "values"),
    [
        ("1\t\\N\tx", ("1", None, "x")),
        ("a\\tb\\nc\\\\d\t\\\\N", ("a\tb\nc\\d", "\\N")),
        ("\\x41\\101\\r", ("AA\r",)),
        ("", ("",)),
    ],
)
def test_copy_text_lines_read_back_as_their_values(line: str, values: tuple[str | None]) -> None:
    assert copy_text_fields(line) == values


def test_the_stage_times_add_up_to_the_wall_time(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = _big_db(make_db)
    started = time.perf_counter()
    report = migrate(
        db,
        pg.target,
        MigrateOptions(schema=pg.schema, run_dir=tmp_path / "run", keep_artifacts=True),
    )
    elapsed = time.perf_counter() - started

    names = [s["name"] for s in report.stages]
    assert names == [
        "snapshot", "prepare", "load", "foreign keys", "publish", "report", "verify", "export"
    ]  # fmt: skip
    total = sum(s["seconds"] for s in report.stages)
    assert abs(total - report.seconds) < 0.001 * len(names)
    assert report.seconds <= elapsed
    on_disk = json.loads((tmp_path / "run" / "report.json").read_text())
    assert on_disk["stages"] == report.stages and on_disk["seconds"] == round(report.seconds, 3)


def test_a_run_again_into_the_same_directory_replaces_the_earlier_artifacts(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = _big_db(make_db)
    run_dir = tmp_path / "run"
    (run_dir / "transformed").mkdir(parents=True)
    # What a killed attempt leaves: a temp file, a part, a file of a table since dropped.
    for junk in (".big.copy.123.abcd.tmp", "big.part0.copy", "gone.copy"):
        (run_dir / "transformed" / junk).write_text("junk")

    migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir, keep_artifacts=True))

    assert sorted(p.name for p in (run_dir / "transformed").iterdir()) == [
        "big.copy",
        "small.copy",
    ]
    assert sorted(read_manifest(run_dir).files) == [
        "export/big.csv",
        "export/small.csv",
        "source.snapshot.db",
        "transformed/big.copy",
        "transformed/small.copy",
    ]


def test_report_html_shows_the_stage_times(make_db: MakeDb, pg: PgSchema, tmp_path: Path) -> None:
    report = migrate(
        _big_db(make_db), pg.target, MigrateOptions(schema=pg.schema, run_dir=tmp_path / "run")
    )
    page = (tmp_path / "run" / "report.html").read_text()
    assert "wall time by stage" in page
    for stage in report.stages:
        assert f"stage: {stage['name']}" in page


def test_verify_reports_each_tables_rows_as_its_key_ranges_finish(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = _big_db(make_db)
    run_dir = tmp_path / "run"
    migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir, verify=False))
    heard: dict[str, list[tuple[int, int]]] = {}

    verify(
        run_dir,
        pg.target,
        progress=lambda t, done, total: heard.setdefault(t, []).append((done, total)),
    )

    with closing(sqlite3.connect(db)) as conn:
        for table in ("big", "small"):
            rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            assert heard[table][-1] == (rows, rows)
            assert [d for d, _ in heard[table]] == sorted(d for d, _ in heard[table])
