"""ORM profiles: detection, the built-in plan each gives, the user's plan over it, and runs
that apply them (Prisma's epoch milliseconds, data-only bookkeeping tables)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import tomllib
from pathlib import Path

import pytest

from lite2pg.coerce import parse_pg_type
from lite2pg.errors import PlanError, TargetError, UsageError
from lite2pg.plan import Plan, dump_plan, merge_plans, parse_plan
from lite2pg.profiles import Profile, detect, resolve
from lite2pg.run import MigrateOptions, migrate, read_run_file
from lite2pg.source import SourceSchema, discover, open_readonly

from ._cli import cli
from .conftest import MakeDb, PgSchema

# --- hand-made databases, as each ORM writes them ------------------------------------------

# Prisma's SQLite migration.sql for a small schema (quoted names, DATETIME, BOOLEAN, JSONB).
PRISMA_DDL = """
CREATE TABLE "_prisma_migrations" (
    "id" TEXT PRIMARY KEY NOT NULL,
    "checksum" TEXT NOT NULL,
    "finished_at" DATETIME,
    "migration_name" TEXT NOT NULL,
    "logs" TEXT,
    "rolled_back_at" DATETIME,
    "started_at" DATETIME NOT NULL DEFAULT current_timestamp,
    "applied_steps_count" INTEGER UNSIGNED NOT NULL DEFAULT 0
);
CREATE TABLE "User" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "email" TEXT NOT NULL,
    "active" BOOLEAN NOT NULL DEFAULT true,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL,
    "balance" DECIMAL NOT NULL DEFAULT 0,
    "views" BIGINT NOT NULL DEFAULT 0,
    "meta" JSONB
);
CREATE UNIQUE INDEX "User_email_key" ON "User"("email");
CREATE TABLE "Post" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "title" TEXT NOT NULL,
    "publishedAt" DATETIME,
    "authorId" INTEGER NOT NULL,
    CONSTRAINT "Post_authorId_fkey" FOREIGN KEY ("authorId") REFERENCES "User" ("id")
        ON DELETE RESTRICT ON UPDATE CASCADE
);
"""

# The same project's PostgreSQL migration.sql.
PRISMA_PG_DDL = """
CREATE TABLE "_prisma_migrations" (
    "id" VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum" VARCHAR(64) NOT NULL,
    "finished_at" TIMESTAMPTZ,
    "migration_name" VARCHAR(255) NOT NULL,
    "logs" TEXT,
    "rolled_back_at" TIMESTAMPTZ,
    "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count" INTEGER NOT NULL DEFAULT 0
);
INSERT INTO "_prisma_migrations" VALUES
    ('pg-1', 'abc', now(), '20240101000000_init', NULL, NULL, now(), 1);
