"""Hostile schemas: names PostgreSQL folds, quotes or truncates, very wide tables, every kind
of key, foreign keys that loop, generated columns, views, triggers, STRICT tables and the
declared types legacy apps wrote.

Each case must migrate completely (exit 0, verify passes, no row lost) with the values
and the keys intact.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from ..conftest import MakeDb, PgSchema
from ._harness import cli, known_error, migrated, pg_state, target_args
from .conftest import RowsLost

# migrate with a real target writes the CSV artifacts by default; --no-keep-artifacts
# streams through staging instead: two code paths, both must hold.
FLAGS: dict[str, list[str]] = {"artifacts": [], "stream": ["--no-keep-artifacts"]}


def _ok(db: Path, pg: PgSchema, tmp_path: Path, rows_lost: RowsLost, *args: str) -> dict[str, Any]:
    _, rep, gone = migrated(db, pg, tmp_path / "run", *args)
    rows_lost(gone)
    assert gone == 0
    return rep


def _columns(pg: PgSchema, table: str) -> list[tuple[str, str]]:
    return [
        (str(r[0]), str(r[1]))
        for r in pg.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
            (table,),
        )
    ]


def _constraints(pg: PgSchema, table: str) -> list[tuple[str, str]]:
    """(contype, definition) of a table's constraints, sorted."""
    return sorted(
        (str(r[0]), str(r[1]))
        for r in pg.query(
            "SELECT contype, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = (quote_ident(current_schema()) || '.' || quote_ident(%s))::regclass",
            (table,),
        )
    )


def test_reserved_words_as_table_and_column_names(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, rows_lost: RowsLost
) -> None:
    db = make_db(
        'CREATE TABLE "select" ("from" INTEGER PRIMARY KEY, "user" TEXT, "order" INTEGER, '
        '"group" TEXT, "table" TEXT, "primary" REAL);'
        'CREATE TABLE "order" ("id" INTEGER PRIMARY KEY, "select" INTEGER REFERENCES "select");'
        'CREATE INDEX "where" ON "select" ("order");',
        ('INSERT INTO "select" VALUES (?, ?, ?, ?, ?, ?)', [(1, "u", 2, "g", "t", 0.5)]),
        ('INSERT INTO "order" VALUES (?, ?)', [(1, 1)]),
    )
    _ok(db, pg, tmp_path, rows_lost)
    assert pg.query(
        'SELECT "from", "user", "order", "group", "table", "primary" FROM "select"'
    ) == [(1, "u", 2, "g", "t", 0.5)]
    assert ("f", 'FOREIGN KEY ("select") REFERENCES "select"("from")') in _constraints(pg, "order")


@pytest.mark.parametrize("path", list(FLAGS))
def test_mixed_case_names_and_references_spelled_in_another_case(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, rows_lost: RowsLost, path: str
) -> None:
    # SQLite matches names whatever their case; PostgreSQL keeps quoted names exact.
    db = make_db(
        'CREATE TABLE "CamelCase" ("MixedId" INTEGER PRIMARY KEY, "UPPER" TEXT, lower TEXT);'
        "CREATE TABLE child (id INTEGER PRIMARY KEY, "
        "  parent INTEGER REFERENCES camelcase(mixedid), code TEXT REFERENCES CAMELCASE(upper));"
        'CREATE UNIQUE INDEX cc_upper ON camelCASE ("upper");',
        ('INSERT INTO "CamelCase" VALUES (?, ?, ?)', [(1, "A", "a"), (2, "B", "b")]),
        ("INSERT INTO child VALUES (?, ?, ?)", [(10, 1, "B"), (11, 2, None)]),
    )
    _ok(db, pg, tmp_path, rows_lost, *FLAGS[path])
    assert _columns(pg, "CamelCase") == [
        ("MixedId", "bigint"),
        ("UPPER", "text"),
        ("lower", "text"),
    ]
    fks = [d for t, d in _constraints(pg, "child") if t == "f"]
    assert sorted(fks) == [
        'FOREIGN KEY (code) REFERENCES "CamelCase"("UPPER")',
        'FOREIGN KEY (parent) REFERENCES "CamelCase"("MixedId")',
    ]


WEIRD = [
    'it\'s "quoted"',
    "a b  c",
    "%s",
    "%(x)s",
    "{0}",
    "x; DROP TABLE y; --",
    "ünïcødé ✓",
    "back\\slash",
    "tab\there",
    "new\nline",
]


