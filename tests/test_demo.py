from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import argon2
import bcrypt
import pytest

from lite2pg import demo
from lite2pg.demo import (
    CANONICAL_PRIORITIES,
    CANONICAL_ROLES,
    CANONICAL_STATUSES,
    HelpdeskCounts,
    make_legacy_helpdesk,
)
from lite2pg.errors import SourceError

SQL_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


@pytest.fixture(scope="module")
def clean_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "clean.db"
    make_legacy_helpdesk(path, messy=False)
    return path


@pytest.fixture(scope="module")
def messy_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "messy.db"
    make_legacy_helpdesk(path)
    return path


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchall()


def column(path: Path, sql: str) -> list[object]:
    return [row[0] for row in rows(path, sql)]


def dump(path: Path) -> Iterator[str]:
    with closing(sqlite3.connect(path)) as conn:
        yield from conn.iterdump()


@pytest.mark.parametrize("messy", [False, True])
def test_counts_match_what_was_asked(tmp_path: Path, messy: bool) -> None:
    path = tmp_path / "h.db"
    counts = make_legacy_helpdesk(path, users=30, tickets=70, audit_logs=110, messy=messy)
    assert counts == HelpdeskCounts(users=30, tickets=70, audit_logs=110)
    assert counts.as_dict() == {"users": 30, "tickets": 70, "audit_logs": 110}
    for table, expected in counts.as_dict().items():
        assert column(path, f"SELECT count(*) FROM {table}") == [expected]


def test_empty_database_has_the_schema_and_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    assert make_legacy_helpdesk(path, users=0, tickets=0, audit_logs=0) == HelpdeskCounts(0, 0, 0)
    assert column(path, "SELECT count(*) FROM users") == [0]


def test_negative_counts_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=">= 0"):
        make_legacy_helpdesk(tmp_path / "h.db", tickets=-1)
    assert not (tmp_path / "h.db").exists()


@pytest.mark.parametrize("messy", [False, True])
def test_same_seed_gives_identical_content(tmp_path: Path, messy: bool) -> None:
    a, b, c = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "c.db"
    make_legacy_helpdesk(a, users=50, tickets=200, audit_logs=400, seed=7, messy=messy)
    make_legacy_helpdesk(b, users=50, tickets=200, audit_logs=400, seed=7, messy=messy)
    make_legacy_helpdesk(c, users=50, tickets=200, audit_logs=400, seed=8, messy=messy)
    assert list(dump(a)) == list(dump(b))
    assert list(dump(a)) != list(dump(c))


def test_refuses_to_overwrite_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    path.write_bytes(b"precious")
    with pytest.raises(SourceError, match="already exists") as caught:
        make_legacy_helpdesk(path)
    assert caught.value.path == str(path)
    assert path.read_bytes() == b"precious"


