"""The built-in helpdesk plan end to end, checked in PostgreSQL against expectations the
test computes itself from the legacy SQLite file; plus the plan features it relies on:
the password cache, `where` filters and orphan policies."""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from typing import Any

import argon2
import bcrypt

from lite2pg.demo import make_legacy_helpdesk
from lite2pg.load import TableResult
from lite2pg.plan import Plan, load_plan
from lite2pg.report import RunReport
from lite2pg.run import MigrateOptions, migrate, prepare_schema

from .conftest import MakeDb, PgSchema

# The legacy -> new values, written out here rather than read from the plan, so that a
# wrong plan (or a plan the code misreads) fails the test. Keys are compared with case
# and surrounding/inner whitespace runs ignored, as the plan says it does.
STATUS = {
    "open": "open",
    "new": "open",
    "in progress": "in_progress",
    "in-progress": "in_progress",
    "in_progress": "in_progress",
    "wip": "in_progress",
    "pending": "pending",
    "waiting": "pending",
    "on hold": "pending",
    "resolved": "resolved",
    "fixed": "resolved",
    "closed": "closed",
    "done": "closed",
}
NEW_STATUSES = {"open", "in_progress", "pending", "resolved", "closed"}
ROLE = {
    "admin": "admin",
    "administrator": "admin",
    "agent": "agent",
    "support": "agent",
    "staff": "agent",
    "user": "customer",
    "customer": "customer",
}
PRIORITY = {
    "low": "low",
    "medium": "medium",
    "med": "medium",
    "high": "high",
    "urgent": "urgent",
    "1": "low",
    "2": "medium",
    "3": "high",
    "4": "urgent",
}
# The plaintexts of the hashes the generator plants (see lite2pg.demo).
KNOWN_HASHED_PLAINTEXTS = ("hunter2", "letmein2016", "password1", "Summer2017!")
OWASP_ARGON2ID = "$argon2id$v=19$m=19456,t=2,p=1$"

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_TEXT_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{6}))?(Z|[+-]\d{2}:\d{2})?"
)


def instant(value: object) -> dt.datetime | None:
    """The UTC instant a legacy timestamp means, for the formats the generator writes;
    None for a value the plan must reject ('' and garbage)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        micros = value * 1_000 if abs(value) >= 10**11 else value * 1_000_000
        return EPOCH + dt.timedelta(microseconds=micros)
    if isinstance(value, float):
        # Epoch seconds with milliseconds: the float's error (< 1 µs) rounds away.
        return EPOCH + dt.timedelta(microseconds=round(value * 1_000_000))
    if not isinstance(value, str):
        return None
    m = _TEXT_TIME.fullmatch(value)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        local = dt.datetime(year, month, day, hour, minute, second, int(m[7] or 0))
    except ValueError:  # '0000-00-00 00:00:00'
        return None
    zone = m[8]
    if zone is None or zone == "Z":
        return local.replace(tzinfo=dt.UTC)
    sign = 1 if zone[0] == "+" else -1
    offset = dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return (local - sign * offset).replace(tzinfo=dt.UTC)


def timestamp_kind(value: object) -> str:
    """Which of the generator's formats a legacy value is in."""
    if isinstance(value, int):
        return "epoch ms" if abs(value) >= 10**11 else "epoch s"
    if isinstance(value, float):
        return "epoch real"
    if value == "":
        return "empty"
    text = str(value)
    if re.fullmatch(r"\S{10}T\S{8}Z", text):
        return "iso Z"
    if re.fullmatch(r"\S{10}T\S{8}[+-]\d\d:\d\d", text):
        return "iso offset"
    if re.fullmatch(r"\S{10} \S{8}\.\d{6}", text):
        return "sql micro"
    if re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", text) and instant(text) is not None:
        return "sql"
    return "garbage"


def mapped(table: dict[str, str], value: object) -> str | None:
    """The plan's map: None for an unknown value (the row must be rejected)."""
    return table.get(" ".join(str(value).split()).casefold())


def verifies(stored: str, candidate: str) -> bool:
    """Whether `candidate` logs in against `stored` with argon2-cffi or bcrypt."""
    if stored.startswith("$argon2"):
        try:
            return argon2.PasswordHasher().verify(stored, candidate)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False
    try:
        return bcrypt.checkpw(candidate.encode(), stored.encode())
    except ValueError:  # not a bcrypt hash at all
        return False