@pytest.mark.parametrize("path", list(FLAGS))
def test_names_with_quotes_spaces_placeholders_and_unicode(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, rows_lost: RowsLost, path: str
) -> None:
    cols = ", ".join(f'"{c.replace(chr(34), chr(34) * 2)}" TEXT' for c in WEIRD)
    db = make_db(
        f'CREATE TABLE "we""ird {{t}} %s" (id INTEGER PRIMARY KEY, {cols});'
        "CREATE TABLE [bracket name] (`tick name` INTEGER PRIMARY KEY, "
        '  ref INTEGER REFERENCES "we""ird {t} %s"(id));'
        f'CREATE INDEX "idx ""odd""" ON "we""ird {{t}} %s" ("{WEIRD[2]}", "a b  c");',
        (
            f'INSERT INTO "we""ird {{t}} %s" VALUES (?, {", ".join("?" for _ in WEIRD)})',
            [(i, *(f"{c}={i}" for c in WEIRD)) for i in range(1, 4)],
        ),
        ("INSERT INTO [bracket name] VALUES (?, ?)", [(1, 1), (2, 3)]),
    )
    _ok(db, pg, tmp_path, rows_lost, *FLAGS[path])
    assert [c for c, _ in _columns(pg, 'we"ird {t} %s')] == ["id", *WEIRD]
    rows = pg.query('SELECT * FROM "we""ird {t} %%s" ORDER BY id', ())
    assert rows == [(i, *(f"{c}={i}" for c in WEIRD)) for i in range(1, 4)]
    assert pg.query('SELECT "tick name", ref FROM "bracket name" ORDER BY 1') == [(1, 1), (2, 3)]


def test_names_longer_than_postgresql_allows_stay_distinct_and_are_noted(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, rows_lost: RowsLost
) -> None:
    # PostgreSQL cuts names to 63 bytes: cut plainly, these two columns would become one.
    long = "x" * 70
    db = make_db(
        f"CREATE TABLE t (id INTEGER PRIMARY KEY, {long}_a TEXT, {long}_b TEXT);"
        f"CREATE TABLE {'é' * 40} (id INTEGER PRIMARY KEY);"
        f"INSERT INTO t VALUES (1, 'a', 'b'); INSERT INTO {'é' * 40} VALUES (7);"
    )
    rep = _ok(db, pg, tmp_path, rows_lost)
    cols = [c for c, _ in _columns(pg, "t")]
    assert len(cols) == 3 and len(set(cols)) == 3
    assert all(len(c.encode()) <= 63 for c in cols)
    a, b = pg.query(f'SELECT "{cols[1]}", "{cols[2]}" FROM t')[0]
    assert (a, b) == ("a", "b")
    names = [t["target"] for t in rep["tables"]]
    assert all(len(n.encode()) <= 63 for n in names)
    notes = " ".join(rep["notes"])
    assert f"{long}_a" in notes and cols[1] in notes, rep["notes"]


@pytest.mark.parametrize("path", list(FLAGS))
def test_quoted_constraint_names_keep_their_exact_spelling(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, rows_lost: RowsLost, path: str
) -> None:
    db = make_db(
        'CREATE TABLE "Parent" (id INTEGER CONSTRAINT "PK Parent" PRIMARY KEY, '
        "  code TEXT CONSTRAINT [Uq Code] UNIQUE);"
        "CREATE TABLE child (\n"
        "  id INTEGER,\n"
        '  parent_id INTEGER CONSTRAINT `Fk "Parent"` REFERENCES "Parent" (id),\n'
        "  n INTEGER CONSTRAINT 'Check, (n)' CHECK (n BETWEEN 0 AND 9),\n"
        '  CONSTRAINT "pkChild" PRIMARY KEY (id) -- the key, (one column)\n'
        ");"
        'CREATE INDEX "Idx Child N" ON child (n);'
        "INSERT INTO \"Parent\" VALUES (1, 'a'); INSERT INTO child VALUES (1, 1, 5);"
    )
    rep = _ok(db, pg, tmp_path, rows_lost, *FLAGS[path])
    names = {
        (str(r[0]), str(r[1]))
        for r in pg.query(
            "SELECT conrelid::regclass::text, conname FROM pg_constraint "
            "WHERE connamespace = current_schema()::regnamespace"
        )
    }
    assert names >= {
        ('"Parent"', "PK Parent"),
        ('"Parent"', "Uq Code"),
        ("child", 'Fk "Parent"'),
        ("child", "Check, (n)"),
        ("child", "pkChild"),
    }, names
    assert pg.query(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = 'child' ORDER BY 1"
    ) == [("Idx Child N",), ("pkChild",)]
    assert not [n for n in rep["notes"] if "renamed" in n], rep["notes"]
    pg.execute('ALTER TABLE child DROP CONSTRAINT "Fk ""Parent"""')


