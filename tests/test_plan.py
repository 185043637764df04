from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from lite2pg.errors import PlanError, TransformError
from lite2pg.plan import ColumnPlan, Plan, builtin_plans, find_line, load_plan, parse_plan
from lite2pg.transforms.passwords import PasswordHasher, PasswordPolicy

# --- the built-in helpdesk plan --------------------------------------------------------


@pytest.fixture(scope="module")
def helpdesk() -> Plan:
    return load_plan("helpdesk")


def test_the_helpdesk_plan_is_built_in(helpdesk: Plan) -> None:
    assert "helpdesk" in builtin_plans()
    assert set(helpdesk.tables) == {"users", "tickets", "audit_logs"}
    assert helpdesk.schema_sql is not None and "CREATE TYPE ticket_status" in helpdesk.schema_sql


def test_the_helpdesk_plan_maps_legacy_columns_onto_the_new_schema(helpdesk: Plan) -> None:
    users = helpdesk.table("users")
    assert users.target_columns(
        ["id", "username", "email", "password", "role", "is_active", "created_at"]
    ) == ("id", "username", "passwordHash", "role", "created_at")
    tickets = helpdesk.table("tickets")
    assert tickets.target_columns(
        [
            "id",
            "title",
            "description",
            "status",
            "priority",
            "created_by",
            "assigned_to",
            "created_at",
            "updated_at",
        ]
    ) == ("id", "title", "description", "status", "priority", "created_by", "created_at")
    logs = helpdesk.table("audit_logs")
    assert logs.target_columns(
        ["id", "action", "user_id", "ticket_id", "timestamp", "details"]
    ) == ("id", "action", "user_id", "ticket_id", "timestamp")


def test_the_helpdesk_plan_hashes_passwords_and_marks_them_secret(helpdesk: Plan) -> None:
    users = helpdesk.table("users")
    assert users.secret_columns == {"password"}
    assert users.is_secret("password") and not users.is_secret("role")
    column = users.columns["password"]
    assert column.password == PasswordPolicy(empty="unusable")
    assert column.before_hash("pw") == "pw"
    unusable = column.chain("")
    assert isinstance(unusable, str) and unusable.startswith("!")


def test_the_helpdesk_plan_nulls_orphans(helpdesk: Plan) -> None:
    assert helpdesk.table("audit_logs").on_orphan(["user_id"]) == "null"
    assert helpdesk.table("audit_logs").on_orphan(["ticket_id"]) == "null"
    assert helpdesk.table("tickets").on_orphan(["created_by"]) == "null"
    assert helpdesk.table("users").on_orphan(["anything"]) == "reject"


def outcome(column: ColumnPlan, value: object) -> object:
    try:
        return column.chain(value)
    except TransformError as exc:
        return exc


def test_the_helpdesk_plan_cleans_every_legacy_role(helpdesk: Plan) -> None:
    role = helpdesk.table("users").columns["role"]
    legacy = {
        "admin": "admin", "Admin": "admin", "ADMIN": "admin", " administrator": "admin",
        "agent": "agent", "Agent": "agent", "support": "agent", "staff": "agent",
        "user": "customer", "customer": "customer", "Customer ": "customer", None: "customer",
    }  # fmt: skip
    for value, expected in legacy.items():
        assert role.chain(value) == expected, value
    assert isinstance(outcome(role, "root"), TransformError)


def test_the_helpdesk_plan_cleans_every_legacy_status(helpdesk: Plan) -> None:
    status = helpdesk.table("tickets").columns["status"]
    legacy = {
        "open": "open", "Open": "open", "OPEN": "open", " open ": "open", "new": "open",
        "in progress": "in_progress", "In-Progress": "in_progress", "in_progress": "in_progress",
        "wip": "in_progress", "pending": "pending", "waiting": "pending", "on hold": "pending",
        "resolved": "resolved", "fixed": "resolved", "closed": "closed", "Closed": "closed",
        "done": "closed",
    }  # fmt: skip
    for value, expected in legacy.items():
        assert status.chain(value) == expected, value
    assert str(outcome(status, "???")) == "map: unknown value '???'"
    assert str(outcome(status, None)) == "required: value is NULL"


def test_the_helpdesk_plan_cleans_every_legacy_priority(helpdesk: Plan) -> None:
    priority = helpdesk.table("tickets").columns["priority"]
    legacy = {
        "low": "low", "medium": "medium", "high": "high", "urgent": "urgent", "LOW": "low",
        "Med": "medium", "1": "low", "2": "medium", "3": "high", "4": "urgent", 4: "urgent",
        None: "medium",
    }  # fmt: skip
    for value, expected in legacy.items():
        assert priority.chain(value) == expected, value


