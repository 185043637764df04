"""Why a value is rejected, as a stable category apart from the value itself.

A reject's reason names the value ("text 'abc' does not fit bigint"); its category does not
("not a number"), so that `lite2pg check` can group thousands of rejected values of one
column into one line and propose the plan line that fixes them. The category is set where
the value is refused (`coerce`, `transforms/`), never read back out of the reason's text.
"""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    """A reject's reason without its value; the text is what `check` prints."""

    EPOCH_AMBIGUOUS = "numbers in a date column are ambiguous"
    NOT_MAPPED = "not one of the mapped values"
    NOT_A_LABEL = "not one of the enum's labels"
    EMPTY_TEXT = "empty text"
    NULL = "NULL in a required column"
    NOT_A_NUMBER = "not a number"
    NOT_WHOLE = "not a whole number"
    OUT_OF_RANGE = "out of range"
    NEEDS_ROUNDING = "needs rounding"
    TOO_MANY_DIGITS = "too many digits"
    TOO_PRECISE = "more fraction digits than the column keeps"
    NOT_A_DATE = "not an ISO-8601 date/time"
    NOT_A_TIME = "not an ISO-8601 time of day"
    TIME_OF_DAY = "has a time of day, which a date cannot hold"
    NOT_A_BOOLEAN = "not a boolean"
    TOO_LONG = "longer than the column allows"
    TRAILING_BLANKS = "trailing blanks, which char(n) strips"
    BAD_TEXT = "text PostgreSQL cannot hold (NUL, lone surrogate or not UTF-8)"
    WRONG_STORAGE = "a value of a storage class the column cannot take"
    NOT_JSON = "not JSON the column's type keeps as it is"
    NOT_A_UUID = "not a uuid"
    NOT_AN_INTERVAL = "not an interval lite2pg can read exactly"
    NO_UNIT = "a number with no unit in an interval column"
    NOT_AN_ADDRESS = "not an IP address or network"
    ORPHAN = "references a row that will not be loaded"
    PASSWORD = "not a password the policy can hash"
    REFUSED = "refused by PostgreSQL"
    OTHER = "other"


def for_value(value: object, category: Category) -> Category:
    """`category`, or EMPTY_TEXT when the value is '' (which has a fix of its own: nullif)."""
    return Category.EMPTY_TEXT if isinstance(value, str) and value == "" else category