@pytest.mark.parametrize("path", list(FLAGS))
def test_table_names_that_map_to_the_same_file_name_stay_apart(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, rows_lost: RowsLost, path: str
) -> None:
    # The artifact and rejects files are named after tables: "a b" and "a_b" must not share.
    db = make_db(
        'CREATE TABLE "a b" (id INTEGER PRIMARY KEY, n INTEGER);'
        "CREATE TABLE a_b (id INTEGER PRIMARY KEY, n INTEGER);"
        'CREATE TABLE "a/b" (id INTEGER PRIMARY KEY, n INTEGER);',
        ('INSERT INTO "a b" VALUES (?, ?)', [(1, 1), (2, "bad")]),
        ("INSERT INTO a_b VALUES (?, ?)", [(1, 10), (2, 20), (3, "worse")]),
        ('INSERT INTO "a/b" VALUES (?, ?)', [(5, 50)]),
    )
    _, rep, gone = migrated(db, pg, tmp_path / "run", *FLAGS[path], code=1)
    rows_lost(gone)
    assert gone == 0
    assert pg.query('SELECT id, n FROM "a b"') == [(1, 1)]
    assert pg.query("SELECT id, n FROM a_b ORDER BY id") == [(1, 10), (2, 20)]
    assert pg.query('SELECT id, n FROM "a/b"') == [(5, 50)]
    assert rep["totals"]["rejected"] == 2


def _wide(i: int) -> str:
    return ("INTEGER", "REAL")[i % 2] if i % 10 < 2 else "TEXT"


def _wide_value(r: int, i: int) -> object:
    return {"INTEGER": r * i, "REAL": r + i / 8}.get(_wide(i), f"t{r}")


def test_a_table_of_1200_columns(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, rows_lost: RowsLost
) -> None:
    n = 1200
    cols = ", ".join(f"c{i} {_wide(i)}" for i in range(n))
    rows = [(r, *(_wide_value(r, i) for i in range(n))) for r in range(1, 21)]
    db = make_db(
        f"CREATE TABLE wide (id INTEGER PRIMARY KEY, {cols});",
        (f"INSERT INTO wide VALUES ({', '.join('?' * (n + 1))})", rows),
    )
    _ok(db, pg, tmp_path, rows_lost, "--no-keep-artifacts")
    got = pg.query("SELECT * FROM wide ORDER BY id")
    assert got == rows