CREATE TABLE "User" (
    "id" SERIAL NOT NULL,
    "email" TEXT NOT NULL,
    "active" BOOLEAN NOT NULL DEFAULT true,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    "balance" DECIMAL(65,30) NOT NULL DEFAULT 0,
    "views" BIGINT NOT NULL DEFAULT 0,
    "meta" JSONB,
    CONSTRAINT "User_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "User_email_key" ON "User"("email");
CREATE TABLE "Post" (
    "id" SERIAL NOT NULL,
    "title" TEXT NOT NULL,
    "publishedAt" TIMESTAMP(3),
    "authorId" INTEGER NOT NULL,
    CONSTRAINT "Post_pkey" PRIMARY KEY ("id")
);
ALTER TABLE "Post" ADD CONSTRAINT "Post_authorId_fkey" FOREIGN KEY ("authorId")
    REFERENCES "User"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
"""

# 2024-03-01 12:34:56.789 UTC and 2024-03-02 00:00:00.001 UTC, as Prisma stores them.
MS_1 = 1_709_296_496_789
MS_2 = 1_709_337_600_001


def _prisma_db(make_db: MakeDb) -> Path:
    return make_db(
        PRISMA_DDL,
        (
            "INSERT INTO _prisma_migrations VALUES (?, ?, ?, ?, NULL, NULL, ?, 1)",
            [("m-1", "abc", MS_1, "20240101000000_init", MS_1)],
        ),
        (
            'INSERT INTO "User" VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
            [
                (1, "ann@example.com", 1, MS_1, MS_2, "12.50", 2**40, '{"plan": "pro"}'),
                # Newer Prisma (and the DEFAULT) write ISO text: the profile takes both.
                (2, "bob@example.com", 0, "2024-03-01 10:00:00", MS_1, 0, 0, None),
            ],
        ),
        (
            'INSERT INTO "Post" VALUES (?, ?, ?, ?)',
            [(10, "hello", MS_2, 1), (11, "draft", None, 2)],
        ),
    )


def _discovered(path: Path) -> tuple[sqlite3.Connection, SourceSchema]:
    src = open_readonly(path)
    return src, discover(src)


def _resolve(path: Path, user: Plan | None = None, **kw: object) -> tuple[Plan | None, Profile]:
    src = open_readonly(path)
    try:
        plan, profile = resolve(kw.pop("choice", "auto"), src, discover(src), user, **kw)  # type: ignore[arg-type]
    finally:
        src.close()
    assert profile is not None
    return plan, profile


def _opts(pg: PgSchema, tmp_path: Path, **kw: object) -> MigrateOptions:
    return MigrateOptions(schema=pg.schema, run_dir=tmp_path / "run", **kw)  # type: ignore[arg-type]


def _types(pg: PgSchema, table: str) -> dict[str, str]:
    rows = pg.query(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped",
        (pg.schema, table),
    )
    return {str(name): str(typ) for name, typ in rows}


# --- detection -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ddl", "expected"),
    [
        ("CREATE TABLE django_migrations (id integer PRIMARY KEY, app varchar(255));", "django"),
        ('CREATE TABLE "_prisma_migrations" ("id" TEXT PRIMARY KEY NOT NULL);', "prisma"),
        ("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL);", "alembic"),
        (
            'CREATE TABLE "schema_migrations" ("version" varchar NOT NULL PRIMARY KEY);'
            'CREATE TABLE "ar_internal_metadata" ("key" varchar NOT NULL PRIMARY KEY);',
            "rails",
        ),
        # schema_migrations alone is not ActiveRecord's (other tools use the name too).
        ('CREATE TABLE "schema_migrations" ("version" varchar NOT NULL PRIMARY KEY);', None),
        ("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);", None),
    ],
)
def test_the_orm_is_detected_by_its_bookkeeping_tables(
    make_db: MakeDb, ddl: str, expected: str | None
) -> None:
    src, schema = _discovered(make_db(ddl))
    try:
        found = detect(schema)
    finally:
        src.close()
    assert (found[0] if found else None) == expected


def test_prisma_profile_reads_epoch_milliseconds_and_prisma_types(make_db: MakeDb) -> None:
    plan, profile = _resolve(_prisma_db(make_db))
    assert plan is not None
    user = plan.tables["User"]
    assert dict(user.cast) == {
        "id": "integer",
        "active": "boolean",
        "createdAt": "timestamp(3)",
        "updatedAt": "timestamp(3)",
        "balance": "decimal(65,30)",
        "views": "bigint",
        "meta": "jsonb",
    }
    stamp = user.columns["createdAt"]
    assert [(s.name, s.options) for s in stamp.specs] == [("timestamp", {"epoch": "milliseconds"})]
    # Milliseconds and ISO text both read as the same kind of instant.
    assert stamp.chain(MS_1) == dt.datetime(2024, 3, 1, 12, 34, 56, 789_000, tzinfo=dt.UTC)
    assert stamp.chain("2024-03-01 10:00:00") == dt.datetime(2024, 3, 1, 10, tzinfo=dt.UTC)
    # Prisma's own table is timestamptz on PostgreSQL.
    assert plan.tables["_prisma_migrations"].cast["started_at"] == "timestamptz"
    assert profile.found == "_prisma_migrations"
    assert profile.revision == "20240101000000_init"
    assert profile.summary() == (
        "Prisma profile applied: 3 columns as integer, 3 as timestamp(3), 3 as timestamptz, "
        "1 as boolean, 1 as decimal, 1 as bigint, 1 as jsonb"
    )
    assert not profile.skipped  # create mode: the bookkeeping table is copied


def test_django_profile_types_columns_by_what_they_hold(make_db: MakeDb) -> None:
    db = make_db(
        'CREATE TABLE "django_migrations" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, '
        '"app" varchar(255) NOT NULL, "name" varchar(255) NOT NULL, "applied" datetime NOT NULL);'
        "INSERT INTO django_migrations VALUES (1, 'shop', '0001_initial', "
        "'2024-01-01 10:00:00.123456');"
        'CREATE TABLE "shop_order" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, '
        '"ref" char(32) NOT NULL UNIQUE, "code" char(32) NOT NULL, "ip" char(39) NULL, '
        '"host" char(39) NULL, '
        '"data" text NOT NULL CHECK ((JSON_VALID("data") OR "data" IS NULL)), '
        '"paid" bool NOT NULL, "created" datetime NOT NULL, "total" decimal NOT NULL, '
        '"took" bigint NOT NULL, "parent_id" bigint NULL REFERENCES "shop_order" ("id"));'
        "INSERT INTO shop_order VALUES (1, '0123456789abcdef0123456789ABCDEF', "
        "'0123456789abcdef0123456789abcdeg', '192.168.0.1', 'not-an-ip', '{}', 1, "
        "'2024-01-01 10:00:00', '12.50', 3000000, NULL);"
        "INSERT INTO shop_order VALUES (2, 'ffffffffffffffffffffffffffffffff', "
        "'00000000000000000000000000000000', '2001:db8::1', NULL, '[1]', 0, "
        "'2024-01-02 10:00:00.5', '1', 0, 1);"
    )
    plan, profile = _resolve(db)
    assert plan is not None
    assert dict(plan.tables["shop_order"].cast) == {
        "ref": "uuid",  # every value 32 hex digits
        "ip": "inet",  # every value an IP address
        "data": "jsonb",
        "paid": "boolean",
        "created": "timestamptz",
        "total": "numeric",
    }  # code holds a 'g', host a name: they stay text; took may be a duration (below)
    assert plan.tables["django_migrations"].cast == {"applied": "timestamptz"}
    durations, digits = profile.notes
    assert "shop_order.took" in durations and "--cast shop_order.took=interval" in durations
    assert "parent_id" not in durations  # a foreign key is no duration
    # Django declares a bare decimal: the model's digits must come from the team.
    assert "--cast shop_order.total=numeric(MAX_DIGITS,DECIMAL_PLACES)" in digits
    assert profile.revision == "1 migrations, last shop.0001_initial"


def test_django_duration_takes_its_unit_from_the_profile_when_cast_to_interval(
    make_db: MakeDb,
) -> None:
    db = make_db(
        "CREATE TABLE django_migrations (id integer PRIMARY KEY);"
        'CREATE TABLE "t" ("id" integer PRIMARY KEY, "took" bigint NOT NULL);'
    )
    plan, profile = _resolve(db, casts={"t.took": "interval"})
    assert plan is not None
    specs = plan.tables["t"].columns["took"].specs
    assert [(s.name, s.options) for s in specs] == [("interval", {"unit": "microseconds"})]
    assert not profile.notes
    # Loading data only, the target's interval column says the same.
    plan, _ = _resolve(
        db, data_only=True, target_types=lambda: {"t": {"took": parse_pg_type("interval")}}
    )
    assert plan is not None and "took" in plan.tables["t"].columns
    assert "took" not in plan.tables["t"].cast  # the target's own type stands
    # Into the table and column the user's plan names.
    user = parse_plan('[tables.t]\ntarget = "spans"\nrename = { took = "spent" }\n')
    plan, _ = _resolve(
        db,
        user,
        data_only=True,
        target_types=lambda: {"spans": {"spent": parse_pg_type("interval")}},
    )
    assert plan is not None and "took" in plan.tables["t"].columns


def test_alembic_profile_knows_sqlalchemy_types(make_db: MakeDb) -> None:
    db = make_db(
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
        "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));"
        "INSERT INTO alembic_version VALUES ('3f2a1b');"
        "CREATE TABLE item (id INTEGER NOT NULL, uid CHAR(32) NOT NULL, doc JSON, "
        "wait DATETIME, seen DATETIME, kind VARCHAR(6) NOT NULL, price NUMERIC(10, 2), "
        "live BOOLEAN, PRIMARY KEY (id), CONSTRAINT kind_ck CHECK (kind IN ('small', 'large')));"
        "INSERT INTO item VALUES (1, 'a3c2e1f0a3c2e1f0a3c2e1f0a3c2e1f0', '{\"a\": 1}', "
        "'1970-01-02 03:00:00.000000', '2024-05-01 10:00:00.000000', 'small', 9.99, 1);"
    )
    plan, profile = _resolve(db)
    assert plan is not None
    item = plan.tables["item"]
    assert dict(item.cast) == {
        "uid": "uuid",
        "doc": "jsonb",
        "wait": "interval",
        "seen": "timestamp",
        "kind": "varchar(6)",
        "price": "numeric(10,2)",
        "live": "boolean",
    }
    assert [(s.name, s.options) for s in item.columns["wait"].specs] == [
        ("interval", {"epoch_offset": True})
    ]
    assert profile.label == "SQLAlchemy (Alembic)" and profile.revision == "3f2a1b"


def test_a_sqlalchemy_database_migrates_its_intervals_and_uuids(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);"
        "CREATE TABLE item (id INTEGER NOT NULL PRIMARY KEY, uid CHAR(32) NOT NULL, "
        "wait DATETIME, kind VARCHAR(6) NOT NULL, price NUMERIC(10, 2), "
        "CONSTRAINT kind_ck CHECK (kind IN ('small', 'large')));"
        "INSERT INTO item VALUES (1, 'a3c2e1f0a3c2e1f0a3c2e1f0a3c2e1f0', "
        "'1970-01-02 03:00:00.000000', 'small', 9.99);"
        "INSERT INTO item VALUES (2, 'b3c2e1f0a3c2e1f0a3c2e1f0a3c2e1f0', "
        "'1969-12-31 23:59:59.500000', 'large', NULL);"
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path))

    assert report.exit_code() == 0, report.as_dict()
    assert report.verify is not None and report.verify["ok"]
    assert pg.query(
        "SELECT uid::text, wait = interval '1 day 3 hours', kind, price::text FROM item ORDER BY id"
    ) == [
        ("a3c2e1f0-a3c2-e1f0-a3c2-e1f0a3c2e1f0", True, "small", "9.99"),
        ("b3c2e1f0-a3c2-e1f0-a3c2-e1f0a3c2e1f0", False, "large", None),
    ]
    assert pg.query("SELECT wait FROM item WHERE id = 2") == [(-dt.timedelta(seconds=0.5),)]
    assert _types(pg, "item")["kind"] == "character varying(6)"


def test_rails_profile_reads_t_and_f_booleans_and_microsecond_datetimes(make_db: MakeDb) -> None:
    db = make_db(
        'CREATE TABLE "schema_migrations" ("version" varchar NOT NULL PRIMARY KEY);'
        "INSERT INTO schema_migrations VALUES ('20240101000000'), ('20240301000000');"
        'CREATE TABLE "ar_internal_metadata" ("key" varchar NOT NULL PRIMARY KEY, '
        '"value" varchar, "created_at" datetime(6) NOT NULL, "updated_at" datetime(6) NOT NULL);'
        'CREATE TABLE "posts" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, '
        '"published" boolean DEFAULT 0, "settings" json, "created_at" datetime(6) NOT NULL);'
        "INSERT INTO posts VALUES (1, 't', '{}', '2024-01-01 10:00:00.123456');"
    )
    plan, profile = _resolve(db)
    assert plan is not None
    posts = plan.tables["posts"]
    assert dict(posts.cast) == {
        "published": "boolean",
        "settings": "jsonb",
        "created_at": "timestamp(6)",
    }
    assert posts.columns["published"].chain("t") is True
    assert posts.columns["published"].chain(0) is False
    assert profile.revision == "20240301000000"
    # Loading data only, the ORM's own migration rows on PostgreSQL win.
    _, profile = _resolve(db, data_only=True)
    assert set(profile.skipped) == {"schema_migrations", "ar_internal_metadata"}


def test_no_profile_applies_to_a_plain_database_or_with_profile_none(make_db: MakeDb) -> None:
    plain = make_db("CREATE TABLE t (id INTEGER PRIMARY KEY, at DATETIME);")
    user = parse_plan('[tables.t]\ncast = { at = "text" }\n')
    for path, choice in ((plain, "auto"), (_prisma_db(make_db), "none")):
        src = open_readonly(path)
        try:
            assert resolve(choice, src, discover(src), user) == (user, None)
        finally:
            src.close()


def test_a_named_profile_applies_without_its_bookkeeping_table(make_db: MakeDb) -> None:
    db = make_db('CREATE TABLE "Event" ("id" INTEGER PRIMARY KEY, "at" DATETIME NOT NULL);')
    plan, profile = _resolve(db, choice="prisma")
    assert plan is not None and plan.tables["Event"].cast["at"] == "timestamp(3)"
    assert profile.found is None and profile.revision is None


def test_an_unknown_profile_is_a_usage_error(make_db: MakeDb) -> None:
    src = open_readonly(make_db("CREATE TABLE t (id INTEGER PRIMARY KEY);"))
    try:
        with pytest.raises(UsageError, match=r"not a profile.*auto, none, django"):
            resolve("hibernate", src, discover(src), None)
    finally:
        src.close()


# --- the user's plan over the profile ------------------------------------------------------


def test_the_users_plan_wins_where_it_names_a_column_and_the_profile_fills_the_rest(
    make_db: MakeDb,
) -> None:
    user = parse_plan(
        '[tables.User]\ncast = { createdAt = "text" }\nrename = { email = "mail" }\n'
        '[tables.Post.columns.title]\ntransforms = ["strip"]\n',
        origin="mine.toml",
    )
    plan, profile = _resolve(_prisma_db(make_db), user)
    assert plan is not None
    u = plan.tables["User"]
    assert u.cast["createdAt"] == "text" and "createdAt" not in u.columns  # the user's
    assert u.cast["updatedAt"] == "timestamp(3)" and "updatedAt" in u.columns  # the profile's
    assert dict(u.rename) == {"email": "mail"}
    assert [s.name for s in plan.tables["Post"].columns["title"].specs] == ["strip"]
    assert plan.tables["Post"].cast["publishedAt"] == "timestamp(3)"
    assert plan.origin == "mine.toml over the Prisma profile"
    # What the report says was applied leaves out what the user decided.
    assert not any(line.startswith("User.createdAt") for line in profile.lines())
    # The merged plan is text that reads back as the same plan (run.json keeps it).
    again = parse_plan(plan.text)
    assert dict(again.tables["User"].cast) == dict(u.cast)


def test_a_typo_in_the_users_plan_is_named_against_the_users_file(make_db: MakeDb) -> None:
    user = parse_plan("[tables.Usr]\nskip = true\n", origin="mine.toml")
    with pytest.raises(PlanError, match=r"no such table.*mine\.toml, line 1"):
        _resolve(_prisma_db(make_db), user)


def test_the_users_skip_false_loads_a_bookkeeping_table_the_profile_would_skip(
    make_db: MakeDb,
) -> None:
    user = parse_plan("[tables._prisma_migrations]\nskip = false\n")
    plan, profile = _resolve(_prisma_db(make_db), user, data_only=True)
    assert plan is not None and not plan.tables["_prisma_migrations"].skip
    assert not profile.skipped


def test_plans_dump_to_toml_that_reads_back_the_same() -> None:
    raw = {
        "description": 'odd "text"\n\x7f\x01 ü',
        "tables": {
            "a b": {
                "cast": {"x.y": "numeric(10, 2)"},
                "drop": ["z"],
                "add": {"n": {"type": "text", "default": 1.5}},
                "columns": {"c": {"transforms": ["strip", {"map": {"values": {"1": "x"}}}]}},
            }
        },
    }
    text = dump_plan(raw)
    assert tomllib.loads(text) == raw
    base = parse_plan('[tables.t]\ncast = { a = "uuid", b = "jsonb" }\nskip = true\n')
    over = parse_plan('[tables.t]\nskip = false\ndrop = ["a"]\n')
    merged = merge_plans(base, over, "m")
    assert dict(merged.tables["t"].cast) == {"b": "jsonb"} and not merged.tables["t"].skip


# --- runs ----------------------------------------------------------------------------------


def test_a_prisma_database_migrates_with_every_row_and_its_clock_default(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    report = migrate(_prisma_db(make_db), pg.target, _opts(pg, tmp_path))

    assert report.exit_code() == 0, report.as_dict()
    assert (report.rows_loaded, report.rows_rejected) == (5, 0)
    assert report.verify is not None and report.verify["ok"]
    assert _types(pg, "User") == {
        "id": "integer",
        "email": "text",
        "active": "boolean",
        "createdAt": "timestamp(3) without time zone",
        "updatedAt": "timestamp(3) without time zone",
        "balance": "numeric(65,30)",
        "views": "bigint",
        "meta": "jsonb",
    }
    assert pg.query('SELECT id, "createdAt", active FROM "User" ORDER BY id') == [
        (1, dt.datetime(2024, 3, 1, 12, 34, 56, 789_000), True),
        (2, dt.datetime(2024, 3, 1, 10, 0), False),
    ]
    # DEFAULT CURRENT_TIMESTAMP is kept on the transformed column: the app's insert that
    # leaves it out gets the time now (UTC, as Prisma reads it).
    (row,) = pg.query(
        'INSERT INTO "User" (email, "updatedAt") VALUES (%s, now()) RETURNING "createdAt"',
        ("new@example.com",),
    )
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert abs(row[0] - now) < dt.timedelta(minutes=1)
    assert not any("createdAt" in c for c in report.behaviour_changes)
    # Said on screen (the summary) and in report.json.
    data = json.loads((tmp_path / "run" / "report.json").read_text())
    assert data["profile"]["summary"].startswith("Prisma profile applied: ")
    html = (tmp_path / "run" / "report.html").read_text()
    assert "ORM profile" in html and "Prisma profile applied" in html
    # Later commands read the same plan back from the run directory.
    _, opts = read_run_file(tmp_path / "run")
    assert opts.profile == "none" and opts.plan is not None
    assert opts.plan.tables["User"].cast["createdAt"] == "timestamp(3)"


def test_the_staged_commands_apply_the_profile_once_and_verify_it(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    # export -> transform -> load -> verify, as migrate runs against a real server.
    opts = _opts(pg, tmp_path, keep_artifacts=True)
    report = migrate(_prisma_db(make_db), pg.target, opts)

    assert report.exit_code() == 0, report.as_dict()
    assert report.verify is not None and report.verify["ok"]
    assert report.profile is not None and report.profile["name"] == "prisma"
    assert pg.query('SELECT "publishedAt" FROM "Post" ORDER BY id') == [
        (dt.datetime(2024, 3, 2, 0, 0, 0, 1000),),
        (None,),
    ]
    # The clock default of the transformed column is kept on this path too.
    (default,) = pg.query(
        "SELECT column_default FROM information_schema.columns WHERE table_schema = %s "
        "AND table_name = 'User' AND column_name = 'createdAt'",
        (pg.schema,),
    )
    assert "CURRENT_TIMESTAMP" in str(default[0]).upper()


def test_without_the_profile_prisma_dates_are_rejected(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    report = migrate(_prisma_db(make_db), pg.target, _opts(pg, tmp_path, profile="none"))
    assert report.rows_rejected > 0 and report.profile is None


@pytest.mark.parametrize("truncate", [False, True])
def test_data_only_into_prismas_schema_keeps_its_migration_rows(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, truncate: bool
) -> None:
    pg.execute(PRISMA_PG_DDL)
    opts = _opts(pg, tmp_path, data_only=True, truncate=truncate)
    report = migrate(_prisma_db(make_db), pg.target, opts)

    assert report.exit_code() == 0, report.as_dict()
    assert (report.rows_loaded, report.rows_rejected) == (4, 0)
    assert pg.query("SELECT id FROM _prisma_migrations") == [("pg-1",)]  # not even truncated
    assert pg.query('SELECT "createdAt" FROM "User" ORDER BY id')[0] == (
        dt.datetime(2024, 3, 1, 12, 34, 56, 789_000),
    )
    (skipped,) = [m for m in report.not_migrated if m["name"] == "_prisma_migrations"]
    assert "the ORM's own migration rows on PostgreSQL win" in skipped["reason"]
    # New rows get fresh ids past the loaded ones.
    assert pg.query(
        'INSERT INTO "User" (email, "updatedAt") VALUES (%s, now()) RETURNING id', ("n@x",)
    ) == [(3,)]


DJANGO_SQLITE = """
CREATE TABLE "django_migrations" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "app" varchar(255) NOT NULL, "name" varchar(255) NOT NULL, "applied" datetime NOT NULL);
CREATE TABLE "django_content_type" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "app_label" varchar(100) NOT NULL, "model" varchar(100) NOT NULL);
CREATE TABLE "auth_permission" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "content_type_id" integer NOT NULL REFERENCES "django_content_type" ("id")
        DEFERRABLE INITIALLY DEFERRED,
    "codename" varchar(100) NOT NULL, "name" varchar(255) NOT NULL);
