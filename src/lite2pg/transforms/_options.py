"""Read a TOML table of options with typed getters that fail as `PlanError(key, problem)`."""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Iterable, Mapping, Sequence

from lite2pg.errors import PlanError

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")

# The scalar types a plan may give as a value (a map target, a default, a nullif value).
Scalar = str | int | float | bool | dt.datetime | dt.date


def join_key(parent: str, name: str | int) -> str:
    """Extend a dotted key path: `a.b` + `c` -> `a.b.c`, + 1 -> `a.b[1]`, quoting odd names."""
    if isinstance(name, int):
        return f"{parent}[{name}]"
    part = name if _BARE_KEY.fullmatch(name) else '"' + name.replace('"', '\\"') + '"'
    return f"{parent}.{part}" if parent else part


def unknown_key_problem(name: str, allowed: Iterable[str]) -> str:
    """Say that `name` is not allowed, with a "did you mean" when a known key is close."""
    allowed = sorted(allowed)
    close = difflib.get_close_matches(name, allowed, n=1)
    if close:
        return f"unknown key {name!r}; did you mean {close[0]!r}?"
    return f"unknown key {name!r}; expected one of: {', '.join(allowed)}"


def type_name(value: object) -> str:
    """The TOML name of a value's type, for messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return "a date/time"
    return type(value).__name__


def check_scalar(value: object, key: str) -> Scalar:
    """Accept a TOML scalar usable as a column value; reject arrays, tables, naive datetimes."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise PlanError(key, "a date-time value needs an offset, e.g. 2024-01-01T00:00:00Z")
        return value.astimezone(dt.UTC)
    if isinstance(value, str | int | float | bool | dt.date):
        return value
    raise PlanError(key, f"expected a string, number, boolean or date, got {type_name(value)}")


class Options:
    """The options table of one plan element; every getter consumes its key.

    Call `finish()` last: any key no getter asked for is a typo and raises `PlanError`.
    """

    def __init__(self, raw: object, key: str) -> None:
        if not isinstance(raw, Mapping):
            raise PlanError(key, f"expected a table, got {type_name(raw)}")
        self.raw: Mapping[str, object] = raw
        self.key = key
        self._known: set[str] = set()

    def key_of(self, name: str) -> str:
        """The dotted path of one option."""
        return join_key(self.key, name)

    def has(self, name: str) -> bool:
        """Whether the option is present (marks it as known)."""
        self._known.add(name)
        return name in self.raw

    def get(self, name: str) -> object | None:
        """The raw value, or None when absent."""
        self._known.add(name)
        return self.raw.get(name)

    def get_str(self, name: str, default: str, choices: Sequence[str] = ()) -> str:
        """A string option, optionally restricted to `choices`."""
        value = self.get(name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise PlanError(self.key_of(name), f"expected a string, got {type_name(value)}")
        if choices and value not in choices:
            wanted = " | ".join(repr(c) for c in choices)
            close = difflib.get_close_matches(value, choices, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise PlanError(self.key_of(name), f"expected {wanted}, got {value!r}{hint}")
        return value

    def get_optional_str(self, name: str) -> str | None:
        """A string option that may be absent."""
        value = self.get(name)
        if value is not None and not isinstance(value, str):
            raise PlanError(self.key_of(name), f"expected a string, got {type_name(value)}")
        return value

    def get_bool(self, name: str, default: bool) -> bool:
        """A boolean option."""
        value = self.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise PlanError(self.key_of(name), f"expected true or false, got {type_name(value)}")
        return value

    def get_int(
        self, name: str, default: int | None, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        """An integer option within [minimum, maximum]."""
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise PlanError(self.key_of(name), f"expected an integer, got {type_name(value)}")
        if minimum is not None and value < minimum:
            raise PlanError(self.key_of(name), f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise PlanError(self.key_of(name), f"must be at most {maximum}, got {value}")
        return value

    def get_str_list(self, name: str) -> tuple[str, ...]:
        """A list of strings (a single string counts as a list of one)."""
        value = self.get(name)
        if value is None:
            return ()
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            raise PlanError(
                self.key_of(name), f"expected an array of strings, got {type_name(value)}"
            )
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise PlanError(
                    join_key(self.key_of(name), i), f"expected a string, got {type_name(item)}"
                )
        return tuple(items)

    def finish(self) -> None:
        """Fail on the first key that no getter asked for."""
        for name in self.raw:
            if name not in self._known:
                raise PlanError(self.key_of(name), unknown_key_problem(name, self._known))