def test_a_row_wider_than_a_postgresql_page_is_one_line_error(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    # 1,100 bigint columns need 8.8 kB per row: PostgreSQL cannot store that at all.
    cols = ", ".join(f"c{i} INTEGER" for i in range(1100))
    db = make_db(
        f"CREATE TABLE wide (id INTEGER PRIMARY KEY, {cols});",
        (f"INSERT INTO wide VALUES ({', '.join('?' * 1101)})", [(1, *range(1100))]),
    )
    before = pg_state(pg)
    line = known_error(cli("migrate", str(db), *target_args(pg, tmp_path / "run"), cwd=tmp_path))
    assert "row is too big" in line and "--cast" in line
    assert "lost the connection" not in line
    assert pg_state(pg) == before


def test_without_rowid_composite_and_text_primary_keys(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, rows_lost: RowsLost
) -> None:
    db = make_db(
        "CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID;"
        "CREATE TABLE pair (a TEXT, b INTEGER, c TEXT, PRIMARY KEY (b, a)) WITHOUT ROWID;"
        "CREATE TABLE tag (name TEXT PRIMARY KEY, n INTEGER);"
        "CREATE TABLE link (a TEXT, b INTEGER, tag TEXT REFERENCES tag, "
        "  FOREIGN KEY (a, b) REFERENCES pair (a, b));",
        ("INSERT INTO kv VALUES (?, ?)", [("a", b"\x00\x01"), ("A", b""), ("", None)]),
        ("INSERT INTO pair VALUES (?, ?, ?)", [("x", 1, "one"), ("x", 2, "two"), ("y", 1, None)]),
        ("INSERT INTO tag VALUES (?, ?)", [("é", 1), ("e", 2), (" e", 3)]),
        ("INSERT INTO link VALUES (?, ?, ?)", [("x", 2, "é"), ("y", 1, " e"), (None, None, None)]),
    )
    _ok(db, pg, tmp_path, rows_lost)
    assert pg.query('SELECT k, v FROM kv ORDER BY k COLLATE "C"') == [
        ("", None),
        ("A", b""),
        ("a", b"\x00\x01"),
    ]
    assert ("p", "PRIMARY KEY (b, a)") in _constraints(pg, "pair")
    assert ("p", "PRIMARY KEY (name)") in _constraints(pg, "tag")
    assert pg.query("SELECT count(*) FROM link") == [(3,)]


def test_tables_without_a_primary_key_keep_duplicate_rows(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, rows_lost: RowsLost
) -> None:
    rows = [(1, "a"), (1, "a"), (1, "a"), (None, None), (None, None), (2, "b")]
    db = make_db("CREATE TABLE log (n INTEGER, s TEXT);", ("INSERT INTO log VALUES (?, ?)", rows))
    _ok(db, pg, tmp_path, rows_lost)
    got = pg.query("SELECT n, s FROM log")
    assert sorted(got, key=repr) == sorted(rows, key=repr)


def test_self_referencing_and_cyclic_foreign_keys(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, rows_lost: RowsLost
) -> None:
    db = make_db(
        "CREATE TABLE node (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES node(id));"
        "CREATE TABLE a (id INTEGER PRIMARY KEY, b_id INTEGER REFERENCES b(id));"
        "CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a(id));",
        # children before parents in storage order, a cycle of 1 -> 3 -> 2 -> 1
        ("INSERT INTO node VALUES (?, ?)", [(1, 3), (2, 1), (3, 2), (4, None), (5, 5)]),
        ("INSERT INTO a VALUES (?, ?)", [(1, 2), (2, 1)]),
        ("INSERT INTO b VALUES (?, ?)", [(1, 1), (2, 2)]),
    )
    _ok(db, pg, tmp_path, rows_lost)
    assert pg.query("SELECT id, parent FROM node ORDER BY id") == [
        (1, 3),
        (2, 1),
        (3, 2),
        (4, None),
        (5, 5),
    ]
    for table, ref in [("node", "node"), ("a", "b"), ("b", "a")]:
        fks = pg.query(
            "SELECT convalidated, confrelid::regclass::text FROM pg_constraint "
            "WHERE contype = 'f' AND conrelid = %s::regclass",
            (f"{pg.schema}.{table}",),
        )
        assert fks == [(True, ref)], (table, fks)


def test_foreign_key_to_a_unique_column_that_is_not_the_primary_key(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, rows_lost: RowsLost
) -> None:
    db = make_db(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE);"
        "CREATE TABLE team (id INTEGER PRIMARY KEY, code TEXT, region TEXT, UNIQUE (code, region));"
        "CREATE TABLE post (id INTEGER PRIMARY KEY, author TEXT REFERENCES users(email), "
        "  code TEXT, region TEXT, FOREIGN KEY (code, region) REFERENCES team(code, region));",
        ("INSERT INTO users VALUES (?, ?)", [(1, "a@x"), (2, "b@x")]),
        ("INSERT INTO team VALUES (?, ?, ?)", [(1, "t", "eu"), (2, "t", "us")]),
        ("INSERT INTO post VALUES (?, ?, ?, ?)", [(1, "b@x", "t", "us"), (2, None, None, None)]),
    )
    _ok(db, pg, tmp_path, rows_lost)
    fks = sorted(
        pg.query(
            "SELECT pg_get_constraintdef(oid), convalidated FROM pg_constraint "
            "WHERE contype = 'f' AND conrelid = %s::regclass",
            (f"{pg.schema}.post",),
        )
    )
    assert fks == [
        ("FOREIGN KEY (author) REFERENCES users(email)", True),
        ("FOREIGN KEY (code, region) REFERENCES team(code, region)", True),
    ]


@pytest.mark.parametrize("path", list(FLAGS))
def test_generated_columns_virtual_and_stored_arrive_as_values(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, rows_lost: RowsLost, path: str
) -> None:
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, "
        "  twice INTEGER GENERATED ALWAYS AS (a * 2) VIRTUAL, "
        "  label TEXT GENERATED ALWAYS AS ('#' || a) STORED);",
        ("INSERT INTO t (id, a) VALUES (?, ?)", [(1, 21), (2, None), (3, -4)]),
    )
    rep = _ok(db, pg, tmp_path, rows_lost, *FLAGS[path])
    assert pg.query("SELECT id, a, twice, label FROM t ORDER BY id") == [
        (1, 21, 42, "#21"),
        (2, None, None, None),
        (3, -4, -8, "#-4"),
    ]
    assert any("generated" in n for n in rep["notes"])


