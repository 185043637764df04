"""Date/time text as the load reads it: what ISO 8601 means and PostgreSQL's own cast gives,
checked against a real server, or refused with the reason; never a third reading."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lite2pg.coerce import converter, parse_pg_type
from lite2pg.errors import TransformError
from lite2pg.run import MigrateOptions, migrate

from .conftest import MakeDb, PgSchema


def load(value: str, *, rounding: bool = False, type_sql: str = "timestamptz") -> str:
    """What the load hands PostgreSQL for `value`, or "rejected: <reason>"."""
    try:
        out = converter(parse_pg_type(type_sql), rounding=rounding)(value)
    except TransformError as e:
        return f"rejected: {e}"
    assert isinstance(out, str)
    return out


def utc(text: str) -> dt.datetime:
    """The load's ISO text as a naive UTC datetime."""
    moment = dt.datetime.fromisoformat(text)
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment


@st.composite
def stamp_texts(draw: st.DrawFn) -> str:
    """Date/time text in the ISO shapes, compact and extended, with the corner cases:
    fractions of hours, minutes and seconds (. or ,, up to 9 digits, ties), hour 24,
    second 60 and offsets."""
    day = draw(st.dates(min_value=dt.date(1, 1, 2), max_value=dt.date(9999, 12, 30)))
    compact = draw(st.booleans())
    text = f"{day.year:04d}{day:%m%d}" if compact else f"{day.year:04d}-{day:%m-%d}"
    if draw(st.integers(0, 9)) == 0:
        return text
    hour = draw(st.sampled_from([0, 9, 10, 23, 24, draw(st.integers(0, 23))]))
    minute = draw(st.sampled_from([0, 30, 59, draw(st.integers(0, 59))]))
    second = draw(st.sampled_from([0, 59, 60, draw(st.integers(0, 59))]))
    colon = "" if draw(st.booleans()) and compact else ":"
    shape = draw(st.sampled_from(["h", "hm", "hms", "hms", "hms"]))
    text += draw(st.sampled_from(["T", " "])) + f"{hour:02d}"
    if shape != "h":
        text += f"{colon}{minute:02d}"
    if shape == "hms":
        text += f"{colon}{second:02d}"
    if draw(st.integers(0, 2)):
        digits = draw(
            st.one_of(
                st.from_regex(r"[0-9]{1,9}", fullmatch=True),
                st.from_regex(r"[0-9]{6}5", fullmatch=True),
                st.from_regex(r"9{6,9}", fullmatch=True),
                st.from_regex(r"0{6,8}[1-9]", fullmatch=True),
            )
        )
        text += draw(st.sampled_from([".", ".", ","])) + digits
    return text + draw(st.sampled_from(["", "", "Z", "+00:00", "+02", "-0530", "+15:59"]))


def pg_spelling(text: str) -> str:
    """The same moment as PostgreSQL's reader takes it: ISO 8601's comma as a dot, and an
    hour alone (`T10`, which PostgreSQL refuses) with its minutes."""
    text = text.replace(",", ".")
    return re.sub(r"([T ][0-9]{2})(?=$|[Z+-])", r"\1:00", text)


# Why the load may refuse what PostgreSQL takes: never a different reading of a value.
REFUSALS = (
    "which PostgreSQL would round",  # only without round = true
    "a decimal fraction of a minute",  # PostgreSQL reads 10:30.5 as 00:10:30.5
    "a decimal fraction of an hour",
    "hour 24 past 24:00:00",  # PostgreSQL reads 20210101T240059 as the next day's 00:00:59
    "a fraction of a leap second",  # PostgreSQL: 10:00:60.5 is 10:01:00.5, 23:59:60.5 an error
    "outside the years 1 to 9999",  # PostgreSQL goes to 294276
)


def postgresql_reads(conn: psycopg.Connection[Any], text: str) -> dt.datetime | None:
    try:
        row = conn.execute("SELECT %s::timestamptz AT TIME ZONE 'UTC'", (text,)).fetchone()
    except (psycopg.errors.DataError, psycopg.errors.SyntaxError):
        return None
    assert row is not None and isinstance(row[0], dt.datetime)
    return row[0]


