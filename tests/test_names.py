"""Names as the app declared them (unquoted ones fold to lower case) and COLLATE NOCASE
kept, against a real PostgreSQL."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import psycopg
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from psycopg import sql

from lite2pg import source
from lite2pg.check import check
from lite2pg.errors import CaseCollisionError
from lite2pg.plan import parse_plan
from lite2pg.run import MigrateOptions, migrate
from lite2pg.schema import NameAllocator, fold_name, pg_name, plan_table, sqlite_sql_to_pg
from lite2pg.verify import verify

from ._cli import cli
from .conftest import MakeDb, PgSchema


def _opts(pg: PgSchema, tmp_path: Path, **kw: object) -> MigrateOptions:
    return MigrateOptions(schema=pg.schema, run_dir=tmp_path / "run", **kw)  # type: ignore[arg-type]


def _columns(pg: PgSchema, table: str) -> list[str]:
    rows = pg.query(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (pg.schema, table),
    )
    return [r[0] for r in rows]


def _tables(pg: PgSchema) -> list[str]:
    rows = pg.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
        " AND table_type = 'BASE TABLE' ORDER BY table_name",
        (pg.schema,),
    )
    return [r[0] for r in rows]


APP = (
    "CREATE TABLE Users (Id INTEGER PRIMARY KEY, dateAdded TEXT NOT NULL,"
    ' "displayName" TEXT, [ZipCode] TEXT, `eMail` TEXT,'
    " CONSTRAINT CK_Date CHECK (length(dateAdded) = 10),"
    ' CONSTRAINT "UQ_Display" UNIQUE ("displayName"));'
    'CREATE TABLE "BlogPosts" (postId INTEGER PRIMARY KEY,'
    " AuthorId INTEGER CONSTRAINT FK_Author REFERENCES users(ID), Title TEXT,"
    " CHECK (\"TITLE\" <> ''));"
    "CREATE INDEX IX_Title ON BlogPosts (lower(Title));"
    'CREATE INDEX "IX_Author" ON BlogPosts (AuthorId);'
    "INSERT INTO Users VALUES (1, '2024-01-02', 'Ann', '12345', 'ann@x');"
    "INSERT INTO BlogPosts VALUES (10, 1, 'Hello');"
)


def test_source_knows_which_names_were_declared_quoted(make_db: MakeDb) -> None:
    db = make_db(APP)
    conn = source.open_readonly(db)
    try:
        schema = source.discover(conn)
    finally:
        conn.close()
    users, posts = schema.table("Users"), schema.table("BlogPosts")
    assert [(c.name, c.quoted) for c in users.columns] == [
        ("Id", False),
        ("dateAdded", False),
        ("displayName", True),
        ("ZipCode", True),
        ("eMail", True),
    ]
    assert not users.quoted and posts.quoted
    assert users.quoted_names == {"UQ_Display"}
    assert posts.quoted_names == {"IX_Author"}


def test_alter_table_rename_and_add_column_keep_the_quoting_they_were_written_with(
    make_db: MakeDb,
) -> None:
    db = make_db(
        'CREATE TABLE t (a TEXT, "B" TEXT);'
        "ALTER TABLE t RENAME COLUMN a TO NewName;"
        'ALTER TABLE t RENAME COLUMN "B" TO Other;'
        'ALTER TABLE t ADD COLUMN "Added" TEXT COLLATE NOCASE;'
        "ALTER TABLE t ADD COLUMN Plain TEXT;"
    )
    conn = source.open_readonly(db)
    try:
        t = source.discover(conn).table("t")
    finally:
        conn.close()
    assert [(c.name, c.quoted, c.collation) for c in t.columns] == [
        ("NewName", False, None),
        ("Other", True, None),  # SQLite keeps the quotes of the token it replaces
        ("Added", True, "NOCASE"),
        ("Plain", False, None),
    ]


_NAME = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00"),
    min_size=1,
    max_size=12,
)
_QUOTES = {
    "double": lambda n: '"' + n.replace('"', '""') + '"',
    "bracket": lambda n: "[" + n + "]",
    "backtick": lambda n: "`" + n.replace("`", "``") + "`",
    "bare": lambda n: n,
}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(_NAME, st.sampled_from(sorted(_QUOTES))),
        min_size=1,
        max_size=5,
        unique_by=lambda x: x[0].lower(),
    ),
    st.sampled_from([None, "NOCASE", "RTRIM"]),
)
def test_declared_columns_read_names_quoting_and_collation_as_sqlite_does(
    columns: list[tuple[str, str]], collation: str | None
) -> None:
    defs = []
    for name, style in columns:
        if style == "bare" and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            style = "double"
        if style == "bracket" and "]" in name:
            style = "double"
        coll = f" COLLATE {collation.lower()}" if collation else ""
        defs.append((name, style, f"{_QUOTES[style](name)} TEXT{coll} DEFAULT (',')"))
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(f"CREATE TABLE t ({', '.join(d for _, _, d in defs)})")
    except sqlite3.Error:
        assume(False)  # a bare keyword, a name SQLite refuses
    create_sql = conn.execute("SELECT sql FROM sqlite_master").fetchone()[0]
    pragma = [r[1] for r in conn.execute("PRAGMA table_info(t)")]
    conn.close()
    got = source.declared_columns(create_sql)
    assert [d.name for d in got] == pragma
    assert [d.quoted for d in got] == [style != "bare" for _, style, _ in defs]
    assert {d.collation for d in got} == {collation}


def test_fold_and_keep_name_rules() -> None:
    assert fold_name("dateAdded") == "dateadded"
    assert fold_name("ÉtÉ_X") == "ÉtÉ_x"  # PostgreSQL folds A-Z only in a UTF-8 name
    assert pg_name("dateAdded", False) == "dateadded"
    assert pg_name("dateAdded", True) == "dateAdded"
    assert pg_name("dateAdded", False, "keep") == "dateAdded"


def test_sqlite_sql_to_pg_maps_bare_and_quoted_names_as_sqlite_matches_them() -> None:
    names = {"users": "users", "dateadded": "dateadded", "displayname": "displayName"}
    out = sqlite_sql_to_pg(
        "CREATE INDEX i ON Users (lower(DateAdded)) WHERE \"DISPLAYNAME\" > 'DateAdded'"
        ' AND [dateADDED] <> "no such name"',
        names,
    )
    assert out == (
        'CREATE INDEX i ON "users" (lower("dateadded")) WHERE "displayName" > \'DateAdded\''
        ' AND "dateadded" <> "no such name"'
    )


def test_unquoted_names_fold_quoted_keep_case_and_the_apps_unquoted_sql_runs(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(APP)
    report = migrate(db, pg.target, _opts(pg, tmp_path))

    assert report.exit_code() == 0, (report.notes, [p.notes for p in report.phases])
    assert _tables(pg) == ["BlogPosts", "users"]
    assert _columns(pg, "users") == ["id", "dateadded", "displayName", "ZipCode", "eMail"]
    assert _columns(pg, "BlogPosts") == ["postid", "authorid", "title"]
    # The app's own SQL, unquoted as it wrote it for SQLite, runs on PostgreSQL.
    assert pg.query("SELECT dateAdded, ID FROM Users WHERE Id = 1") == [("2024-01-02", 1)]
    assert pg.query('SELECT Title FROM "BlogPosts" WHERE AuthorId = 1') == [("Hello",)]
    constraints = {
        r[0]: r[1]
        for r in pg.query(
            "SELECT conname, contype FROM pg_constraint c JOIN pg_namespace n"
            " ON n.oid = c.connamespace WHERE n.nspname = %s",
            (pg.schema,),
        )
    }
    assert constraints["ck_date"] == "c"
    assert constraints["UQ_Display"] == "u"
    assert constraints["fk_author"] == "f"
    indexes = {
        r[0]
        for r in pg.query("SELECT indexname FROM pg_indexes WHERE schemaname = %s", (pg.schema,))
    }
    assert {"ix_title", "IX_Author"} <= indexes
    # The CHECKs were built on the folded names: they hold.
    with pytest.raises(psycopg.errors.CheckViolation):
        pg.execute("INSERT INTO Users (Id, dateAdded) VALUES (2, 'bad')")
    with pytest.raises(psycopg.errors.CheckViolation):
        pg.execute("INSERT INTO \"BlogPosts\" (postId, Title) VALUES (11, '')")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        pg.execute("INSERT INTO \"BlogPosts\" (postId, AuthorId, Title) VALUES (12, 99, 'x')")
    assert report.verify is not None and report.verify["ok"]


def test_names_keep_keeps_every_name_as_declared(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(APP)
    report = migrate(db, pg.target, _opts(pg, tmp_path, names="keep"))

    assert report.exit_code() == 0, (report.notes, [p.notes for p in report.phases])
    assert _tables(pg) == ["BlogPosts", "Users"]
    assert _columns(pg, "Users") == ["Id", "dateAdded", "displayName", "ZipCode", "eMail"]
    names = {
        r[0]
        for r in pg.query(
            "SELECT conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace"
            " WHERE n.nspname = %s",
            (pg.schema,),
        )
    }
    assert {"CK_Date", "FK_Author"} <= names
    # Bare names in CHECKs and expression indexes were quoted with their declared case.
    with pytest.raises(psycopg.errors.CheckViolation):
        pg.execute('INSERT INTO "Users" ("Id", "dateAdded") VALUES (2, \'bad\')')
    assert report.verify is not None and report.verify["ok"]


def test_a_plan_says_keep_and_its_target_and_rename_are_taken_exactly(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(APP)
    plan = parse_plan(
        "[tables.Users]\n"
        'target = "AppUsers"\n'
        'rename = { dateAdded = "createdAt" }\n'
        "[tables.BlogPosts]\n"
        'rename = { Title = "Heading" }\n'
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path, plan=plan))
    assert report.exit_code() == 0, (report.notes, [p.notes for p in report.phases])
    assert _tables(pg) == ["AppUsers", "BlogPosts"]
    assert _columns(pg, "AppUsers") == ["id", "createdAt", "displayName", "ZipCode", "eMail"]
    assert _columns(pg, "BlogPosts") == ["postid", "authorid", "Heading"]

    kept = parse_plan('names = "keep"\n')
    assert kept.names == "keep"
    assert (
        migrate(
            db,
            pg.target,
            MigrateOptions(schema=pg.schema, run_dir=tmp_path / "r2", plan=kept, drop=True),
        ).exit_code()
        == 0
    )
    assert "Users" in _tables(pg)


def test_a_folded_name_that_is_taken_keeps_its_declared_case_and_says_so() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE Users (Id INTEGER PRIMARY KEY, dateAdded TEXT, other TEXT)")
    t = source.discover(conn).table("Users")
    conn.close()
    plan = parse_plan('[tables.Users]\nrename = { other = "dateadded" }\n')
    tm = plan_table(t, NameAllocator(), tp=plan.table("Users"))
    assert tm.target_columns == ["id", "dateAdded", "dateadded"]
    assert any("'dateAdded' keeps its declared case" in n for n in tm.notes)


def test_data_only_still_matches_names_ignoring_case(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(APP)
    pg.execute(
        'CREATE TABLE "Users" ("ID" bigint PRIMARY KEY, "DateAdded" text, displayname text,'
        " zipcode text, email text);"
        'CREATE TABLE blogposts (postid bigint PRIMARY KEY, authorid bigint, "TITLE" text)'
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path, data_only=True))
    assert report.exit_code() == 0, report.notes
    assert pg.query('SELECT "DateAdded" FROM "Users"') == [("2024-01-02",)]


NOCASE = (
    "CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT COLLATE NOCASE UNIQUE,"
    " email TEXT, nick TEXT COLLATE NOCASE);"
    "CREATE UNIQUE INDEX ux_email ON users (email COLLATE NOCASE);"
)


def _needs_citext(pg: PgSchema) -> None:
    """Skip where the server cannot give citext: the embedded one ships no contrib
    extensions (its lower() path is test_without_citext_...)."""
    if not pg.query("SELECT 1 FROM pg_available_extensions WHERE name = 'citext'"):
        pytest.skip("the target server has no citext extension (the embedded one ships none)")


def test_collate_nocase_unique_rejects_other_case_in_postgresql_with_citext(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    _needs_citext(pg)
    db = make_db(
        NOCASE,
        (
            "INSERT INTO users VALUES (?, ?, ?, ?)",
            [(1, "bob", "Bob@X.org", "Bo"), (2, "Ann", "a@x", None)],
        ),
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path))
    assert report.exit_code() == 0, (report.notes, [p.notes for p in report.phases])
    types = dict(
        pg.query(
            "SELECT column_name, udt_name FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = 'users'",
            (pg.schema,),
        )
    )
    assert types["username"] == "citext" and types["nick"] == "citext"
    assert types["email"] == "text"
    # Stored case is kept, comparisons ignore it, as on SQLite (citext's operators are
    # found through the search_path, as the app's session finds them in public).
    with psycopg.connect(pg.dsn) as conn:
        conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(pg.schema)))
        found = conn.execute("SELECT username FROM users WHERE username = 'BOB'").fetchall()
    assert found == [("bob",)]
    with pytest.raises(psycopg.errors.UniqueViolation):
        pg.execute("INSERT INTO users (id, username) VALUES (3, 'Bob')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        pg.execute("INSERT INTO users (id, email) VALUES (4, 'bob@x.ORG')")
    assert report.verify is not None and report.verify["ok"]


def test_without_citext_nocase_unique_keys_go_on_lower_and_the_change_is_listed(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(NOCASE, "INSERT INTO users VALUES (1, 'bob', 'Bob@X.org', 'Bo');")
    # citext="" is what a target without the extension (the embedded server) gives.
    report = migrate(db, pg.target, _opts(pg, tmp_path, citext=""))
    assert report.exit_code() == 0, (report.notes, [p.notes for p in report.phases])
    with pytest.raises(psycopg.errors.UniqueViolation):
        pg.execute("INSERT INTO users (id, username) VALUES (3, 'BOB')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        pg.execute("INSERT INTO users (id, email) VALUES (4, 'bob@x.ORG')")
    changes = "\n".join(report.behaviour_changes)
    assert "'username': COLLATE NOCASE not kept (the citext extension cannot" in changes
    assert "'nick': COLLATE NOCASE not kept" in changes
    assert json.loads((tmp_path / "run" / "run.json").read_text())["citext"] == ""
    assert report.verify is not None and report.verify["ok"]


def test_other_collations_are_listed_as_behaviour_changes(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db("CREATE TABLE t (id INTEGER PRIMARY KEY, code TEXT COLLATE RTRIM);")
    report = migrate(db, pg.target, _opts(pg, tmp_path))
    assert any("'code': COLLATE RTRIM not kept" in c for c in report.behaviour_changes)


UNICODE_DUPES = [(1, "é", "a"), (2, "É", "b"), (3, "Straße", "c"), (4, "x", "d")]


def test_case_only_duplicates_beyond_a_z_stop_the_run_before_anything_is_written(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT COLLATE NOCASE UNIQUE,"
        " email TEXT);",
        ("INSERT INTO users VALUES (?, ?, ?)", UNICODE_DUPES),
        # Kelvin sign: lower() makes it an ASCII k, which SQLite's NOCASE never does.
        ("INSERT INTO users VALUES (?, ?, ?)", [(5, "\u212a", "e"), (6, "k", "f")]),
    )
    with pytest.raises(CaseCollisionError) as e:
        migrate(db, pg.target, _opts(pg, tmp_path))
    message = str(e.value)
    lines = message.splitlines()
    assert "2 group(s)" in lines[0]
    assert {lines[1], lines[2]} == {
        "  table users: unique key (username): 'É', 'é' are one value in PostgreSQL",
        "  table users: unique key (username): 'k', '\u212a' (U+212A) are one value in PostgreSQL",
    }
    assert lines[-1].startswith("(hint:") and "--cast users.username=text" in lines[-1]
    assert _tables(pg) == []

    # check says the same, without a target.
    report = check(db)
    assert not report.ok
    assert {frozenset(v[0] for v in c.values) for c in report.case_collisions} == {
        frozenset({"é", "É"}),
        frozenset({"\u212a", "k"}),
    }

    # The hint's way out: the column loads case-sensitively, and the change is listed.
    ok = migrate(db, pg.target, _opts(pg, tmp_path, casts={"users.username": "text"}))
    assert ok.exit_code() == 0
    assert any(
        "'username': COLLATE NOCASE not kept (it is made text)" in c for c in ok.behaviour_changes
    )


def test_the_cli_prints_one_line_per_case_only_duplicate_group(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT COLLATE NOCASE UNIQUE);",
        ("INSERT INTO users VALUES (?, ?)", [(1, "é"), (2, "É"), (3, "ü"), (4, "Ü")]),
    )
    result = cli("migrate", str(db), "--target", pg.dsn, "--schema", pg.schema, cwd=tmp_path)
    assert "Traceback" not in result.stderr
    assert result.returncode == 2
    groups = [line for line in result.stderr.splitlines() if line.startswith("  table users:")]
    assert len(groups) == 2, result.stderr
    checked = cli("check", str(db), cwd=tmp_path)
    assert checked.returncode == 1
    assert checked.stdout.count("case-only duplicates: table users") == 2, checked.stdout


def test_verify_proves_the_stored_case_of_a_citext_column(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT COLLATE NOCASE UNIQUE);",
        ("INSERT INTO users VALUES (?, ?)", [(i, f"User{i}") for i in range(1, 50)]),
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path))
    assert report.exit_code() == 0 and report.verify is not None
    assert report.verify["ok"]
    pg.execute("UPDATE users SET username = 'user7' WHERE id = 7")  # case only
    again = verify(tmp_path / "run", pg.target)
    assert not again.ok
    assert "users" in str(again)


def test_names_option_is_on_the_command_line(make_db: MakeDb, pg: PgSchema, tmp_path: Path) -> None:
    db = make_db(APP)
    result = cli(
        "migrate", str(db), "--target", pg.dsn, "--schema", pg.schema, "--names", "keep",
        "--no-keep-artifacts", "-q", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Users" in _tables(pg)
    bad = cli("migrate", str(db), "--names", "upper", cwd=tmp_path)
    assert bad.returncode == 2 and "'upper' is not one of 'fold', 'keep'" in bad.stderr


def test_a_column_referencing_a_nocase_key_becomes_citext_so_the_foreign_key_builds(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    _needs_citext(pg)
    db = make_db(
        "CREATE TABLE users (username TEXT COLLATE NOCASE PRIMARY KEY);"
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, author TEXT REFERENCES users(username));"
        "INSERT INTO users VALUES ('Bob');"
        # SQLite matches a foreign key with its parent key's collation: 'BOB' is Bob's.
        "INSERT INTO posts VALUES (1, 'BOB'), (2, 'bob');"
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path))
    assert report.exit_code() == 0, (report.notes, [p.notes for p in report.phases])
    assert any("'author' is public.citext like users.username" in n for n in report.notes)
    [(valid,)] = pg.query(
        "SELECT convalidated FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace"
        " WHERE c.contype = 'f' AND n.nspname = %s",
        (pg.schema,),
    )
    assert valid  # no orphans: 'BOB' and 'bob' reference 'Bob', as on SQLite
    assert pg.query("SELECT author FROM posts ORDER BY id") == [("BOB",), ("bob",)]
    assert report.verify is not None and report.verify["ok"]

    # A unique key on such a column compares with case in SQLite, without in PostgreSQL.
    one_to_one = make_db(
        "CREATE TABLE users (username TEXT COLLATE NOCASE PRIMARY KEY);"
        "CREATE TABLE profiles (username TEXT PRIMARY KEY REFERENCES users(username));"
        "INSERT INTO users VALUES ('Bob');"
        "INSERT INTO profiles VALUES ('BOB'), ('bob');"
    )
    # --drop: the first run's users table would be refused first, before the snapshot.
    again = MigrateOptions(schema=pg.schema, run_dir=tmp_path / "r2", drop=True)
    with pytest.raises(CaseCollisionError) as e:
        migrate(one_to_one, pg.target, again)
    assert "table profiles: primary key (username): 'BOB', 'bob' are one value" in str(e.value)