@pytest.mark.parametrize("path", list(FLAGS))
def test_views_are_created_or_listed_and_triggers_listed(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, rows_lost: RowsLost, path: str
) -> None:
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, at TEXT);"
        "CREATE TABLE audit (t_id INTEGER, what TEXT);"
        "CREATE VIEW names AS SELECT id, upper(name) AS shout FROM t;"
        "CREATE VIEW days AS SELECT id, strftime('%Y', at) AS year FROM t;"  # SQLite only
        "CREATE VIEW on_view AS SELECT shout FROM names WHERE id > 1;"
        "CREATE TRIGGER t_audit AFTER INSERT ON t BEGIN "
        "  INSERT INTO audit VALUES (new.id, 'insert'); END;",
        ("INSERT INTO t VALUES (?, ?, ?)", [(1, "ada", "2020-01-01"), (2, "bob", "1999-12-31")]),
    )
    rep = _ok(db, pg, tmp_path, rows_lost, *FLAGS[path])
    assert pg.query("SELECT shout FROM on_view") == [("BOB",)]
    assert pg.query("SELECT count(*) FROM audit") == [(2,)]  # rows the trigger made, once
    skipped = {(n["kind"], n["name"]) for n in rep["not_migrated"]}
    assert ("trigger", "t_audit") in skipped
    assert ("view", "days") in skipped
    assert ("view", "names") not in skipped


def test_strict_tables_with_an_any_column(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, rows_lost: RowsLost
) -> None:
    db = make_db(
        "CREATE TABLE s (id INTEGER PRIMARY KEY, n INT NOT NULL, r REAL, t TEXT, b BLOB, "
        "  x ANY) STRICT;",
        (
            "INSERT INTO s VALUES (?, ?, ?, ?, ?, ?)",
            [
                (1, 5, 1.5, "a", b"\x00", 7),
                (2, -1, None, "", b"", "seven"),
                (3, 0, 2.0, None, None, None),
            ],
        ),
    )
    _ok(db, pg, tmp_path, rows_lost)
    assert _columns(pg, "s")[:5] == [
        ("id", "bigint"),
        ("n", "bigint"),
        ("r", "double precision"),
        ("t", "text"),
        ("b", "bytea"),
    ]
    assert pg.query("SELECT id, n, r, t, b FROM s ORDER BY id") == [
        (1, 5, 1.5, "a", b"\x00"),
        (2, -1, None, "", b""),
        (3, 0, 2.0, None, None),
    ]
    # ANY holds an integer and a text: they arrive as text, each spelled as stored.
    assert pg.query("SELECT x FROM s ORDER BY id") == [("7",), ("seven",), (None,)]


def test_legacy_declared_types(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, rows_lost: RowsLost
) -> None:
    db = make_db(
        "CREATE TABLE legacy (id INTEGER PRIMARY KEY, name VARCHAR(20), "
        "  big UNSIGNED BIG INT, created DATETIME DEFAULT CURRENT_TIMESTAMP, anything, "
        "  flag BOOLEAN, price DECIMAL(10,2), ch NATIVE CHARACTER(70), d DATE);",
        (
            "INSERT INTO legacy (id, name, big, created, anything, flag, price, ch, d) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    1,
                    "longer than twenty characters, kept",
                    2**63 - 1,
                    "2024-02-29 23:59:59",
                    "text",
                    1,
                    "12.34",
                    "c",
                    "2024-01-31",
                ),
                (2, "short", 0, None, 42, 0, 0, None, None),
            ],
        ),
        "INSERT INTO legacy (id) VALUES (3);",
    )
    _ok(db, pg, tmp_path, rows_lost)
    cols = dict(_columns(pg, "legacy"))
    assert cols["name"] == "text" and cols["big"] == "bigint" and cols["anything"] == "text"
    assert cols["created"] == "timestamp with time zone"
    rows = pg.query(
        "SELECT id, name, big, to_char(created, 'YYYY-MM-DD HH24:MI:SS'), anything, flag, "
        "price::text, ch, d::text FROM legacy ORDER BY id"
    )
    assert rows[0] == (
        1, "longer than twenty characters, kept", 2**63 - 1, "2024-02-29 23:59:59", "text",
        True, "12.34", "c", "2024-01-31",
    )  # fmt: skip
    assert rows[1] == (2, "short", 0, None, "42", False, "0.00", None, None)
    assert rows[2][0] == 3 and rows[2][3] is not None  # SQLite filled the default
    # The default still works in PostgreSQL.
    assert pg.query("INSERT INTO legacy (id) VALUES (4) RETURNING created IS NOT NULL") == [(True,)]