@pytest.mark.parametrize(("table", "column"), [
    ("users", "created_at"), ("tickets", "created_at"), ("audit_logs", "timestamp"),
])  # fmt: skip
def test_the_helpdesk_plan_reads_every_legacy_datetime(
    helpdesk: Plan, table: str, column: str
) -> None:
    chain = helpdesk.table(table).columns[column].chain
    instant = dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)
    for value in (
        "2023-11-14T22:13:20Z", "2023-11-14T23:13:20+01:00", "2023-11-14T22:13:20",
        "2023-11-14 22:13:20", "2023-11-14 22:13:20.000000", 1700000000, 1700000000000,
        1700000000.0,
    ):  # fmt: skip
        assert chain(value) == instant, value
    for junk in ("", "garbage", None):
        assert isinstance(outcome(helpdesk.table(table).columns[column], junk), TransformError)


# --- the helpdesk schema on a real server ------------------------------------------------

DSN = os.environ.get("LITE2PG_TEST_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")


@pytest.fixture
def fresh_database() -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    try:
        admin = psycopg.connect(DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {DSN!r} (set LITE2PG_TEST_DSN): {exc}")
    name = f"plan_test_{secrets.token_hex(4)}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            info = admin.info
            with psycopg.connect(
                host=info.host, port=info.port, user=info.user, dbname=name, autocommit=True
            ) as conn:
                yield conn
        finally:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_the_helpdesk_schema_accepts_what_the_plan_produces(
    helpdesk: Plan, fresh_database: psycopg.Connection[tuple[object, ...]]
) -> None:
    conn = fresh_database
    assert helpdesk.schema_sql is not None
    conn.execute(helpdesk.schema_sql.encode())  # bytes: several statements, no parameters
    users, tickets, logs = (helpdesk.table(t) for t in ("users", "tickets", "audit_logs"))
    with PasswordHasher(users.columns["password"].password, workers=1) as hasher:
        [(_, password)] = list(hasher.hash_many([(1, "")]))
    conn.execute(
        'INSERT INTO users (id, username, "passwordHash", role, created_at) '
        "VALUES (%s, %s, %s, %s, %s)",
        (1, "ann", password.unwrap(), users.chain("role")(" administrator"),
         users.chain("created_at")(1700000000123)),
    )  # fmt: skip
    conn.execute(
        "INSERT INTO tickets (id, title, status, priority, created_by, created_at) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (7, "printer", tickets.chain("status")("In-Progress"), tickets.chain("priority")("4"),
         1, tickets.chain("created_at")("2023-11-14 22:13:20")),
    )  # fmt: skip
    conn.execute(
        'INSERT INTO audit_logs (action, user_id, ticket_id, "timestamp") VALUES (%s, %s, %s, %s)',
        ("close", None, 7, logs.chain("timestamp")("2023-11-14T23:13:20+01:00")),
    )
    row = conn.execute("SELECT status::text, priority FROM tickets").fetchone()
    assert row == ("in_progress", "urgent")
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        conn.execute("INSERT INTO tickets (title, status, priority, created_at) "
                     "VALUES ('x', 'wip', 'low', now())")  # fmt: skip


# --- validation ------------------------------------------------------------------------


def plan_error(text: str) -> PlanError:
    with pytest.raises(PlanError) as caught:
        parse_plan(textwrap.dedent(text), origin="test.toml")
    return caught.value


def test_an_unknown_key_is_named_with_a_suggestion_and_its_line() -> None:
    error = plan_error(
        """\
        [tables.tickets.columns.status]
        transforms = [
          { strip = true },
          { map = { values = { wip = "in_progress" }, on_unknwn = "reject" } },
        ]
        """
    )
    assert error.key == "tables.tickets.columns.status.transforms[1].map.on_unknwn"
    assert "did you mean 'on_unknown'?" in str(error)
    assert "line 4" in str(error)


def test_a_typo_in_a_table_key_is_caught() -> None:
    error = plan_error(
        """\
        [tables.users]
        target = "users"

        [tables.tickets]
        tagret = "tickets"
        """
    )
    assert error.key == "tables.tickets.tagret"
    assert str(error) == (
        "plan: tables.tickets.tagret: unknown key 'tagret'; did you mean 'target'? "
        "(test.toml, line 5)"
    )


