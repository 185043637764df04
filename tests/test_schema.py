"""SQLite defaults -> PostgreSQL DEFAULT (pure: no database)."""

from __future__ import annotations

import pytest
from psycopg import sql

from lite2pg.coerce import BIGINT, BOOLEAN, DOUBLE, TEXT, TIMESTAMPTZ, PgType
from lite2pg.schema import translate_default


@pytest.mark.parametrize(
    ("default", "declared", "expected"),
    [
        ("- 1", "INTEGER", -1),
        ("(-2.5)", "INTEGER", -2.5),
        ("'0'", "TEXT", 0),  # a TEXT column cast to bigint: the text '0' is the number 0
        ("TRUE", "INTEGER", 1),
    ],
)
def test_constants_keep_their_value_and_sign(default: str, declared: str, expected: object) -> None:
    pg = DOUBLE if isinstance(expected, float) else BIGINT
    assert translate_default(default, pg, declared=declared) == (sql.Literal(expected), "")


def test_true_in_a_boolean_column_is_true() -> None:
    assert translate_default("TRUE", BOOLEAN, declared="BOOLEAN") == (sql.Literal(True), "")


@pytest.mark.parametrize(
    ("default", "reason"),
    [
        ("(datetime('now', 'localtime'))", "'localtime' is the local time of the app's host"),
        ("strftime('%w', 'now')", "strftime format '%w' not translated"),
        ("datetime('now', '+1 day')", "modifier '+1 day' not translated"),
        ("(lower(hex(randomblob(16))))", "an expression lite2pg does not translate"),
    ],
)
def test_defaults_that_would_change_meaning_are_dropped_with_the_reason(
    default: str, reason: str
) -> None:
    expr, why = translate_default(default, TEXT, declared="TEXT")
    assert expr is None and why.startswith(f"default {default} dropped: ") and reason in why


@pytest.mark.parametrize("pg", [BIGINT, BOOLEAN])
def test_a_clock_default_a_column_cannot_hold_is_dropped(pg: PgType) -> None:
    expr, why = translate_default("CURRENT_TIMESTAMP", pg, declared="INTEGER")
    assert expr is None and "does not fit" in why


def test_current_timestamp_stays_current_timestamp_in_a_timestamptz_column() -> None:
    assert translate_default("CURRENT_TIMESTAMP", TIMESTAMPTZ, declared="DATETIME") == (
        sql.SQL("CURRENT_TIMESTAMP"),
        "",
    )