@settings(max_examples=30, deadline=None)
@given(st.lists(stamp_texts(), min_size=1, max_size=40))
def test_timestamps_read_as_postgresql_casts_them_or_are_refused_with_a_reason(
    pg_dsn: str, texts: list[str]
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        for text in texts:
            theirs = postgresql_reads(conn, pg_spelling(text))
            for rounding in (False, True):
                ours = load(text, rounding=rounding)
                if not ours.startswith("rejected: "):
                    assert theirs is not None, (text, ours)
                    assert utc(ours) == theirs, (text, rounding, ours, theirs)
                elif theirs is not None:
                    assert any(why in ours for why in REFUSALS), (text, ours, theirs)
                    if rounding:
                        assert "which PostgreSQL would round" not in ours, ours


@pytest.mark.parametrize(
    ("text", "rounded"),
    [
        # Compact and extended, dot and comma: all round the same, to the nearest even.
        ("20210101T100000.1234567", "2021-01-01T10:00:00.123457"),
        ("2021-01-01T10:00:00.1234567", "2021-01-01T10:00:00.123457"),
        ("2021-01-01T10:00:00,1234567", "2021-01-01T10:00:00.123457"),
        ("2021-01-01T10:00:00.1234565", "2021-01-01T10:00:00.123456"),
        ("20210101T235959,9999999", "2021-01-02T00:00:00"),
        ("2021-12-31 23:59:59.9999995", "2022-01-01T00:00:00"),
    ],
)
def test_digits_past_the_microsecond_are_refused_or_rounded_as_postgresql_rounds(
    text: str, rounded: str
) -> None:
    assert load(text) == (
        f"rejected: text {text!r} does not fit timestamptz: more than 6 fraction digits, "
        "which PostgreSQL would round; set round = true for the column in a plan to round it"
    )
    assert load(text, rounding=True, type_sql="timestamp") == rounded


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        ("2021-01-01T10:30.5", "a minute"),
        ("2021-01-01 10:30,5", "a minute"),
        ("20210101T1030.5", "a minute"),
        ("2021-01-01T10.5", "an hour"),
        ("20210101T10,25", "an hour"),
    ],
)
def test_a_fraction_of_a_minute_or_hour_is_refused_not_read_as_seconds(
    text: str, unit: str
) -> None:
    for rounding in (False, True):
        assert load(text, rounding=rounding) == (
            f"rejected: text {text!r} does not fit timestamptz: not an ISO-8601 date/time: "
            f"a decimal fraction of {unit}, which PostgreSQL and ISO 8601 read differently; "
            "write the time as hh:mm:ss.ffffff"
        )


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2021-01-01 24:00:00", "2021-01-02T00:00:00"),
        ("2021-12-31T24:00", "2022-01-01T00:00:00"),
        ("20210228T240000", "2021-03-01T00:00:00"),
        ("2021-01-01T24:00:00+02:00", "2021-01-01T22:00:00"),
        ("2016-12-31 23:59:60", "2017-01-01T00:00:00"),
        ("2021-01-01 10:59:60", "2021-01-01T11:00:00"),
    ],
)
def test_hour_24_and_second_60_are_read_as_postgresql_reads_them(text: str, moment: str) -> None:
    assert load(text, type_sql="timestamp") == moment
    assert load(text) == moment + "+00:00"


@pytest.mark.parametrize(
    "text",
    ["2021-01-01 24:00:01", "2021-01-01 24:00:00.5", "2021-01-01 10:00:60.5", "2021-01-01 10:60"],
)
def test_hour_24_and_second_60_with_anything_after_them_are_refused(text: str) -> None:
    assert load(text).startswith("rejected: "), text


@pytest.mark.parametrize(
    "text",
    ["2021-01-01T00:00:00+05:30:45", "2021-06-30 23:59:59-01:02:03", "2021-01-01T12:00+14:59:59"],
)
def test_an_offset_with_seconds_is_read_as_postgresql_reads_it(pg_dsn: str, text: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        theirs = postgresql_reads(conn, text)
    assert theirs is not None
    assert utc(load(text)) == theirs


@pytest.mark.parametrize(
    "text",
    ["2021-01-01T00:00:00+05:30:60", "2021-01-01T00:00:00+05:60", "2021-01-01T00:00:00+24:00"],
)
def test_an_offset_past_its_range_is_refused_as_postgresql_refuses_it(
    pg_dsn: str, text: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert postgresql_reads(conn, text) is None
    assert load(text).startswith("rejected: "), text


@pytest.mark.parametrize(
    "text", ["2021-01-01 10:00:61", "2021-01-01 10:59:99", "2021-01-01T23:59:61Z"]
)
def test_a_second_past_60_is_refused_as_postgresql_refuses_it(pg_dsn: str, text: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert postgresql_reads(conn, text) is None
    assert load(text).startswith("rejected: "), text


def test_a_date_column_refuses_a_time_that_runs_into_the_next_day() -> None:
    for text in ("2021-01-01 24:00:00", "2021-01-01 23:59:60", "2021-01-01 00:00:00.0000001"):
        assert load(text, type_sql="date").startswith(f"rejected: text {text!r} does not fit date")
    assert load("2021-01-01 00:00:00", type_sql="date") == "2021-01-01"


def test_a_migration_loads_hour_24_and_leap_seconds_as_postgresql_and_verifies(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    values = [
        "2021-01-01 24:00:00",  # the fast path hands these to PostgreSQL as they are
        "2016-12-31 23:59:60",
        "2021-01-01 10:00 PM",  # 19 characters, but not the fast path's shape
        "20210101T100000.1234567",
        "2021-01-01T10:30.5",
        "2021-01-01T10:00:00,25",
    ]
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, at DATETIME);",
        ("INSERT INTO t VALUES (?, ?)", list(enumerate(values, 1))),
    )
    report = migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=tmp_path / "run"))

    assert report.verify is not None and report.verify["ok"], report.as_dict()
    rows = pg.query("SELECT id, (at AT TIME ZONE 'UTC')::text FROM t ORDER BY id")
    assert rows == [
        (1, "2021-01-02 00:00:00"),
        (2, "2017-01-01 00:00:00"),
        (6, "2021-01-01 10:00:00.25"),
    ]
    rejects = (tmp_path / "run" / "rejects" / "t.jsonl").read_text(encoding="utf-8")
    assert "which PostgreSQL would round" in rejects
    assert "a decimal fraction of a minute" in rejects
    assert rejects.count("\n") == 3
