"""The `timestamp` transform: whatever a legacy DATETIME column holds -> an aware UTC datetime.

Recognised, in this order:

* NULL stays NULL.
* Numbers (INTEGER, REAL, or text that is only a decimal number, e.g. '1700000000'):
  - with `julian = true`, a number in [1721425.5, 5373484.5) - the Julian days of the years
    1 to 9999, as SQLite's julianday() returns them - is a Julian day (kept to the
    millisecond, SQLite's own precision). Only on request: that range is also the epoch
    seconds of 1970-01-20 to 1970-03-04, so guessing would corrupt real epoch values.
  - otherwise an epoch: `epoch = "seconds"` or `"milliseconds"`, or by default `"auto"`:
    |v| >= 1e11 is milliseconds, smaller is seconds. 1e11 s is the year 5138 and 1e11 ms
    is 1973-03-03, so seconds up to 5138 and milliseconds after March 1973 (or before
    October 1966) are told apart correctly; milliseconds from 1966-10 to 1973-03 would
    read as seconds - set `epoch = "milliseconds"` for such data.
* ISO-8601 text: `YYYY-MM-DD`, optionally followed by `T` or a space and `HH:MM`,
  `HH:MM:SS` or `HH:MM:SS.fraction` (`.` or `,`; digits beyond microseconds are rounded
  as PostgreSQL rounds them), optionally followed by `Z` or an offset `+HH:MM`, `+HHMM` or `+HH`.
  This covers SQLite's own 'YYYY-MM-DD HH:MM:SS'.
* Text without an offset, and date-only text, is local time in `assume_timezone`
  (default "UTC", any IANA zone name). A local time that occurs twice at a DST change
  takes the first occurrence; one that never occurs is shifted forward by the gap
  (zoneinfo's rules, fold = 0).

Anything else, including '' (put `nullif = ""` first to make it NULL), is rejected with
`timestamp: cannot parse '...'`, or becomes NULL with `on_error = "null"`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import difflib
import math
import re
import zoneinfo

from lite2pg.errors import PlanError, TransformError
from lite2pg.isotime import fraction_micros
from lite2pg.reasons import Category, for_value
from lite2pg.transforms._common import Transform, kind, show, table

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# |v| >= this is epoch milliseconds in "auto" mode (see the module docstring).
MILLISECONDS_THRESHOLD = decimal.Decimal(10) ** 11

# Julian days of 0001-01-01 00:00 and 10000-01-01 00:00 (the datetime range).
JULIAN_MIN = decimal.Decimal("1721425.5")
JULIAN_MAX = decimal.Decimal("5373484.5")
JULIAN_UNIX_EPOCH = decimal.Decimal("2440587.5")

_MICROS_PER_DAY = 86_400_000_000

_ISO = re.compile(
    r"""
    (?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})
    (?:
        [Tt\ ]
        (?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})
        (?::(?P<second>[0-9]{2})(?:[.,](?P<fraction>[0-9]{1,9}))?)?
        \ ?(?P<offset>[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?
    )?
    """,
    re.VERBOSE | re.ASCII,
)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?", re.ASCII)


class _OutOfRange(Exception):
    """The value parses but names an instant outside years 1..9999."""


def _zone(name: str, key: str) -> dt.tzinfo:
    if name == "UTC":
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(name, zoneinfo.available_timezones(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else " (expected an IANA name)"
        raise PlanError(key, f"unknown time zone {name!r}{hint}") from None


def _offset(text: str) -> dt.tzinfo | None:
    if text in ("Z", "z"):
        return dt.UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or "0")
    if hours > 23 or minutes > 59:
        return None
    return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))


def parse_iso(text: str, assume: dt.tzinfo) -> dt.datetime | None:
    """Parse ISO-8601 text (see the module docstring) to UTC; None when it is not one."""
    match = _ISO.fullmatch(text)
    if match is None:
        return None
    part = match.group
    try:
        local = dt.datetime(
            int(part("year")),
            int(part("month")),
            int(part("day")),
            int(part("hour") or 0),
            int(part("minute") or 0),
            int(part("second") or 0),
        )
    except ValueError:  # month 13, February 30, hour 24, leap second 60...
        return None
    zone = assume if part("offset") is None else _offset(part("offset"))
    if zone is None:
        return None
    try:
        instant = local.replace(tzinfo=zone).astimezone(dt.UTC)
        fraction = part("fraction")
        if fraction:
            # Added in UTC so that a rounding carry never meets a DST change.
            instant += dt.timedelta(microseconds=fraction_micros(fraction, rounding=True))
    except OverflowError:
        raise _OutOfRange from None
    return instant


def from_number(number: decimal.Decimal, epoch: str, julian: bool) -> dt.datetime:
    """Read a number as a Julian day or epoch seconds/milliseconds (see the module docstring)."""
    if number.adjusted() > 20:  # far beyond any datetime; don't do arithmetic on it
        raise _OutOfRange
    if julian and JULIAN_MIN <= number < JULIAN_MAX:
        days = number - JULIAN_UNIX_EPOCH
        millis = int((days * 86_400_000).to_integral_value())
        micros = millis * 1000
    else:
        unit = epoch
        if unit == "auto":
            unit = "milliseconds" if abs(number) >= MILLISECONDS_THRESHOLD else "seconds"
        scale = 6 if unit == "seconds" else 3
        micros = int(number.scaleb(scale).to_integral_value())
    try:
        return EPOCH + dt.timedelta(microseconds=micros)
    except OverflowError:
        raise _OutOfRange from None


def compile_timestamp(options: object, key: str, secret: bool) -> Transform:
    """`timestamp = true` or `{ epoch, julian, assume_timezone, on_error }` -> aware UTC."""
    opts = table(options, key)
    epoch = opts.get_str("epoch", "auto", ("auto", "seconds", "milliseconds"))
    julian = opts.get_bool("julian", False)
    zone = _zone(opts.get_str("assume_timezone", "UTC"), opts.key_of("assume_timezone"))
    on_error = opts.get_str("on_error", "reject", ("reject", "null"))
    opts.finish()

    def parse(value: object) -> dt.datetime | None:
        if value is None:
            return None
        try:
            if isinstance(value, dt.datetime):
                if value.tzinfo is None:
                    value = value.replace(tzinfo=zone)
                return value.astimezone(dt.UTC)
            if isinstance(value, dt.date):
                return dt.datetime.combine(value, dt.time(), zone).astimezone(dt.UTC)
            if isinstance(value, bool):
                raise TransformError(
                    f"timestamp: cannot convert a {kind(value)} value", Category.WRONG_STORAGE
                )
            if isinstance(value, int):
                return from_number(decimal.Decimal(value), epoch, julian)
            if isinstance(value, float):
                if not math.isfinite(value):
                    raise TransformError(
                        f"timestamp: cannot parse {show(value, secret)}",
                        for_value(value, Category.NOT_A_DATE),
                    )
                return from_number(decimal.Decimal(repr(value)), epoch, julian)
            if isinstance(value, decimal.Decimal):
                if not value.is_finite():
                    raise TransformError(
                        f"timestamp: cannot parse {show(value, secret)}",
                        for_value(value, Category.NOT_A_DATE),
                    )
                return from_number(value, epoch, julian)
            if isinstance(value, str):
                text = value.strip()
                if _NUMBER.fullmatch(text):
                    return from_number(decimal.Decimal(text), epoch, julian)
                instant = parse_iso(text, zone)
                if instant is None:
                    raise TransformError(
                        f"timestamp: cannot parse {show(value, secret)}",
                        for_value(value, Category.NOT_A_DATE),
                    )
                return instant
        except _OutOfRange:
            raise TransformError(
                f"timestamp: {show(value, secret)} is out of range", Category.OUT_OF_RANGE
            ) from None
        raise TransformError(
            f"timestamp: cannot convert a {kind(value)} value", Category.WRONG_STORAGE
        )

    if on_error == "reject":
        return parse

    def parse_or_null(value: object) -> object:
        try:
            return parse(value)
        except TransformError:
            return None

    return parse_or_null


# Where `guess_epoch` looks for a plausible unit: instants of the years 1900 to 2200.
_PLAUSIBLE = (dt.datetime(1900, 1, 1, tzinfo=dt.UTC), dt.datetime(2200, 1, 1, tzinfo=dt.UTC))


def guess_epoch(lo: decimal.Decimal, hi: decimal.Decimal) -> tuple[str, dict[str, object]] | None:
    """The reading of numbers from `lo` to `hi` that puts all of them in the years
    1900-2200, as a name and the `timestamp` transform's options; None when none does.

    In order: Julian days (about 2.4e6: read as seconds they would all be in January
    1970), epoch seconds, epoch milliseconds (only when no value is below 1e11 in size:
    smaller ones are seconds that a millisecond reading would put in 1969-1973), and
    both, told apart by size (`epoch = "auto"`), when the small ones are seconds and the
    large ones milliseconds."""
    readings: list[tuple[str, dict[str, object], str, bool]] = [
        ("Julian days", {"julian": True}, "seconds", True),
        ("epoch seconds", {"epoch": "seconds"}, "seconds", False),
        ("epoch milliseconds", {"epoch": "milliseconds"}, "milliseconds", False),
        ("epoch seconds below 1e11, milliseconds above", {"epoch": "auto"}, "auto", False),
    ]
    small = min(abs(lo), abs(hi)) < MILLISECONDS_THRESHOLD if lo * hi > 0 else True
    for name, options, unit, julian in readings:
        if julian and not (lo >= JULIAN_MIN and hi < JULIAN_MAX):
            continue
        if unit == "milliseconds" and small:
            continue
        try:
            first, last = from_number(lo, unit, julian), from_number(hi, unit, julian)
        except _OutOfRange:
            continue
        if _PLAUSIBLE[0] <= first and last < _PLAUSIBLE[1]:
            return name, options
    return None