CREATE TABLE "shop_note" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "content_type_id" integer NOT NULL REFERENCES "django_content_type" ("id")
        DEFERRABLE INITIALLY DEFERRED,
    "ref" char(32) NOT NULL, "data" text NOT NULL CHECK ((JSON_VALID("data") OR "data" IS NULL)),
    "done" bool NOT NULL, "at" datetime NOT NULL, "took" bigint NOT NULL,
    "ip" char(39) NULL);
INSERT INTO django_migrations VALUES (1, 'shop', '0001_initial', '2024-01-01 10:00:00');
INSERT INTO django_content_type VALUES (7, 'shop', 'note'), (9, 'auth', 'permission');
INSERT INTO auth_permission VALUES (20, 7, 'add_note', 'Can add note'),
    (21, 9, 'add_permission', 'Can add permission');
INSERT INTO shop_note VALUES (1, 7, '0123456789abcdef0123456789abcdef', '{"k": [1, 2]}', 1,
    '2024-02-03 04:05:06.123456', 90061000001, '2001:db8::1');
"""

# What Django's migrate makes (and fills: post_migrate) on PostgreSQL, other ids.
DJANGO_PG = """
CREATE TABLE "django_migrations" ("id" bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT
    AS IDENTITY, "app" varchar(255) NOT NULL, "name" varchar(255) NOT NULL,
    "applied" timestamp with time zone NOT NULL);