def test_schema_is_exactly_the_legacy_schema(clean_db: Path) -> None:
    stored = column(clean_db, "SELECT sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
    expected = [s.strip() for s in demo.SCHEMA.split(";") if s.strip()]
    assert stored == expected


def test_finished_file_is_in_delete_journal_mode(clean_db: Path) -> None:
    assert column(clean_db, "PRAGMA journal_mode") == ["delete"]


def test_clean_ids_are_dense_and_foreign_keys_valid(clean_db: Path) -> None:
    for table in ("users", "tickets", "audit_logs"):
        assert rows(clean_db, f"SELECT min(id), max(id) = count(*) FROM {table}") == [(1, 1)]
    assert rows(clean_db, "PRAGMA foreign_key_check") == []
    assert column(clean_db, "SELECT count(*) FROM tickets WHERE assigned_to IS NULL")[0] != 0


def test_clean_values_fit_their_declared_types(clean_db: Path) -> None:
    checks = {
        "users": "typeof(username) = 'text' AND typeof(email) IN ('text', 'null')"
        " AND typeof(password) = 'text' AND password GLOB '[A-Za-z0-9]*'"
        " AND password NOT GLOB '*[^A-Za-z0-9]*' AND length(password) BETWEEN 8 AND 16"
        f" AND role IN {CANONICAL_ROLES} AND typeof(is_active) = 'integer'"
        " AND is_active IN (0, 1) AND typeof(created_at) = 'text'",
        "tickets": "typeof(title) = 'text'"
        " AND (description IS NULL OR length(description) BETWEEN 50 AND 400)"
        f" AND status IN {CANONICAL_STATUSES} AND priority IN {CANONICAL_PRIORITIES}"
        " AND typeof(created_by) = 'integer' AND typeof(assigned_to) IN ('integer', 'null')"
        " AND typeof(created_at) = 'text' AND updated_at >= created_at",
        "audit_logs": "typeof(action) = 'text' AND typeof(user_id) = 'integer'"
        " AND typeof(ticket_id) IN ('integer', 'null') AND typeof(timestamp) = 'text'"
        " AND typeof(details) IN ('text', 'null')",
    }
    for table, condition in checks.items():
        assert column(clean_db, f"SELECT count(*) FROM {table} WHERE NOT ({condition})") == [0]


def test_clean_timestamps_are_sql_text_between_2015_and_2025(clean_db: Path) -> None:
    values = column(
        clean_db,
        "SELECT created_at FROM users UNION ALL SELECT created_at FROM tickets"
        " UNION ALL SELECT updated_at FROM tickets UNION ALL SELECT timestamp FROM audit_logs",
    )
    assert all(isinstance(v, str) and SQL_TIME.fullmatch(v) for v in values)
    assert min(map(str, values)) >= "2015-01-01 00:00:00"
    assert max(map(str, values)) <= "2025-12-31 23:59:59"


def test_clean_text_holds_what_csv_and_encodings_trip_over(clean_db: Path) -> None:
    texts = [str(v) for v in column(clean_db, "SELECT description FROM tickets") if v]
    for needle in (",", '"', "'", "\n", "\r\n", "é", "ü", "🙂"):
        assert any(needle in t for t in texts), needle
    assert column(clean_db, "SELECT count(*) FROM tickets WHERE description IS NULL")[0] != 0


def test_clean_users_have_unique_usernames_ignoring_case(clean_db: Path) -> None:
    assert column(clean_db, "SELECT count(DISTINCT lower(username)) FROM users") == [200]


def test_messy_spells_roles_statuses_and_priorities_many_ways(messy_db: Path) -> None:
    roles = set(column(messy_db, "SELECT DISTINCT role FROM users"))
    assert set(CANONICAL_ROLES) | {None} <= roles
    assert len(roles - set(CANONICAL_ROLES) - {None}) >= 4
    statuses = set(column(messy_db, "SELECT DISTINCT status FROM tickets"))
    assert {"open", "Open", " open ", "in progress", "In-Progress", "wip", "done"} <= statuses
    assert statuses & {"???", "reopened?", "TBD"}
    priorities = set(column(messy_db, "SELECT DISTINCT priority FROM tickets"))
    assert {"low", "LOW", "Med", "1", "4", None} <= priorities


def test_messy_is_active_mixes_integers_words_and_null(messy_db: Path) -> None:
    values = set(column(messy_db, "SELECT DISTINCT is_active FROM users"))
    assert {0, 1, "yes", "true", "Y", None} <= values


def test_messy_dates_mix_formats_in_one_column(messy_db: Path) -> None:
    values = column(
        messy_db,
        "SELECT created_at FROM tickets UNION ALL SELECT updated_at FROM tickets"
        " UNION ALL SELECT timestamp FROM audit_logs",
    )
    texts = [v for v in values if isinstance(v, str)]
    epochs = [v for v in values if isinstance(v, int)]
    assert any(isinstance(v, float) for v in values)
    assert any(v < 10**10 for v in epochs) and any(v > 10**12 for v in epochs)
    assert any(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", v) for v in texts)
    assert any(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", v) for v in texts)
    assert any(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", v) for v in texts)
    assert "" in texts
    assert any(v and not v[0].isdigit() for v in texts)
    # The mess is a minority: most values are the app's own format.
    assert sum(1 for v in texts if SQL_TIME.fullmatch(v)) > 0.6 * len(values)


def test_messy_passwords_include_hashes_empties_and_overlong(messy_db: Path) -> None:
    passwords = column(messy_db, "SELECT password FROM users")
    texts = [p for p in passwords if isinstance(p, str)]
    assert None in passwords and "" in texts
    assert any(p.startswith("$argon2id$") for p in texts)
    assert any(p.startswith("$2b$") for p in texts)
    assert sum(1 for p in texts if len(p.encode()) > 72 and not p.isascii()) >= 2
    assert sum(1 for p in texts if p and not p.startswith("$")) > 0.8 * len(passwords)


def test_embedded_hashes_are_real_hashes_of_known_plaintexts() -> None:
    hasher = argon2.PasswordHasher()
    assert hasher.verify(demo._ARGON2_HASHES[0], "hunter2")
    assert hasher.verify(demo._ARGON2_HASHES[1], "letmein2016")
    assert bcrypt.checkpw(b"password1", demo._BCRYPT_HASHES[0].encode())
    assert bcrypt.checkpw(b"Summer2017!", demo._BCRYPT_HASHES[1].encode())


def test_messy_has_orphans_in_audit_logs_and_tickets(messy_db: Path) -> None:
    broken = rows(messy_db, "PRAGMA foreign_key_check")
    by_parent = {(table, parent) for table, _, parent, _ in broken}
    assert {("audit_logs", "users"), ("audit_logs", "tickets"), ("tickets", "users")} <= by_parent
    orphan_logs = {rowid for table, rowid, _, _ in broken if table == "audit_logs"}
    assert 0.003 * 8000 < len(orphan_logs) < 0.03 * 8000


def test_messy_deleted_users_leave_holes_in_ids(messy_db: Path) -> None:
    assert rows(messy_db, "SELECT count(*), max(id) > count(*) FROM users") == [(200, 1)]


def test_messy_usernames_include_twins_differing_only_in_case(messy_db: Path) -> None:
    twins = column(
        messy_db,
        "SELECT group_concat(username, '|') FROM users GROUP BY lower(username)"
        " HAVING count(*) > 1 ORDER BY 1",
    )
    assert {frozenset(str(t).split("|")) for t in twins} == {
        frozenset({"alice", "Alice"}),
        frozenset({"bob.smith", "Bob.Smith"}),
    }