def refuses_everything(stored: str, candidates: Iterable[str]) -> bool:
    """No verifier accepts `stored` for any candidate, whichever verifier is asked."""
    for candidate in candidates:
        try:
            argon2.PasswordHasher().verify(stored, candidate)
            return False
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            pass
        try:
            if bcrypt.checkpw(candidate.encode(), stored.encode()):
                return False
        except ValueError:
            pass
    return True


def sqlite_rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(query).fetchall()


def rejected_keys(report: RunReport, table: str) -> set[int]:
    assert report.rejects_dir is not None
    path = Path(report.rejects_dir) / f"{table}.jsonl"
    if not path.exists():
        return set()
    return {json.loads(line)["key"]["id"] for line in path.read_text().splitlines()}


def result(report: RunReport, table: str) -> TableResult:
    return next(t for t in report.tables if t.source == table)


def helpdesk_options(pg: PgSchema, run_dir: Path, plan: Plan) -> MigrateOptions:
    return MigrateOptions(
        schema=pg.schema, run_dir=run_dir, plan=plan, data_only=True, truncate=True
    )


def test_messy_helpdesk_lands_in_postgresql_exactly_as_the_plan_says(
    pg: PgSchema, tmp_path: Path
) -> None:
    db = tmp_path / "legacy.db"
    # Seed 11 at this size has every case below (checked first, so it cannot go vacuous).
    make_legacy_helpdesk(db, users=60, tickets=400, audit_logs=1200, seed=11, messy=True)
    plan = load_plan("helpdesk")
    prepare_schema(pg.target, pg.schema, plan)

    report = migrate(db, pg.target, helpdesk_options(pg, tmp_path / "run", plan))

    users = sqlite_rows(db, "SELECT id, username, password, role, created_at FROM users")
    tickets = sqlite_rows(
        db, "SELECT id, title, description, status, priority, created_by, created_at FROM tickets"
    )
    logs = sqlite_rows(db, "SELECT id, action, user_id, ticket_id, timestamp FROM audit_logs")

    # What the plan must do, computed here from the legacy rows.
    want_users: dict[int, tuple[Any, ...]] = {}
    for uid, username, _pw, role, created in users:
        new_role = "customer" if role is None else mapped(ROLE, role)
        if new_role is not None and instant(created) is not None:
            want_users[uid] = (username, new_role, instant(created))
    want_tickets: dict[int, tuple[Any, ...]] = {}
    for tid, title, description, status, priority, created_by, created in tickets:
        new_status = None if status is None else mapped(STATUS, status)
        new_priority = "medium" if priority is None else mapped(PRIORITY, priority)
        if new_status is None or new_priority is None or instant(created) is None:
            continue
        author = created_by if created_by in want_users else None  # on_orphan = "null"
        want_tickets[tid] = (title, description, new_status, new_priority, author, instant(created))
    want_logs: dict[int, tuple[Any, ...]] = {}
    for lid, action, user_id, ticket_id, at in logs:
        if instant(at) is not None:
            want_logs[lid] = (
                action,
                user_id if user_id in want_users else None,
                ticket_id if ticket_id in want_tickets else None,
                instant(at),
            )

    # The fixture has every kind of mess the plan handles.
    passwords = [pw for _, _, pw, _, _ in users]
    assert "" in passwords and None in passwords
    assert any(str(pw).startswith("$argon2") for pw in passwords)
    assert any(str(pw).startswith("$2b$") for pw in passwords)
    assert any(len(str(pw).encode()) > 72 and not str(pw).startswith("$") for pw in passwords)
    kinds = {timestamp_kind(r[-1]) for r in (*users, *tickets, *logs)}
    assert kinds == {
        "sql", "sql micro", "iso Z", "iso offset", "epoch s", "epoch ms", "epoch real",
        "empty", "garbage",
    }  # fmt: skip
    assert len(want_users) < len(users) and len(want_tickets) < len(tickets)
    assert any(
        t[5] is not None and t[0] in want_tickets and t[5] not in want_users for t in tickets
    )
    assert any(r[2] is not None and r[0] in want_logs and r[2] not in want_users for r in logs)
    assert any(r[3] is not None and r[0] in want_logs and r[3] not in want_tickets for r in logs)

    # Rows: ids preserved, values mapped and converted, orphans NULL, the rest rejected.
    got_users = {r[0]: r[1:] for r in pg.query("SELECT id, username, role, created_at FROM users")}
    got_tickets = {
        r[0]: r[1:]
        for r in pg.query(
            "SELECT id, title, description, status::text, priority, created_by, created_at "
            "FROM tickets"
        )
    }
    got_logs = {
        r[0]: r[1:]
        for r in pg.query('SELECT id, action, user_id, ticket_id, "timestamp" FROM audit_logs')
    }
    assert got_users == want_users
    assert got_tickets == want_tickets
    assert got_logs == want_logs
    assert {t[2] for t in got_tickets.values()} <= NEW_STATUSES
    for table, legacy, want in (
        ("users", users, want_users),
        ("tickets", tickets, want_tickets),
        ("audit_logs", logs, want_logs),
    ):
        assert rejected_keys(report, table) == {r[0] for r in legacy} - set(want)

    # Counts reconcile, per table and with PostgreSQL.
    for table, legacy in (("users", users), ("tickets", tickets), ("audit_logs", logs)):
        res = result(report, table)
        assert res.read == len(legacy) == res.loaded + res.rejected + res.filtered
        assert res.filtered == 0
        assert pg.query(f"SELECT count(*) FROM {table}") == [(res.loaded,)]
    assert report.exit_code() == 1  # rows were rejected, and the run says so

    # Passwords: new hashes verify, legacy hashes are kept, no password -> unusable.
    stored = dict(pg.query('SELECT id, "passwordHash" FROM users'))
    plaintexts = [pw for pw in passwords if pw and not pw.startswith("$")]
    unusable: list[str] = []
    way = {"hashed": 0, "cached": 0, "kept": 0, "empty": 0, "rejected": 0}
    for uid, _username, pw, _role, _created in users:
        if uid not in want_users:
            continue
        value = stored[uid]
        if pw is None or pw == "":
            assert value
            assert refuses_everything(value, ["", value, *plaintexts, *KNOWN_HASHED_PLAINTEXTS])
            unusable.append(value)
            way["empty"] += 1
        elif pw.startswith("$"):
            assert value == pw
            assert any(verifies(value, p) for p in KNOWN_HASHED_PLAINTEXTS)
            way["kept"] += 1
        else:
            assert value.startswith(OWASP_ARGON2ID)
            assert argon2.PasswordHasher().verify(value, pw)
            way["hashed"] += 1
    assert unusable and len(set(unusable)) == len(unusable)
    assert result(report, "users").passwords == way