CREATE TABLE "django_content_type" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT
    AS IDENTITY, "app_label" varchar(100) NOT NULL, "model" varchar(100) NOT NULL);
CREATE TABLE "auth_permission" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT
    AS IDENTITY, "name" varchar(255) NOT NULL, "content_type_id" integer NOT NULL
    REFERENCES "django_content_type" ("id") DEFERRABLE INITIALLY DEFERRED,
    "codename" varchar(100) NOT NULL);
CREATE TABLE "shop_note" ("id" bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
    "content_type_id" integer NOT NULL REFERENCES "django_content_type" ("id")
        DEFERRABLE INITIALLY DEFERRED,
    "ref" uuid NOT NULL, "data" jsonb NOT NULL, "done" boolean NOT NULL,
    "at" timestamp with time zone NOT NULL, "took" interval NOT NULL, "ip" inet NULL);
INSERT INTO django_migrations (app, name, applied) VALUES
    ('shop', '0001_initial', now()), ('shop', '0002_pg_only', now());
INSERT INTO django_content_type (app_label, model) VALUES ('auth', 'permission'),
    ('shop', 'note');
INSERT INTO auth_permission (name, content_type_id, codename) VALUES
    ('Can add permission', 1, 'add_permission'), ('Can add note', 2, 'add_note');
