"""The `interval` transform: a duration as an app stored it in SQLite -> an exact interval.

* `unit = "microseconds" | "milliseconds" | "seconds" | "days"`: a number (INTEGER, REAL
  or decimal text) counts that unit. Django's DurationField stores microseconds. The
  sub-day units fill the interval's time (a fixed length, as the app's timedelta was);
  `days` fills its days. A fraction finer than a microsecond is refused.
* `epoch_offset = true`: a DATETIME that is 1970-01-01 plus the duration, as SQLAlchemy's
  `Interval` stores it on SQLite ('1970-01-01 00:00:05.000000' is 5 seconds; a date before
  1970 is a negative interval).

Text that already is an interval (ISO-8601 'P1DT2H', PostgreSQL's '1 day 02:00:00')
passes with `unit`. NULL stays NULL; anything else is rejected with the reason.
"""

from __future__ import annotations

import decimal

from lite2pg import native
from lite2pg.errors import PlanError, TransformError
from lite2pg.transforms._common import Transform, show, table

UNITS = ("microseconds", "milliseconds", "seconds", "days")


def compile_interval(options: object, key: str, secret: bool) -> Transform:
    """`interval = { unit = "..." }` or `{ epoch_offset = true }` -> `native.Interval`."""
    opts = table(options, key)
    unit = opts.get_optional_str("unit")
    epoch_offset = opts.get_bool("epoch_offset", False)
    if unit is not None:
        opts.get_str("unit", unit, UNITS)
    opts.finish()
    if (unit is None) == (not epoch_offset):
        raise PlanError(
            key,
            "give exactly one of unit = "
            + " | ".join(f'"{u}"' for u in UNITS)
            + " or epoch_offset = true",
        )

    def convert(value: object) -> object:
        if value is None:
            return None
        try:
            if epoch_offset:
                return native.interval_from_epoch_offset(value)
            assert unit is not None
            if isinstance(value, int | float | decimal.Decimal) or (
                isinstance(value, str) and native.is_number_text(value)
            ):
                return native.interval_from_number(value, unit)
            return native.parse_interval(value)
        except native.NotExact as e:
            raise TransformError(f"interval: {show(value, secret)}: {e}") from None

    return convert