def test_types_with_numeric_affinity_by_sqlites_last_rule_are_typed_by_what_they_hold(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, rows_lost: RowsLost
) -> None:
    # MONEY, LONG, NUMBER...: SQLite's rule 5 gives them NUMERIC affinity, so the stored
    # value decides; integers kept as text would sort as strings ('10' < '9').
    db = make_db(
        "CREATE TABLE legacy (id INTEGER PRIMARY KEY, qty LONG, price MONEY, code NUMBER, "
        "  weight MEASURE, note WHATEVER, raw STUFF, unused AMOUNT, flag BOOL, at DATETIME);",
        (
            "INSERT INTO legacy VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (1, 10, 1.5, 7, 2**62, "x", b"\x00\xff", None, 1, "2024-01-01 00:00:00"),
                (2, 9, 2, "12", 0.5, 3, b"\x01", None, 0, None),
                (3, 100, None, 3, -(2**63), None, None, None, None, None),
            ],
        ),
    )
    _ok(db, pg, tmp_path, rows_lost)
    assert _columns(pg, "legacy")[1:] == [
        ("qty", "bigint"),
        ("price", "double precision"),  # a double holds the integer 2 exactly
        ("code", "bigint"),  # NUMERIC affinity stored '12' as the integer 12
        ("weight", "numeric"),  # 2**62 beside a real: a double would round it
        ("note", "text"),
        ("raw", "bytea"),
        ("unused", "numeric"),  # nothing stored: numeric takes what the app writes next
        ("flag", "boolean"),
        ("at", "timestamp with time zone"),
    ]
    assert pg.query("SELECT qty FROM legacy ORDER BY qty") == [(9,), (10,), (100,)]
    assert pg.query("SELECT id, price, code, weight::text, note, raw FROM legacy ORDER BY id") == [
        (1, 1.5, 7, str(2**62), "x", b"\x00\xff"),
        (2, 2.0, 12, "0.5", "3", b"\x01"),
        (3, None, 3, str(-(2**63)), None, None),
    ]


def _app_collations_db(path: Path) -> Path:
    """A file made by an app that registers its own collations: without them, SQLite
    refuses to read the tables and indexes that use them."""
    app = sqlite3.connect(path)
    app.create_collation("unicase", lambda a, b: (a.lower() > b.lower()) - (a.lower() < b.lower()))
    # Reverse order: the index on disk is ordered unlike any fallback lite2pg could pick.
    app.create_collation("en_US", lambda a, b: (a < b) - (a > b))
    app.executescript(
        "CREATE TABLE people (name TEXT PRIMARY KEY COLLATE unicase, city TEXT, n INTEGER);"
        'CREATE INDEX people_city ON people (city COLLATE "en_US");'
    )
    app.executemany(
        "INSERT INTO people VALUES (?, ?, ?)",
        [("Émile", "Zürich", 1), ("ada", "Athens", 2), ("Bob", "berlin", 3), ("zoë", None, 4)],
    )
    app.commit()
    app.close()
    return path


def test_collations_the_app_registers_are_read_with_a_fallback_and_listed(
    pg: PgSchema, tmp_path: Path, rows_lost: RowsLost
) -> None:
    db = _app_collations_db(tmp_path / "app.db")
    plain = sqlite3.connect(db)
    with closing(plain), pytest.raises(sqlite3.OperationalError, match="no such collation"):
        plain.execute("SELECT count(*) FROM people").fetchone()

    rep = _ok(db, pg, tmp_path, rows_lost)
    assert pg.query("SELECT name, city, n FROM people ORDER BY n") == [
        ("Émile", "Zürich", 1),
        ("ada", "Athens", 2),
        ("Bob", "berlin", 3),
        ("zoë", None, 4),
    ]
    assert rep["behaviour_changes"] == [
        "column people.name uses collation unicase, which the app registers; read with a "
        "fallback (case-insensitive, by casefold); PostgreSQL uses its default collation",
        "index people_city (column city) uses collation en_US, which the app registers; read "
        "with a fallback (code point order); PostgreSQL uses its default collation",
    ]