"""


def test_data_only_into_djangos_schema_replaces_content_types_and_keeps_its_migrations(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    pg.execute(DJANGO_PG)
    report = migrate(make_db(DJANGO_SQLITE), pg.target, _opts(pg, tmp_path, data_only=True))

    assert report.exit_code() == 0, report.as_dict()
    # Django's own migration rows win ...
    assert [r[0] for r in pg.query("SELECT name FROM django_migrations ORDER BY id")] == [
        "0001_initial",
        "0002_pg_only",
    ]
    # ... and the SQLite content types and permissions, whose ids the data refers to.
    assert pg.query("SELECT id, model FROM django_content_type ORDER BY id") == [
        (7, "note"),
        (9, "permission"),
    ]
    assert pg.query("SELECT id, content_type_id FROM auth_permission ORDER BY id") == [
        (20, 7),
        (21, 9),
    ]
    assert pg.query(
        "SELECT ref::text, data->'k'->>1, done, took = interval '1 day 01:01:01.000001' "
        "FROM shop_note"
    ) == [
        ("01234567-89ab-cdef-0123-456789abcdef", "2", True, True)
    ]  # the DurationField's microseconds, by the profile's unit: never read as seconds
    assert report.verify is not None and report.verify["ok"]
    assert report.profile is not None
    summary = report.profile["summary"]
    assert "django_migrations not loaded" in summary
    assert "django_content_type, auth_permission rows replaced" in summary
    # The next content type Django adds gets a fresh id.
    assert pg.query(
        "INSERT INTO django_content_type (app_label, model) VALUES ('x', 'y') RETURNING id"
    ) == [(10,)]


def test_a_django_database_migrates_into_the_types_django_expects(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    opts = _opts(pg, tmp_path, casts={"shop_note.took": "interval"})
    report = migrate(make_db(DJANGO_SQLITE), pg.target, opts)

    assert report.exit_code() == 0, report.as_dict()
    assert report.verify is not None and report.verify["ok"]
    types = _types(pg, "shop_note")
    assert (types["ref"], types["data"], types["done"], types["at"]) == (
        "uuid",
        "jsonb",
        "boolean",
        "timestamp with time zone",
    )
    assert (types["took"], types["ip"]) == ("interval", "inet")
    assert pg.query(
        "SELECT took = interval '1 day 01:01:01.000001', host(ip) FROM shop_note "
        "WHERE data @> '{\"k\": [2]}'"
    ) == [(True, "2001:db8::1")]
    # Create mode copies the bookkeeping tables as they are.
    assert pg.query("SELECT count(*) FROM django_migrations") == [(1,)]


def test_data_only_still_refuses_a_non_empty_table_the_profile_does_not_replace(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    pg.execute(DJANGO_PG)
    pg.execute(
        "INSERT INTO shop_note (content_type_id, ref, data, done, at, took) VALUES "
        "(1, gen_random_uuid(), '{}', true, now(), '1 second')"
    )
    with pytest.raises(TargetError, match="'shop_note' is not empty"):
        migrate(make_db(DJANGO_SQLITE), pg.target, _opts(pg, tmp_path, data_only=True))
    assert pg.query("SELECT count(*) FROM django_content_type") == [(2,)]  # untouched


# --- the command line ----------------------------------------------------------------------


def test_check_shows_the_profile_and_prints_it_as_a_plan_to_edit(
    make_db: MakeDb, tmp_path: Path
) -> None:
    db = _prisma_db(make_db)
    shown = cli("check", str(db), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "profile: Prisma profile applied: " in shown.stdout
    assert "detected by _prisma_migrations" in shown.stdout
    assert '  plan: User.createdAt: cast = "timestamp(3)", transforms = ' in shown.stdout

    printed = cli("check", str(db), "--show-plan", cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    plan_file = tmp_path / "prisma.toml"
    plan_file.write_text(printed.stdout)
    assert tomllib.loads(printed.stdout)["tables"]["User"]["cast"]["meta"] == "jsonb"
    # The printed plan, edited or not, does the profile's job on its own.
    again = cli("check", str(db), "--plan", str(plan_file), "--profile", "none", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "profile:" not in again.stdout

    bare = cli("check", str(db), "--profile", "none", cwd=tmp_path)
    assert bare.returncode == 1  # the epoch milliseconds are rejected without it


def test_migrate_says_which_profile_it_applied(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = _prisma_db(make_db)
    args = ["--target", pg.dsn, "--schema", pg.schema, "--run-dir", str(tmp_path / "run")]
    result = cli("migrate", str(db), *args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "profile: Prisma profile applied: 3 columns as integer, " in result.stdout
