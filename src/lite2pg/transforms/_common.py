"""What every transform module shares: the `Transform` type, value display, flag options."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Mapping

from lite2pg.errors import PlanError
from lite2pg.transforms._options import Options, type_name

Transform = Callable[[object], object]
"""A compiled transform: takes a value as sqlite3 returns it, returns the new value.

It raises `TransformError(reason)` when the value cannot be transformed.
"""

Compiler = Callable[[object, str, bool], Transform]
"""Builds a transform from its options, the options' dotted key, and whether the column is
secret (then no reason may show the value)."""

# Long values are cut in reasons: a reason names the value, it does not archive it.
_SHOW_MAX = 60

REDACTED = "<redacted>"


def show(value: object, secret: bool) -> str:
    """A short, quoted rendering of a value for a reason; `<redacted>` for a secret column."""
    if secret:
        return REDACTED
    if isinstance(value, bytes):
        return f"a {len(value)}-byte BLOB"
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= _SHOW_MAX else text[: _SHOW_MAX - 4] + "...'"
    if isinstance(value, int | float | decimal.Decimal):
        text = str(value)
        return text if len(text) <= _SHOW_MAX else text[: _SHOW_MAX - 3] + "..."
    if isinstance(value, dt.date):
        return value.isoformat()
    return f"a {type(value).__name__}"


def kind(value: object) -> str:
    """The SQLite-ish name of a value's type, for reasons that must not show the value."""
    if isinstance(value, bytes):
        return "BLOB"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "INTEGER"
    if isinstance(value, float):
        return "REAL"
    if isinstance(value, str):
        return "TEXT"
    return type(value).__name__


def flag(options: object, key: str) -> None:
    """Accept the options of a transform that takes none: `true` or `{}`."""
    if options is True or (isinstance(options, Mapping) and not options):
        return
    if options is False:
        raise PlanError(key, "false is not allowed; remove the transform instead")
    if isinstance(options, Mapping):
        Options(options, key).finish()
    raise PlanError(key, f"expected true, got {type_name(options)}")


def table(options: object, key: str) -> Options:
    """Options of a transform that takes a table; `true` means all defaults."""
    if options is True:
        return Options({}, key)
    if options is False:
        raise PlanError(key, "false is not allowed; remove the transform instead")
    return Options(options, key)