def test_a_rerun_hashes_nothing_and_a_changed_password_is_the_only_one_hashed(
    pg: PgSchema, tmp_path: Path
) -> None:
    db = tmp_path / "legacy.db"
    make_legacy_helpdesk(db, users=30, tickets=10, audit_logs=10, seed=5)
    plan = load_plan("helpdesk")
    prepare_schema(pg.target, pg.schema, plan)
    run_dir = tmp_path / "run"

    first = result(migrate(db, pg.target, helpdesk_options(pg, run_dir, plan)), "users")
    second = result(migrate(db, pg.target, helpdesk_options(pg, run_dir, plan)), "users")

    assert first.passwords["hashed"] > 0
    assert second.passwords["hashed"] == 0
    assert second.passwords["cached"] == first.passwords["hashed"]

    uid, old = sqlite_rows(
        db, "SELECT id, password FROM users WHERE password NOT LIKE '$%' AND password <> '' LIMIT 1"
    )[0]
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE users SET password = 'a new secret, 2024' WHERE id = ?", (uid,))
    third = result(migrate(db, pg.target, helpdesk_options(pg, run_dir, plan)), "users")

    assert third.passwords["hashed"] == 1
    assert third.passwords["cached"] == first.passwords["hashed"] - 1
    [(value,)] = pg.query('SELECT "passwordHash" FROM users WHERE id = %s', (uid,))
    assert verifies(value, "a new secret, 2024")
    assert not verifies(value, old)


def test_where_filter_counts_the_rows_it_leaves_behind_as_filtered_not_rejected(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER);"
        "INSERT INTO items VALUES (1, 'a', 5), (2, 'b', 0), (3, 'c', -1), (4, 'd', 2);"
    )
    plan_file = tmp_path / "plan.toml"
    plan_file.write_text('[tables.items]\nwhere = "qty > 0"\n')

    report = migrate(
        db,
        pg.target,
        MigrateOptions(schema=pg.schema, run_dir=tmp_path / "run", plan=load_plan(str(plan_file))),
    )

    items = result(report, "items")
    assert (items.read, items.loaded, items.rejected, items.filtered) == (4, 2, 0, 2)
    assert pg.query("SELECT id FROM items ORDER BY id") == [(1,), (4,)]
    assert report.rejects_dir is None
    assert report.exit_code() == 0
    assert "2 filtered out" in report.verdict()