def test_a_bad_value_names_its_key_and_line_in_array_of_tables_form() -> None:
    error = plan_error(
        """\
        [[tables.users.columns.role.transforms]]
        strip = true

        [[tables.users.columns.role.transforms]]
        [tables.users.columns.role.transforms.map]
        values = { a = "b" }
        on_unknown = "drop"
        """
    )
    assert error.key == "tables.users.columns.role.transforms[1].map.on_unknown"
    assert "'default:VALUE'" in str(error) and "line 7" in str(error)


def test_an_orphan_policy_must_be_one_of_three() -> None:
    error = plan_error(
        """\
        [tables.audit_logs.foreign_keys.user_id]
        on_orphan = "nul"
        """
    )
    assert error.key == "tables.audit_logs.foreign_keys.user_id.on_orphan"
    assert "expected 'reject' | 'null' | 'keep', got 'nul'; did you mean 'null'?" in str(error)
    assert "line 2" in str(error)


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('[tables.t]\nskip = "yes"', "tables.t.skip", "expected true or false"),
        ('[tables.t]\ndrop = ["a", "a"]', "tables.t.drop[1]", "'a' is listed twice"),
        ('[tables.t]\ndrop = ["a"]\nrename = { a = "b" }', "tables.t.rename.a", "is dropped"),
        ('[tables.t]\ndrop = ["a"]\ncast = { a = "text" }', "tables.t.cast.a", "is dropped"),
        ('[tables.t]\nrename = { a = "c", b = "c" }', "tables.t.rename.b", "also renamed"),
        ('[tables.t]\ncast = { a = "text; DROP TABLE x" }', "tables.t.cast.a", "plain type"),
        ("[tables.t]\nadd = { a = { default = 1 } }", "tables.t.add.a.type", "missing"),
        ('[tables.t]\nadd = { a = { type = "int", defualt = 1 } }', "tables.t.add.a.defualt",
         "did you mean 'default'"),
        ('[tables.t]\nrename = { a = "b" }\nadd = { b = { type = "int" } }', "tables.t.add.b",
         "already called 'b'"),
        (f'[tables.t]\ntarget = "{"x" * 64}"', "tables.t.target", "63-byte limit"),
        ('[tables.t]\nwhere = "a = = 1"', "tables.t.where", "not a valid SQLite expression"),
        ('[tables.t]\nwhere = "1); DELETE FROM t; SELECT (1"', "tables.t.where",
         "single SQLite expression"),
        ('[tables.t]\nwhere = "a = 1 --"', "tables.t.where", "not a valid SQLite expression"),
        ('[tables.a]\ntarget = "x"\n[tables.b]\ntarget = "x"', "tables.b.target",
         "'a' is also migrated into 'x'"),
        ('[tables.t.columns.a]\ntransform = ["strip"]', "tables.t.columns.a.transform",
         "did you mean 'transforms'"),
        ('[tables.t]\ndrop = ["a"]\n[tables.t.columns.a]\ntransforms = ["strip"]',
         "tables.t.columns.a", "is dropped"),
        ('[tables.t.columns.p]\ntransforms = ["hash_password", "lower"]',
         "tables.t.columns.p.transforms[0].hash_password", "must be the last transform"),
        ('[tables.t.columns.a]\ntransforms = ["map"]',
         "tables.t.columns.a.transforms[0].map.values", "missing"),
        ('[tables.t.foreign_keys."a,"]\non_orphan = "null"', 'tables.t.foreign_keys."a,"',
         "expected FK column names"),
        ('titel = "x"', "titel", "unknown key 'titel'"),
    ],
)  # fmt: skip
def test_invalid_plans_are_refused_with_the_key_at_fault(text: str, key: str, problem: str) -> None:
    error = plan_error(text)
    assert error.key == key
    assert problem in error.problem


def test_invalid_toml_is_reported_with_its_position() -> None:
    error = plan_error("[tables.t\n")
    assert "not valid TOML" in str(error) and "line 1" in str(error)


def test_a_missing_plan_file_says_what_exists(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="no such plan file or built-in plan"):
        load_plan("helpdsk")
    with pytest.raises(PlanError, match="cannot read the plan"):
        load_plan(str(tmp_path / "nope.toml"))


