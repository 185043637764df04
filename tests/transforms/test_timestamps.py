from __future__ import annotations

import datetime as dt
import re
import sqlite3
from contextlib import closing

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lite2pg.errors import PlanError, TransformError
from lite2pg.transforms import Spec, Transform, compile_chain, compile_transform

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(**options: object) -> Transform:
    return compile_transform(Spec("timestamp", options or True, "timestamp"))


def at(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def reason(transform: Transform, value: object) -> str:
    with pytest.raises(TransformError) as caught:
        transform(value)
    return caught.value.reason


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-15T10:30:00Z", at(2024, 1, 15, 10, 30)),
        ("2024-01-15T10:30:00z", at(2024, 1, 15, 10, 30)),
        ("2024-01-15 10:30:00", at(2024, 1, 15, 10, 30)),
        ("2024-01-15 10:30", at(2024, 1, 15, 10, 30)),
        ("2024-01-15T10:30:00.5", at(2024, 1, 15, 10, 30, 0, 500000)),
        ("2024-01-15 10:30:00.123456", at(2024, 1, 15, 10, 30, 0, 123456)),
        ("2024-01-15T10:30:00,25Z", at(2024, 1, 15, 10, 30, 0, 250000)),
        ("2024-01-15T12:30:00+02:00", at(2024, 1, 15, 10, 30)),
        ("2024-01-15T05:00:00-0530", at(2024, 1, 15, 10, 30)),
        ("2024-01-15T12:30:00+02", at(2024, 1, 15, 10, 30)),
        ("2024-01-15 10:30:00 +00:00", at(2024, 1, 15, 10, 30)),
        ("  2024-01-15T10:30:00Z\n", at(2024, 1, 15, 10, 30)),
        ("2024-01-15", at(2024, 1, 15)),
        ("2024-01-15T10:30:00.9999995Z", at(2024, 1, 15, 10, 30, 1)),  # rounded half-even
        (1705314600, at(2024, 1, 15, 10, 30)),
        (1705314600.25, at(2024, 1, 15, 10, 30, 0, 250000)),
        ("1705314600", at(2024, 1, 15, 10, 30)),
        (1705314600123, at(2024, 1, 15, 10, 30, 0, 123000)),
        ("1705314600123", at(2024, 1, 15, 10, 30, 0, 123000)),
        (-86400, at(1969, 12, 31)),
        (0, EPOCH),
        (None, None),
    ],
)
def test_timestamp_reads_the_formats_legacy_apps_write(value: object, expected: object) -> None:
    assert timestamp()(value) == expected


def test_timestamp_returns_aware_utc_datetimes() -> None:
    result = timestamp()("2024-01-15T12:30:00+02:00")
    assert isinstance(result, dt.datetime)
    assert result.tzinfo is UTC


def test_naive_values_are_read_in_the_assumed_time_zone() -> None:
    paris = timestamp(assume_timezone="Europe/Paris")
    assert paris("2024-01-15 10:30:00") == at(2024, 1, 15, 9, 30)  # CET, UTC+1
    assert paris("2024-07-15 10:30:00") == at(2024, 7, 15, 8, 30)  # CEST, UTC+2
    assert paris("2024-07-15") == at(2024, 7, 14, 22, 0)
    assert paris("2024-07-15T10:30:00Z") == at(2024, 7, 15, 10, 30)  # explicit offset wins
    assert paris(1705314600) == at(2024, 1, 15, 10, 30)  # epochs are UTC by definition


def test_epoch_unit_can_be_forced_for_values_auto_would_misread() -> None:
    ambiguous = 50_000_000_000  # 1971-08-02 in ms, the year 3554 in seconds
    assert timestamp()(ambiguous) == timestamp(epoch="seconds")(ambiguous)
    assert timestamp(epoch="milliseconds")(ambiguous) == at(1971, 8, 2, 16, 53, 20)
    assert timestamp(epoch="milliseconds")(1705314600000) == at(2024, 1, 15, 10, 30)


def test_julian_days_are_read_only_when_asked() -> None:
    with closing(sqlite3.connect(":memory:")) as db:
        (julian,) = db.execute("SELECT julianday('2024-01-15 10:30:00.123')").fetchone()
    assert timestamp(julian=True)(julian) == at(2024, 1, 15, 10, 30, 0, 123000)
    assert timestamp(julian=True)(str(julian)) == at(2024, 1, 15, 10, 30, 0, 123000)
    # Without julian = true the same number is epoch seconds in January 1970.
    assert timestamp()(julian) == EPOCH + dt.timedelta(seconds=julian)
    # Outside the Julian range, numbers are still epochs.
    assert timestamp(julian=True)(1705314600) == at(2024, 1, 15, 10, 30)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "not a date",
        "2024-13-01",
        "2024-02-30",
        "2024-01-15T24:00:00",
        "2024-01-15T10:30:60",
        "2024-01-15T10:30:00+25:00",
        "15/01/2024",
        "2024-1-5",
        "NaN",
        "inf",
        "2024-01-15T10:30:00.1234567891Z",
    ],
)
def test_unparseable_values_are_rejected_with_the_value_in_the_reason(value: str) -> None:
    assert reason(timestamp(), value) == f"timestamp: cannot parse {value!r}"


