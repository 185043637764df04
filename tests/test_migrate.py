"""End-to-end behaviour of `migrate` against a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import stat
import textwrap
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from lite2pg.plan import parse_plan
from lite2pg.run import MigrateOptions, migrate

from .conftest import MakeDb, PgSchema


def _opts(pg: PgSchema, tmp_path: Path, **kw: object) -> MigrateOptions:
    return MigrateOptions(schema=pg.schema, run_dir=tmp_path / "run", **kw)  # type: ignore[arg-type]


def test_ids_are_kept_and_identity_continues_past_the_autoincrement_high_water_mark(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL);"
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), "
        "  body TEXT);"
        "INSERT INTO users (id, name) VALUES (3, 'ann'), (7, 'bob'), (40, 'gone');"
        "DELETE FROM users WHERE id = 40;"
        "INSERT INTO posts VALUES (10, 7, 'hi'), (11, 3, 'yo');"
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path))

    assert report.exit_code() == 0
    assert pg.query(
        "SELECT p.id, u.name FROM posts p JOIN users u ON u.id = p.user_id ORDER BY 1"
    ) == [
        (10, "bob"),
        (11, "ann"),
    ]
    # AUTOINCREMENT never reuses 40, even though that row is gone; plain INTEGER PRIMARY
    # KEY continues after max(id).
    assert pg.query("INSERT INTO users (name) VALUES ('new') RETURNING id") == [(41,)]
    assert pg.query("INSERT INTO posts (body) VALUES ('x') RETURNING id") == [(12,)]


def test_keys_unique_constraints_indexes_and_foreign_keys_are_built(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE a (x TEXT, y INTEGER, z TEXT UNIQUE, PRIMARY KEY (x, y));"
        "CREATE TABLE b (id INTEGER PRIMARY KEY, ax TEXT, ay INTEGER, FOREIGN KEY (ax, ay) "
        "  REFERENCES a (x, y) ON DELETE CASCADE);"
        "CREATE INDEX b_ax ON b (ax DESC);"
        "CREATE UNIQUE INDEX b_ay_u ON b (ay);"
        "CREATE INDEX b_partial ON b (ax) WHERE ay > 1;"
        "INSERT INTO a VALUES ('k', 1, 'one'), ('k', 2, 'two');"
        "INSERT INTO b VALUES (1, 'k', 1), (2, 'k', 2);"
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path))

    assert report.exit_code() == 0, report.as_dict()
    cons = {
        (r[0], r[1])
        for r in pg.query(
            "SELECT conrelid::regclass::text, contype FROM pg_constraint c "
            "JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = current_schema()"
        )
    }
    assert {("a", "p"), ("a", "u"), ("b", "p"), ("b", "f")} <= cons
    indexes = {
        r[0]: r[1]
        for r in pg.query(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        )
    }
    assert "DESC" in indexes["b_ax"]
    assert "UNIQUE" in indexes["b_ay_u"]
    assert "WHERE (ay > 1)" in indexes["b_partial"]
    # ON DELETE CASCADE came along.
    pg.execute("DELETE FROM a WHERE y = 1")
    assert pg.query("SELECT id FROM b") == [(2,)]


def test_reserved_and_mixed_case_names_are_quoted_and_kept(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        'CREATE TABLE "user" (id INTEGER PRIMARY KEY, "passwordHash" TEXT, "order" INTEGER, '
        '"select" TEXT, "with space" TEXT, "quo""te" TEXT);'
        "INSERT INTO \"user\" VALUES (1, 'h', 2, 's', 'w', 'q');"
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path))

    assert report.exit_code() == 0
    assert pg.query(
        'SELECT "passwordHash", "order", "select", "with space", "quo""te" FROM "user"'
    ) == [("h", 2, "s", "w", "q")]


def test_without_rowid_table_and_text_primary_key_migrate(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID;",
        ("INSERT INTO kv VALUES (?, ?)", [("b", b"\x00\x01"), ("a", b"\xff")]),
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path))

    assert report.exit_code() == 0
    assert pg.query("SELECT k, v FROM kv ORDER BY k") == [("a", b"\xff"), ("b", b"\x00\x01")]
    assert pg.query(
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'kv'::regclass AND contype = 'p'"
    ) == [(1,)]


def test_rows_postgresql_cannot_take_go_to_rejects_and_the_rest_loads(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, n INTEGER, at DATETIME);",
        (
            "INSERT INTO t VALUES (?, ?, ?, ?)",
            [
                (1, "fine", 1, "2020-01-02 03:04:05"),
                (2, "nul\x00byte", 2, None),
                (3, "ok", "many", None),
                (4, "ok", 4, "2021-02-30 00:00:00"),
                (5, "ok", 5, "2020-01-02T03:04:05.123456+02:00"),
            ],
        ),
        "INSERT INTO t VALUES (6, CAST(x'66ff6f' AS TEXT), 6, NULL);",
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path))

    assert report.rows_read == 6
    assert report.rows_loaded == 2
    assert report.rows_rejected == 4
    assert report.exit_code() == 1
    assert report.exit_code(allow_rejects=True) == 0
    got = pg.query("SELECT id, to_char(at, 'YYYY-MM-DD HH24:MI:SS.US') FROM t ORDER BY id")
    assert got == [(1, "2020-01-02 03:04:05.000000"), (5, "2020-01-02 01:04:05.123456")]
    path = tmp_path / "run" / "rejects" / "t.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    rejects = {r["key"]["id"]: r for r in map(json.loads, path.read_text().splitlines())}
    assert set(rejects) == {2, 3, 4, 6}
    assert rejects[2]["column"] == "name" and "NUL" in rejects[2]["reason"]
    assert rejects[3]["column"] == "n" and "'many'" in rejects[3]["reason"]
    assert rejects[4]["column"] == "at"
    assert rejects[6]["column"] == "name" and "UTF-8" in rejects[6]["reason"]


def test_orphans_are_rejected_by_default_without_a_plan_and_the_foreign_key_is_valid(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE p (id INTEGER PRIMARY KEY);"
        "CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p(id));"
        "INSERT INTO p VALUES (1); INSERT INTO c VALUES (1, 1), (2, 99), (3, 98), (4, NULL);"
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path))

    assert report.rows_loaded == 3
    assert report.exit_code() == 1  # rows were rejected
    assert report.verify is not None and report.verify["ok"], report.verify
    path = tmp_path / "run" / "rejects" / "c.jsonl"
    rejects = {r["key"]["id"]: r for r in map(json.loads, path.read_text().splitlines())}
    assert {k: r["reason"] for k, r in rejects.items()} == {
        2: "orphan: p_id = 99 has no row in p",
        3: "orphan: p_id = 98 has no row in p",
    }
    assert pg.query(
        "SELECT convalidated FROM pg_constraint WHERE contype = 'f' AND conrelid = 'c'::regclass"
    ) == [(True,)]


def test_a_foreign_key_to_a_table_the_source_lacks_rejects_no_row(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES ghost(id));"
        "INSERT INTO c VALUES (1, 1), (2, NULL);"
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path))

    assert report.rows_loaded == 2 and report.rows_rejected == 0
    fk_phase = next(p for p in report.phases if p.name == "foreign keys")
    assert fk_phase.notes == ["foreign key c(p_id) -> ghost: not created: ghost is not migrated"]
    assert report.verify is not None and report.verify["ok"], report.verify


def test_children_of_a_rejected_parent_are_rejected_as_orphans_without_a_plan(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE p (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);"
        "CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER NOT NULL REFERENCES p(id));"
        "INSERT INTO p VALUES (1, 10), (2, 'twenty');"
        "INSERT INTO c VALUES (1, 1), (2, 2), (3, 2);"
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path))

    assert pg.query("SELECT id FROM p") == [(1,)]
    assert pg.query("SELECT id, p_id FROM c") == [(1, 1)]
    path = tmp_path / "run" / "rejects" / "c.jsonl"
    reasons = [json.loads(line)["reason"] for line in path.read_text().splitlines()]
    assert reasons == ["orphan: p_id = 2 has no row in p"] * 2
    assert pg.query(
        "SELECT convalidated FROM pg_constraint WHERE contype = 'f' AND conrelid = 'c'::regclass"
    ) == [(True,)]
    assert report.verify is not None and report.verify["ok"], report.verify


def test_views_that_postgresql_accepts_are_created_and_triggers_are_reported(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER);"
        "CREATE VIEW big AS SELECT id FROM t WHERE n > 10;"
        "CREATE VIEW weird AS SELECT datetime('now') AS d;"
        "INSERT INTO t VALUES (1, 5), (2, 50);"
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET n = 0; END;"
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path))

    assert pg.query("SELECT id FROM big") == [(2,)]
    kinds = {(n["kind"], n["name"]) for n in report.not_migrated}
    assert ("trigger", "tr") in kinds
    assert ("view", "weird") in kinds
    assert ("view", "big") not in kinds


def test_generated_columns_are_loaded_as_values_and_noted(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, "
        "  b INTEGER GENERATED ALWAYS AS (a * 2) STORED);"
        "INSERT INTO t (id, a) VALUES (1, 21);"
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path))

    assert pg.query("SELECT a, b FROM t") == [(21, 42)]
    assert any("generated column" in n for n in report.notes)


def test_primary_key_with_nulls_becomes_a_unique_constraint(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE t (id TEXT PRIMARY KEY, v TEXT);INSERT INTO t VALUES (NULL, 'a'), ('x', 'b');"
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path))

    assert report.rows_loaded == 2
    assert pg.query("SELECT contype FROM pg_constraint WHERE conrelid = 't'::regclass") == [("u",)]


def test_snapshot_includes_committed_wal_frames_not_yet_checkpointed(
    tmp_path: Path, pg: PgSchema
) -> None:
    db = tmp_path / "live.db"
    writer = sqlite3.connect(db)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    writer.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1, 101)])
    writer.commit()
    assert (tmp_path / "live.db-wal").stat().st_size > 0
    # The writer stays open (the app is running) while lite2pg copies.
    report = migrate(db, pg.target, _opts(pg, tmp_path))
    writer.close()

    assert report.rows_loaded == 100
    assert pg.query("SELECT max(id) FROM t") == [(100,)]


def test_cast_overrides_the_declared_type(make_db: MakeDb, pg: PgSchema, tmp_path: Path) -> None:
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, qty INTEGER);"
        "INSERT INTO t VALUES (1, 'lots'), (2, 3);"
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path, casts={"t.qty": "text"}))

    assert report.exit_code() == 0
    assert pg.query("SELECT qty FROM t ORDER BY id") == [("lots",), ("3",)]


def test_a_failed_run_leaves_the_target_as_it_was(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE a (id INTEGER PRIMARY KEY); CREATE TABLE b (id INTEGER PRIMARY KEY);"
        "INSERT INTO a VALUES (1); INSERT INTO b VALUES (1);"
    )
    pg.execute("CREATE TABLE b (keep int); INSERT INTO b VALUES (7)")
    try:
        migrate(db, pg.target, _opts(pg, tmp_path))
    except Exception as e:
        assert "already exists" in str(e)
    else:
        raise AssertionError("migrate should refuse an existing table")
    assert pg.query("SELECT keep FROM b") == [(7,)]
    assert pg.query(
        "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'a'"
    ) == [(0,)]


def test_views_over_mixed_case_names_and_other_views_are_created(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE Artist (ArtistId INTEGER PRIMARY KEY, Name TEXT);"
        "INSERT INTO Artist VALUES (1, 'AC/DC'), (2, 'Accept');"
        # SQLite matches names whatever their case; PostgreSQL folds bare names.
        "CREATE VIEW [Z Names] AS SELECT artistid, NAME FROM artist WHERE Name LIKE 'A%';"
        "CREATE VIEW a_first AS SELECT name FROM [Z Names] WHERE ArtistId = 1;"
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path))

    # Declared unquoted, the names fold to lower case: the app's bare names find them.
    assert pg.query('SELECT ArtistId, Name FROM "Z Names" ORDER BY 1') == [
        (1, "AC/DC"),
        (2, "Accept"),
    ]
    assert pg.query("SELECT Name FROM a_first") == [("AC/DC",)]
    assert not [n for n in report.not_migrated if n["kind"] == "view"]


def test_a_second_run_into_the_same_schema_at_the_same_time_is_refused(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    import psycopg

    from lite2pg.errors import TargetError
    from lite2pg.run import lock_key

    db = make_db("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
    with psycopg.connect(pg.dsn, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (lock_key(pg.schema),))
        try:
            migrate(db, pg.target, _opts(pg, tmp_path))
        except TargetError as e:
            assert "another lite2pg run" in str(e)
        else:
            raise AssertionError("the second run should be refused")
    assert pg.query("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()") == [(0,)]


# Defaults an app's schema declares, with what a text column held on SQLite.
_APP_DEFAULTS = (
    "CREATE TABLE events (id INTEGER PRIMARY KEY, label TEXT,"
    "  ts_text TEXT DEFAULT CURRENT_TIMESTAMP, day_text TEXT DEFAULT CURRENT_DATE,"
    "  time_text TEXT DEFAULT CURRENT_TIME, dt_fn TEXT DEFAULT (datetime('now')),"
    "  day DATE DEFAULT (date('now')), created DATETIME DEFAULT CURRENT_TIMESTAMP,"
    "  epoch INTEGER DEFAULT (strftime('%s','now')),"
    "  epoch_text TEXT DEFAULT (strftime('%s','now')),"
    "  ms TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),"
    "  iso DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),"
    "  rnd INTEGER DEFAULT (random()), jd REAL DEFAULT (julianday('now')),"
    "  neg INTEGER DEFAULT -1, negf REAL DEFAULT - 2.5, yes BOOLEAN DEFAULT TRUE,"
    "  no BOOLEAN DEFAULT FALSE, local TEXT DEFAULT (datetime('now','localtime')),"
    "  token TEXT DEFAULT (lower(hex(randomblob(4)))));"
)
_TRANSLATED = (
    "ts_text", "day_text", "time_text", "dt_fn", "day", "created", "epoch", "epoch_text", "ms",
    "iso", "rnd", "jd", "neg", "negf", "yes", "no",
)  # fmt: skip


def _shape(value: object) -> object:
    """What two values of one default share whenever they are taken: digits vary."""
    if isinstance(value, str):
        return "".join("9" if ch.isdigit() else ch for ch in value)
    return type(value)


def test_an_insert_on_postgresql_gets_the_defaults_the_app_got_on_sqlite(
    tmp_path: Path, pg: PgSchema
) -> None:
    db = tmp_path / "app.db"
    app = sqlite3.connect(db)
    app.executescript(_APP_DEFAULTS)
    app.execute("INSERT INTO events (id, label) VALUES (1, 'on sqlite')")  # as the app does
    app.commit()
    app.close()
    report = migrate(db, pg.target, _opts(pg, tmp_path))
    assert report.exit_code() == 0, report.verify
    cols = ", ".join(_TRANSLATED)
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        # A session in another time zone: what SQLite stored in UTC must stay UTC.
        conn.execute("SET TimeZone = 'America/New_York'")
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(pg.schema)))
        conn.execute("INSERT INTO events (id, label) VALUES (2, 'on postgresql')")
        rows = conn.execute(f"SELECT {cols} FROM events ORDER BY id").fetchall()
    on_sqlite, on_pg = (dict(zip(_TRANSLATED, r, strict=True)) for r in rows)
    now = dt.datetime.now(dt.UTC)
    for name in _TRANSLATED:
        assert on_pg[name] is not None, name
        assert _shape(on_pg[name]) == _shape(on_sqlite[name]), name
    for name in ("ts_text", "dt_fn"):
        stamp = dt.datetime.fromisoformat(on_pg[name]).replace(tzinfo=dt.UTC)
        assert abs(stamp - now) < dt.timedelta(minutes=2), name
    assert on_pg["day_text"] == now.date().isoformat() == on_pg["day"].isoformat()
    assert abs(on_pg["created"] - now) < dt.timedelta(minutes=2)
    assert abs(on_pg["iso"] - now) < dt.timedelta(minutes=2)
    assert abs(on_pg["epoch"] - now.timestamp()) < 120
    assert abs(int(on_pg["epoch_text"]) - now.timestamp()) < 120
    assert abs(on_pg["jd"] - (now.timestamp() / 86400 + 2440587.5)) < 0.01
    assert -(2**63) <= on_pg["rnd"] < 2**63
    assert (on_pg["neg"], on_pg["negf"], on_pg["yes"], on_pg["no"]) == (-1, -2.5, True, False)
    # What is not translated is a behaviour change, listed in the report and the summary.
    changes = "\n".join(report.behaviour_changes)
    assert "events: column 'local': default datetime('now','localtime') dropped" in changes
    assert "'localtime' is the local time of the app's host" in changes
    assert "events: column 'token': default lower(hex(randomblob(4))) dropped" in changes
    assert len(report.behaviour_changes) == 2
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert saved["behaviour_changes"] == report.behaviour_changes


def test_a_column_the_plan_transforms_keeps_a_default_its_transforms_accept(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE tickets (id INTEGER PRIMARY KEY,"
        "  status TEXT DEFAULT 'wip', kind TEXT DEFAULT 'zzz',"
        "  opened INTEGER DEFAULT (strftime('%s','now')), note TEXT DEFAULT CURRENT_TIMESTAMP);"
        "INSERT INTO tickets (id) VALUES (1);"
    )
    plan = parse_plan(
        textwrap.dedent(
            """
            [tables.tickets.columns.status]
            transforms = [{ map = { values = { wip = "in_progress" }, on_unknown = "keep" } }]
            [tables.tickets.columns.kind]
            transforms = [{ map = { values = { bug = "bug" }, on_unknown = "reject" } }]
            [tables.tickets.columns.opened]
            transforms = [{ timestamp = { epoch = "seconds" } }]
            [tables.tickets.columns.note]
            transforms = ["strip"]
            """
        ),
        origin="test",
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path, plan=plan))
    assert report.rows_rejected == 1  # the SQLite row's kind 'zzz' is refused by its map

    pg.execute("INSERT INTO tickets (id) VALUES (2)")
    (status, kind, opened, note) = pg.query(
        "SELECT status, kind, opened, note FROM tickets WHERE id = 2"
    )[0]
    now = dt.datetime.now(dt.UTC)
    assert status == "in_progress"  # the constant, as the map makes it
    assert kind is None  # the map refuses 'zzz': dropped, and said so
    assert abs(opened - now) < dt.timedelta(minutes=2)  # epoch now, as the transform reads it
    assert abs(dt.datetime.fromisoformat(note).replace(tzinfo=dt.UTC) - now) < dt.timedelta(
        minutes=2
    )
    assert report.behaviour_changes == [
        "tickets: column 'kind': default 'zzz' dropped: the plan's transforms refuse it "
        "(map: unknown value 'zzz')"
    ]


def _constraint_names(pg: PgSchema) -> dict[tuple[str, str], str]:
    """(table, constraint name) -> contype of every constraint in the test schema."""
    return {
        (str(r[0]), str(r[1])): str(r[2])
        for r in pg.query(
            "SELECT cl.relname, c.conname, c.contype FROM pg_constraint c "
            "JOIN pg_class cl ON cl.oid = c.conrelid "
            "WHERE c.connamespace = current_schema()::regnamespace"
        )
    }


def _index_names(pg: PgSchema) -> set[str]:
    return {
        str(r[0])
        for r in pg.query("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
    }


def test_declared_constraint_names_are_kept_and_the_apps_next_migration_drops_them(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE language (\n"
        "  language_id INTEGER CONSTRAINT pk_language PRIMARY KEY,\n"
        "  name TEXT NOT NULL CONSTRAINT uq_language_name UNIQUE,\n"
        "  code TEXT CONSTRAINT ck_code CHECK (length(code) IN (2, 3)) -- ISO 639, (1 or 2)\n"
        ");\n"
        "CREATE TABLE film (\n"
        "  film_id INTEGER,\n"
        "  title TEXT, /* the title, (as shown) */\n"
        "  rating TEXT DEFAULT 'G',\n"
        "  language_id INTEGER,\n"
        "  original_language_id INTEGER CONSTRAINT fk_film_original REFERENCES language\n"
        "    ON DELETE SET NULL,\n"
        "  CONSTRAINT pk_film PRIMARY KEY (film_id),\n"
        "  CONSTRAINT uq_film_title UNIQUE (title, language_id),\n"
        "  CONSTRAINT ck_rating CHECK (rating IN ('G', 'PG', 'R', 'R,(x)')\n"
        "    AND (length(title) > 0)),\n"
        "  CHECK (film_id > 0),\n"
        "  CONSTRAINT fk_film_language FOREIGN KEY (language_id) REFERENCES language(language_id)\n"
        ");\n"
        "CREATE INDEX idx_film_rating ON film (rating);\n"
        "INSERT INTO language VALUES (1, 'English', 'en'), (2, 'French', 'fr');\n"
        "INSERT INTO film VALUES (1, 'Alien', 'R', 1, 2), (2, 'Amélie', 'PG', 2, NULL);\n"
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path))

    assert report.exit_code() == 0, report.as_dict()
    declared = {
        ("language", "pk_language"): "p",
        ("language", "uq_language_name"): "u",
        ("language", "ck_code"): "c",
        ("film", "pk_film"): "p",
        ("film", "uq_film_title"): "u",
        ("film", "ck_rating"): "c",
        ("film", "fk_film_language"): "f",
        ("film", "fk_film_original"): "f",
    }
    assert declared.items() <= _constraint_names(pg).items(), _constraint_names(pg)
    # An unnamed constraint keeps PostgreSQL's own naming.
    assert ("film", "film_film_id_check") in _constraint_names(pg)
    assert {"pk_film", "uq_film_title", "idx_film_rating", "pk_language"} <= _index_names(pg)
    assert not [n for n in report.notes if "renamed" in n], report.notes
    # The constraints are the declared ones, not just their names.
    with pytest.raises(psycopg.errors.CheckViolation, match="ck_rating"):
        pg.execute("INSERT INTO film VALUES (3, 'X', 'NC-17', 1, NULL)")
    # The app's next migration drops and re-adds constraints by name.
    pg.execute("ALTER TABLE film DROP CONSTRAINT fk_film_language")
    pg.execute("ALTER TABLE language DROP CONSTRAINT ck_code")
    pg.execute("ALTER TABLE film RENAME CONSTRAINT uq_film_title TO film_title_lang_key")
    pg.execute("DROP INDEX idx_film_rating")
    assert ("film", "fk_film_language") not in _constraint_names(pg)


def test_colliding_and_overlong_constraint_names_get_stable_unique_names_listed_in_the_report(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    long = "fk_" + "x" * 70
    long_ix = "ix_partial_" + "y" * 60
    db = make_db(
        "CREATE TABLE a (id INTEGER CONSTRAINT pk PRIMARY KEY, code TEXT CONSTRAINT uq UNIQUE,"
        "  n INTEGER CONSTRAINT positive CHECK (n > 0));"
        "CREATE TABLE b (id INTEGER CONSTRAINT pk PRIMARY KEY, code TEXT CONSTRAINT uq UNIQUE,"
        "  n INTEGER CONSTRAINT positive CHECK (n > 0),"
        f"  a_id INTEGER CONSTRAINT {long} REFERENCES a(id));"
        # SQLite index names are per schema too: the index keeps its name, the key moves.
        "CREATE TABLE c (id INTEGER CONSTRAINT idx_c PRIMARY KEY);"
        "CREATE INDEX idx_c ON b (n);"
        f"CREATE INDEX {long_ix} ON a (n) WHERE n > 0;"
        "INSERT INTO a VALUES (1, 'x', 1); INSERT INTO b VALUES (1, 'x', 1, 1);"
        "INSERT INTO c VALUES (1);"
    )
    first = migrate(db, pg.target, _opts(pg, tmp_path))

    assert first.exit_code() == 0, first.as_dict()
    names = _constraint_names(pg)
    # PostgreSQL names keys per schema (they are indexes): the second table's move.
    assert {("a", "pk"), ("a", "uq")} <= names.keys(), names
    b_pk = next(n for (t, n), kind in names.items() if t == "b" and kind == "p")
    b_uq = next(n for (t, n), kind in names.items() if t == "b" and kind == "u")
    c_pk = next(n for (t, n), kind in names.items() if t == "c" and kind == "p")
    fk = next(n for (t, n), kind in names.items() if t == "b" and kind == "f")
    assert b_pk.startswith("pk_") and b_uq.startswith("uq_") and c_pk.startswith("idx_c_")
    assert fk.startswith("fk_xxx") and len(fk.encode()) <= 63
    indexes = _index_names(pg)
    ix = next(n for n in indexes if n.startswith("ix_partial_"))
    assert "idx_c" in indexes and len(ix.encode()) <= 63
    # CHECK and FK names are per table in PostgreSQL as in SQLite: kept on both.
    assert {("a", "positive"), ("b", "positive")} <= names.keys()
    for old, new in (("pk", b_pk), ("uq", b_uq), ("idx_c", c_pk), (long, fk), (long_ix, ix)):
        assert any(repr(old) in n and repr(new) in n for n in first.notes), (old, first.notes)

    # Deterministic: a second run into another schema picks the same names.
    pg.execute("CREATE SCHEMA " + pg.schema + "_again")
    try:
        again = migrate(
            db,
            pg.target,
            MigrateOptions(schema=pg.schema + "_again", run_dir=tmp_path / "run2"),
        )
        assert again.exit_code() == 0
        assert sorted(n for n in again.notes if "renamed" in n) == sorted(
            n for n in first.notes if "renamed" in n
        )
    finally:
        pg.execute("DROP SCHEMA " + pg.schema + "_again CASCADE")