def test_a_plan_file_can_name_a_schema_next_to_it(tmp_path: Path) -> None:
    (tmp_path / "schema.sql").write_text("CREATE TABLE t (a int);\n")
    path = tmp_path / "my.toml"
    path.write_text(
        textwrap.dedent(
            """\
            description = "demo"
            schema = "schema.sql"

            [tables.t]
            target = "t2"
            cast = { a = "numeric(10, 2)" }
            add = { origin = { type = "text", default = "legacy" } }
            where = "a IS NOT NULL AND a > 0"

            [tables.t.columns.a]
            transforms = ["strip", { nullif = "" }, { numeric = { scale = 2 } }]

            [tables.t.foreign_keys."b,c"]
            on_orphan = "keep"
            """
        )
    )
    plan = load_plan(str(path))
    assert plan.schema_sql == "CREATE TABLE t (a int);\n"
    table = plan.table("t")
    assert table.target == "t2" and table.cast == {"a": "numeric(10, 2)"}
    assert table.add[0].name == "origin" and table.add[0].default == "legacy"
    assert table.where == "a IS NOT NULL AND a > 0"
    assert table.on_orphan(["b", "c"]) == "keep"
    assert str(table.chain("a")(" 1.5 ")) == "1.50"
    assert table.secret_columns == frozenset()
    with pytest.raises(PlanError, match=re.escape("cannot read 'gone.sql'")):
        path.write_text('schema = "gone.sql"\n')
        load_plan(str(path))


def test_the_example_in_the_plan_module_docstring_is_a_valid_plan() -> None:
    import lite2pg.plan

    doc = lite2pg.plan.__doc__ or ""
    example = textwrap.dedent(doc.split("::\n", 1)[1].split("\nTransforms:", 1)[0])
    plan = parse_plan(example, read=lambda name: f"-- {name}")
    assert plan.schema_sql == "-- helpdesk_schema.sql"
    assert plan.table("tickets").chain("status")(" WIP ") == "in_progress"
    assert plan.table("tickets").chain("priority")(None) == "medium"
    assert plan.table("users").secret_columns == {"password"}


def test_a_table_the_plan_does_not_name_is_copied_unchanged() -> None:
    table = parse_plan("").table("notes")
    assert table.target == "notes" and not table.skip
    assert table.chain("body")("  x ") == "  x "
    assert table.target_columns(["a", "b"]) == ("a", "b")


def test_skip_leaves_a_table_behind() -> None:
    assert parse_plan("[tables.sessions]\nskip = true\n").table("sessions").skip


def test_names_in_the_plan_are_checked_against_the_source() -> None:
    plan = parse_plan('[tables.users]\nrename = { passwrd = "passwordHash" }\n', origin="test.toml")
    with pytest.raises(PlanError) as caught:
        plan.check_columns("users", ["id", "password"])
    assert caught.value.key == "tables.users.rename.passwrd"
    assert "no such column of users 'passwrd'; did you mean 'password'?" in str(caught.value)
    assert "line 2" in str(caught.value)
    with pytest.raises(PlanError, match="no such table 'users'"):
        plan.check_tables(["user"])
    plan.check_tables(["users", "other"])


def test_renames_that_collide_with_a_kept_column_are_caught_against_the_source() -> None:
    plan = parse_plan('[tables.t]\nrename = { a = "b" }\n')
    with pytest.raises(PlanError, match="two target columns would be named 'b'"):
        plan.check_columns("t", ["a", "b"])


@pytest.mark.parametrize(
    ("key", "line"),
    [
        ("tables.t.columns.s.transforms[0].strip", 3),
        ("tables.t.columns.s.transforms[1].map.values.wip", 5),
        ("tables.t.columns.s.transforms[2].default", 6),
        ('tables.t.columns.s.transforms[1].map.values."in progress"', 4),
        ("tables.u.columns.r.transforms[1].map.on_unknown", 14),
        ("tables.nope", None),
    ],
)
def test_find_line_follows_the_key_path(key: str, line: int | None) -> None:
    text = textwrap.dedent(
        """\
        [tables.t.columns.s]
        transforms = [
          { strip = true },
          { map = { values = { "in progress" = "x",
            wip = "x" }, on_unknown = "keep" } },
          { default = "x" },
        ]

        [[tables.u.columns.r.transforms]]
        map = { values = { a = "b" }, on_unknown = "keep" }

        [[tables.u.columns.r.transforms]]
        [tables.u.columns.r.transforms.map]
        on_unknown = "keep"
        """
    )
    assert find_line(text, key) == line


def test_plan_messages_use_one_line_each() -> None:
    error = plan_error('[tables.t]\nwhere = "a = = 1"')
    assert "\n" not in str(error)
    assert re.search(r"\(test\.toml, line 2\)$", str(error))