def test_children_of_rows_a_where_filter_left_behind_are_orphans(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    # Row 3's qty is NULL: `qty > 0` is NULL there, so the filter leaves it behind too.
    db = make_db(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, qty INTEGER);"
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, item_id INTEGER REFERENCES items(id));"
        "INSERT INTO items VALUES (1, 5), (2, 0), (3, NULL);"
        "INSERT INTO notes VALUES (10, 1), (11, 2), (12, 3);"
    )
    plan_file = tmp_path / "plan.toml"
    plan_file.write_text(
        '[tables.items]\nwhere = "qty > 0"\n\n'
        '[tables.notes.foreign_keys.item_id]\non_orphan = "null"\n'
    )

    report = migrate(
        db,
        pg.target,
        MigrateOptions(schema=pg.schema, run_dir=tmp_path / "run", plan=load_plan(str(plan_file))),
    )

    assert result(report, "items").filtered == 2
    assert pg.query("SELECT id, item_id FROM notes ORDER BY id") == [
        (10, 1),
        (11, None),
        (12, None),
    ]
    assert report.exit_code() == 0, report.as_dict()


ORPHANS_DDL = (
    "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);"
    "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), body TEXT);"
    "INSERT INTO users VALUES (1, 'ann'), (2, 'bob');"
    "INSERT INTO posts VALUES (10, 1, 'fine'), (11, 99, 'orphan'), (12, NULL, 'no author');"
)


def migrate_with_orphan_policy(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, policy: str
) -> RunReport:
    plan_file = tmp_path / "plan.toml"
    plan_file.write_text(f'[tables.posts.foreign_keys.user_id]\non_orphan = "{policy}"\n')
    return migrate(
        make_db(ORPHANS_DDL),
        pg.target,
        MigrateOptions(schema=pg.schema, run_dir=tmp_path / "run", plan=load_plan(str(plan_file))),
    )


def fk_validated(pg: PgSchema) -> list[tuple[Any, ...]]:
    return pg.query(
        "SELECT convalidated FROM pg_constraint WHERE contype = 'f' "
        "AND conrelid = 'posts'::regclass"
    )


def test_on_orphan_reject_rejects_the_orphan_row_naming_the_fk_column(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    report = migrate_with_orphan_policy(make_db, pg, tmp_path, "reject")

    posts = result(report, "posts")
    assert (posts.read, posts.loaded, posts.rejected) == (3, 2, 1)
    assert pg.query("SELECT id, user_id FROM posts ORDER BY id") == [(10, 1), (12, None)]
    assert report.rejects_dir is not None
    [record] = [
        json.loads(line)
        for line in (Path(report.rejects_dir) / "posts.jsonl").read_text().splitlines()
    ]
    assert record["key"] == {"id": 11}
    assert record["column"] == "user_id"
    assert "user_id" in record["reason"] and "orphan" in record["reason"]
    assert fk_validated(pg) == [(True,)]
    assert report.exit_code() == 1


def test_on_orphan_null_keeps_the_row_with_a_null_reference(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    report = migrate_with_orphan_policy(make_db, pg, tmp_path, "null")

    posts = result(report, "posts")
    assert (posts.read, posts.loaded, posts.rejected) == (3, 3, 0)
    assert pg.query("SELECT id, user_id FROM posts ORDER BY id") == [
        (10, 1),
        (11, None),
        (12, None),
    ]
    assert any("1 orphan" in n and "NULL" in n for n in posts.notes)
    assert fk_validated(pg) == [(True,)]
    assert report.exit_code() == 0


def test_on_orphan_keep_keeps_the_reference_and_reports_the_fk_as_not_valid(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    report = migrate_with_orphan_policy(make_db, pg, tmp_path, "keep")

    posts = result(report, "posts")
    assert (posts.read, posts.loaded, posts.rejected) == (3, 3, 0)
    assert pg.query("SELECT id, user_id FROM posts ORDER BY id") == [
        (10, 1),
        (11, 99),
        (12, None),
    ]
    [fks] = [p for p in report.phases if p.name == "foreign keys"]
    assert fks.failed == 1
    assert any("1 orphan row" in n and "NOT VALID" in n for n in fks.notes)
    assert fk_validated(pg) == [(False,)]
    assert report.problems == 1
    assert report.exit_code() == 1