def test_out_of_range_values_are_rejected() -> None:
    assert reason(timestamp(), 10**20) == "timestamp: 100000000000000000000 is out of range"
    assert reason(timestamp(), "1e300") == "timestamp: '1e300' is out of range"
    assert reason(timestamp(epoch="seconds"), 1705314600123) == (
        "timestamp: 1705314600123 is out of range"
    )


def test_other_types_are_rejected() -> None:
    assert reason(timestamp(), b"2024") == "timestamp: cannot convert a BLOB value"
    assert reason(timestamp(), float("nan")) == "timestamp: cannot parse nan"


def test_on_error_null_turns_unparseable_values_into_null() -> None:
    lenient = timestamp(on_error="null")
    assert lenient("garbage") is None
    assert lenient(10**20) is None
    assert lenient("2024-01-15") == at(2024, 1, 15)


def test_empty_text_is_null_only_after_nullif() -> None:
    assert reason(timestamp(), "") == "timestamp: cannot parse ''"
    assert compile_chain([{"nullif": ""}, "timestamp"])("") is None


def test_timestamp_options_are_checked() -> None:
    with pytest.raises(PlanError, match="did you mean 'Europe/Paris'"):
        timestamp(assume_timezone="Europe/Pariss")
    with pytest.raises(PlanError, match=re.escape("expected 'auto' | 'seconds' | 'milliseconds'")):
        timestamp(epoch="ms")
    with pytest.raises(PlanError, match="did you mean 'on_error'"):
        timestamp(on_eror="null")


# --- properties ------------------------------------------------------------------------

offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
instants = st.datetimes(
    min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 12, 31), timezones=offsets
)


def iso_styles(value: dt.datetime) -> list[str]:
    """The same instant written the ways applications write ISO-8601."""
    offset = value.strftime("%z")  # +0530
    utc = value.astimezone(UTC).replace(tzinfo=None)
    styles = [
        value.isoformat(),
        value.isoformat(sep=" "),
        value.strftime("%Y-%m-%dT%H:%M:%S.%f") + offset,
        value.strftime("%Y-%m-%d %H:%M:%S.%f ") + offset,
        utc.isoformat() + "Z",
        utc.strftime("%Y-%m-%d %H:%M:%S.%f"),  # SQLite style, naive, read as UTC
    ]
    if value.microsecond == 0:
        styles.append(value.strftime("%Y-%m-%dT%H:%M:%S") + offset[:3] + ":" + offset[3:])
    return styles


@given(instants)
def test_any_iso_formatted_instant_parses_back_to_itself(value: dt.datetime) -> None:
    parse = timestamp()
    for text in iso_styles(value):
        assert parse(text) == value, text


@given(instants.map(lambda v: v.replace(microsecond=v.microsecond // 1000 * 1000)))
def test_any_epoch_second_or_millisecond_value_parses_back_to_its_instant(
    value: dt.datetime,
) -> None:
    millis = (value - EPOCH) // dt.timedelta(milliseconds=1)
    seconds = (value.replace(microsecond=0) - EPOCH) // dt.timedelta(seconds=1)
    parse = timestamp()
    assert parse(seconds) == value.replace(microsecond=0)
    assert parse(str(seconds)) == value.replace(microsecond=0)
    as_float = parse(millis / 1000)
    assert isinstance(as_float, dt.datetime)
    assert abs(as_float - value) <= dt.timedelta(microseconds=1)
    assert timestamp(epoch="milliseconds")(millis) == value
    if abs(millis) >= 10**11:  # where auto detection promises milliseconds
        assert parse(millis) == value
        assert parse(str(millis)) == value


near_iso = st.from_regex(
    r"\A[0-9]{1,5}-[0-9]{1,3}-[0-9]{1,3}([ T][0-9]{1,3}:[0-9]{1,3}(:[0-9]{1,3}([.,][0-9]{0,12})?)?"
    r" ?(Z|[+-][0-9]{1,4}(:[0-9]{2})?)?)?\Z"
)


@given(st.one_of(st.text(), near_iso, st.integers(), st.floats(), st.binary()))
def test_any_value_parses_or_is_rejected_with_a_reason(value: object) -> None:
    try:
        result = timestamp()(value)
    except TransformError as exc:
        assert exc.reason.startswith("timestamp: ")
    else:
        assert isinstance(result, dt.datetime)
        assert result.utcoffset() == dt.timedelta(0)
