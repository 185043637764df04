"""ISO-8601 date/time text read as ISO 8601 and PostgreSQL's timestamp both mean it.

Taken: a date `YYYY-MM-DD`, `YYYYMMDD` or an ISO week date (`2021-W01-1`), optionally
followed by `T`, `t` or a space and a time `hh:mm:ss`, `hhmmss`, `hh:mm`, `hhmm` or `hh`,
seconds with a fraction after `.` or `,` (ISO 8601 allows both), optionally followed by an
offset `Z`, `±hh`, `±hh:mm`, `±hhmm` or `±hh:mm:ss` (a space before it allowed).

Where PostgreSQL and ISO 8601 could read one text two ways, the text is refused, never
guessed at:

* a fraction after minutes or hours (`10:30.5`, `T10.5`): ISO 8601 means 30 seconds and 30
  minutes, PostgreSQL reads `10:30.5` as 00:10:30.5 and refuses `T10.5`;
* more than six fraction digits (past the microsecond), which PostgreSQL rounds: refused as
  too precise unless the caller rounds, and then rounded as PostgreSQL rounds them (the
  digits as a double times 10^6, to the nearest even), in either form (compact, extended,
  comma or dot), carrying into the next second, minute or day as PostgreSQL does.

PostgreSQL's own readings kept: `24:00:00` (with nothing after it) is the next day's
midnight and second 60 (a leap second, no fraction) the next minute.
"""

from __future__ import annotations

import datetime as dt
import re

_DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{8}|[0-9]{4}-W[0-9]{2}(?:-[0-9])?|[0-9]{4}W[0-9]{2}[0-9]?"
_TEXT = re.compile(
    rf"""
    (?P<date>{_DATE})
    (?:
        [Tt\ ]
        (?P<hour>[0-9]{{2}})
        (?:(?P<colon>:?)(?P<minute>[0-9]{{2}})(?:(?P=colon)(?P<second>[0-9]{{2}}))?)?
        (?:[.,](?P<fraction>[0-9]+))?
        \ ?(?P<offset>Z|[+-][0-9]{{2}}(?:(?P<ocolon>:?)[0-9]{{2}}(?:(?P=ocolon)[0-9]{{2}})?)?)?
    )?
    """,
    re.VERBOSE | re.ASCII,
)

MICROS = 1_000_000
NOT_ISO = "not an ISO-8601 date/time"  # NotIsoTime.why of text in none of the shapes


class NotIsoTime(ValueError):
    """The text is not a date/time lite2pg reads; `why` says what is wrong with it, and
    `too_precise` is set when only its digits past the microsecond are (rounding takes it)."""

    def __init__(self, text: str, why: str, *, too_precise: bool = False) -> None:
        self.why = why
        self.too_precise = too_precise
        super().__init__(f"{text!r}: {why}")


def fraction_micros(digits: str, rounding: bool, text: str = "") -> int:
    """Microseconds of the fraction digits after a decimal sign: exact up to six digits
    (or more that are zeros), else refused as too precise, or with `rounding` rounded as
    PostgreSQL rounds them: rint(strtod("0.digits") * 1e6), which may give 1,000,000."""
    if not digits[6:].strip("0"):
        return int(digits[:6].ljust(6, "0"))
    if not rounding:
        raise NotIsoTime(
            text or digits,
            "more than 6 fraction digits, which PostgreSQL would round",
            too_precise=True,
        )
    # Python's float is the C double and round() rounds a tie to even, as rint() does.
    return round(float("0." + digits) * MICROS)


def _offset(text: str) -> dt.tzinfo:
    if text == "Z":
        return dt.UTC
    digits = text[1:].replace(":", "")
    hours, minutes, seconds = int(digits[:2]), int(digits[2:4] or 0), int(digits[4:6] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(text)
    size = dt.timedelta(hours=hours, minutes=minutes, seconds=seconds)
    return dt.timezone(-size if text[0] == "-" else size)


def parse_iso_datetime(s: str, *, rounding: bool = False, carries: bool = True) -> dt.datetime:
    """Parse ISO-8601 text (see the module docstring) to a datetime, aware when it has an
    offset. Raises NotIsoTime (a ValueError) when it is not one, OverflowError when it
    names a moment past 9999-12-31. `rounding`: digits past the microsecond are rounded as
    PostgreSQL does instead of refused. `carries=False` refuses 24:00, second 60 and a
    rounding carry (for a date, which must not become the next day)."""
    m = _TEXT.fullmatch(s)
    if m is None:
        raise NotIsoTime(s, NOT_ISO)
    part = m.group
    try:
        day = dt.date.fromisoformat(part("date"))
    except ValueError:
        raise NotIsoTime(s, "not a date in the calendar") from None
    fraction = part("fraction")
    if fraction is not None and part("second") is None:
        unit = "an hour" if part("minute") is None else "a minute"
        raise NotIsoTime(
            s,
            f"a decimal fraction of {unit}, which PostgreSQL and ISO 8601 read differently;"
            " write the time as hh:mm:ss.ffffff",
        )
    hour, minute, second = (int(part(g) or 0) for g in ("hour", "minute", "second"))
    micros = fraction_micros(fraction, rounding, s) if fraction else 0
    if second == 60 and micros:
        raise NotIsoTime(s, "a fraction of a leap second (second 60), which no timestamp holds")
    if hour == 24 and (minute or second or micros):
        # ISO 8601's end of the day; PostgreSQL's compact form also reads 240059 as 00:00:59
        raise NotIsoTime(s, "hour 24 past 24:00:00, which ISO 8601 does not allow")
    carry = dt.timedelta(0)
    if hour == 24:
        hour, carry = 0, dt.timedelta(days=1)  # PostgreSQL: the next day's midnight
    elif second == 60 and hour < 24 and minute < 60:
        second, carry = 0, dt.timedelta(minutes=1)  # a leap second: the next minute
    if micros == MICROS:
        micros, carry = 0, carry + dt.timedelta(seconds=1)
    if carry and not carries:
        raise NotIsoTime(s, "a time of day that runs into the next day or minute")
    try:
        zone = None if part("offset") is None else _offset(part("offset"))
        moment = dt.datetime.combine(day, dt.time(hour, minute, second, micros), zone)
    except ValueError:
        raise NotIsoTime(
            s, "not a time of day (hour, minute, second or offset too large)"
        ) from None
    return moment + carry
