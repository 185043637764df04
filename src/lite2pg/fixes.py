"""The plan lines that would make a group of rejected values load, guessed from the values.

`check` groups rejects by table, column and category (`lite2pg.reasons`); for each group it
asks `propose` here, which looks at what the group saw (`ValueTally`: a bounded count of
distinct values and the range of the numeric ones) and answers with TOML to put in a plan
and the reasoning, e.g. "all 16,032 values are between 1.5e12 and 1.8e12: epoch
milliseconds, 2017-2027". Pure: no SQLite, no PostgreSQL.
"""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lite2pg.reasons import Category
from lite2pg.transforms import Spec
from lite2pg.transforms._options import join_key
from lite2pg.transforms.timestamps import from_number, guess_epoch

# A tally remembers this many distinct values; more are only counted, so that 10,000
# distinct bad values cost no more memory than 1,000.
MAX_DISTINCT = 1_000
# Unknown values a proposed `map` lists by name (the rest are summed up).
PROPOSED_VALUES = 10
# What a proposed map entry maps to until someone writes the real target.
PLACEHOLDER = "?"


@dataclass
class Fix:
    """What would make a group of rejects load: plan lines (TOML), the reasoning, and who
    proposes it: "plan" (lite2pg's guess from the values) or "profile NAME" (an ORM profile
    that knows how that ORM stores the column)."""

    lines: list[str]
    why: str
    source: str = "plan"


@dataclass
class ValueTally:
    """What a group saw of its values: a bounded count of the distinct ones, and the range
    of the numeric ones (an epoch unit is guessed from it)."""

    distinct: collections.Counter[tuple[str, Any]] = field(default_factory=collections.Counter)
    more: int = 0  # values past the MAX_DISTINCT distinct ones (or unhashable)
    numbers: int = 0
    others: int = 0  # non-NULL values that are not numbers
    low: decimal.Decimal | None = None
    high: decimal.Decimal | None = None

    def add(self, value: Any) -> None:
        """Count one rejected value (None for a row-level reason)."""
        key = (type(value).__name__, value)
        try:
            if key in self.distinct or len(self.distinct) < MAX_DISTINCT:
                self.distinct[key] += 1
            else:
                self.more += 1
        except TypeError:
            self.more += 1
        number = as_number(value)
        if number is not None:
            self.numbers += 1
            self.low = number if self.low is None else min(self.low, number)
            self.high = number if self.high is None else max(self.high, number)
        elif value is not None:
            self.others += 1

    def common(self, n: int) -> list[tuple[Any, int]]:
        """The n most frequent values with their counts."""
        return [(v, count) for (_, v), count in self.distinct.most_common(n)]


_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?", re.ASCII)


def as_number(value: Any) -> decimal.Decimal | None:
    """A number, or text that is only a number, as an exact decimal; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return decimal.Decimal(value)
    if isinstance(value, float):
        return decimal.Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value.strip()):
        return decimal.Decimal(value.strip())
    return None


def propose(
    table: str,
    column: str | None,
    category: str,
    tally: ValueTally,
    transforms: Sequence[Spec] = (),
    target_type: str | None = None,
    labels: Sequence[str] = (),
) -> Fix | None:
    """lite2pg's guess at the plan lines that fix a group; None when no plan line can."""
    if column is None:
        return None
    section = join_key(join_key(join_key("tables", table), "columns"), column)
    specs = [_inline_spec(s) for s in transforms if s.name != "hash_password"]
    if category == Category.EPOCH_AMBIGUOUS.name:
        return _epoch_fix(section, specs, tally)
    if category == Category.NOT_MAPPED.name:
        return _map_fix(section, tally)
    if category == Category.NOT_A_LABEL.name:
        return _label_fix(section, specs, tally, labels)
    if category == Category.EMPTY_TEXT.name:
        at = next((i for i, s in enumerate(transforms) if s.name == "required"), None)
        if at is None:
            return Fix(
                [f"[{section}]", _transforms(['{ nullif = "" }', *specs])],
                f"empty text in {_rows(tally)}: nullif makes it NULL",
            )
        default = f"{{ default = {_toml(PLACEHOLDER)} }}"
        return Fix(
            [f"[{section}]", _transforms(['{ nullif = "" }', *specs[:at], default, *specs[at:]])],
            f"empty text in {_rows(tally)} of a required column: nullif makes it NULL and a "
            f"default replaces that (write the value in place of {PLACEHOLDER!r})",
        )
    if category == Category.NULL.name:
        at = next((i for i, s in enumerate(transforms) if s.name == "required"), len(specs))
        steps = [*specs[:at], f"{{ default = {_toml(PLACEHOLDER)} }}", *specs[at:]]
        return Fix(
            [f"[{section}]", _transforms(steps)],
            f"NULL in {_rows(tally)} of a required column: a default replaces it "
            f"(write the value in place of {PLACEHOLDER!r})",
        )
    if category in (Category.NEEDS_ROUNDING.name, Category.TOO_PRECISE.name):
        return _round_fix(section, transforms, tally, target_type)
    if category == Category.TRAILING_BLANKS.name:
        return Fix(
            [f"[{section}]", _transforms([*specs, '"strip"'])],
            f"trailing blanks in {_rows(tally)}, which {target_type or 'char(n)'} cannot "
            "keep: strip removes them (leading ones too)",
        )
    if category in (Category.TOO_LONG.name, Category.TOO_MANY_DIGITS.name):
        wider = "text" if category == Category.TOO_LONG.name else "numeric"
        return Fix(
            [f"[{join_key('tables', table)}]", f"cast = {{ {_key(column)} = {_toml(wider)} }}"],
            f"values in {_rows(tally)} do not fit {target_type or 'the column'}: a wider type "
            "keeps them (when lite2pg creates the table; with --data-only, widen the target "
            "column)",
        )
    if category == Category.NO_UNIT.name:
        return Fix(
            [f"[{section}]", _transforms([*specs, '{ interval = { unit = "microseconds" } }'])],
            f"numbers in {_rows(tally)} of an interval column: say their unit (microseconds "
            'for Django\'s DurationField; "milliseconds", "seconds" or "days" otherwise)',
        )
    if category == Category.NOT_JSON.name and target_type == "jsonb":
        return Fix(
            [f"[{join_key('tables', table)}]", f"cast = {{ {_key(column)} = {_toml('json')} }}"],
            f"values in {_rows(tally)} that jsonb would refuse or change: json keeps the text "
            "as written (when lite2pg creates the table)",
        )
    if category == Category.ORPHAN.name:
        fk = join_key(join_key(join_key("tables", table), "foreign_keys"), column)
        return Fix(
            [f"[{fk}]", 'on_orphan = "null"'],
            f"references in {_rows(tally)} point at rows that will not be loaded: on_orphan "
            '= "null" keeps the rows without the reference ("keep" keeps the reference)',
        )
    return None


def _epoch_fix(section: str, specs: list[str], tally: ValueTally) -> Fix | None:
    if tally.low is None or tally.high is None:
        return None
    span = f"between {sci(tally.low)} and {sci(tally.high)}"
    if tally.low == tally.high:
        span = f"{sci(tally.low)}"
    counted = f"all {tally.numbers:,} values are {span}"
    if tally.others:
        counted = f"{tally.numbers:,} values are {span} ({tally.others:,} are not numbers)"
    guess = guess_epoch(tally.low, tally.high)
    if guess is None:
        return Fix(
            [],
            f"{counted}: no one unit (epoch seconds, milliseconds, Julian days) puts them "
            "all in the years 1900-2200; convert them at the source, or split the column",
        )
    name, options = guess
    unit = str(options.get("epoch", "seconds"))
    julian = bool(options.get("julian", False))
    first = from_number(tally.low, unit, julian).year
    last = from_number(tally.high, unit, julian).year
    years = f"{first}" if first == last else f"{first}\u2013{last}"
    step = f"{{ timestamp = {_toml(options)} }}"
    return Fix([f"[{section}]", _transforms([*specs, step])], f"{counted}: {name}, {years}")


def _map_fix(section: str, tally: ValueTally) -> Fix:
    shown = tally.common(PROPOSED_VALUES)
    lines = [f"# add to the values of the map in [{section}]:"]
    lines += [f"{_key(_text(v))} = {_toml(PLACEHOLDER)}  # {n:,} rows" for v, n in shown]
    rest = sum(tally.distinct.values()) + tally.more - sum(n for _, n in shown)
    why = f"{_distinct(tally)} not in the map: give each its target in place of {PLACEHOLDER!r}"
    if rest:
        why += f" ({rest:,} more rows hold other values; --json lists up to {MAX_DISTINCT:,})"
    why += ', or set on_unknown = "null" / "keep"'
    return Fix(lines, why)


def _label_fix(
    section: str, specs: list[str], tally: ValueTally, labels: Sequence[str]
) -> Fix | None:
    shown = tally.common(PROPOSED_VALUES)
    if not shown:
        return None
    by_fold = {label.casefold(): label for label in labels}
    values = {_text(v): by_fold.get(_text(v).strip().casefold(), PLACEHOLDER) for v, _ in shown}
    step = f'{{ map = {{ values = {_toml(values)}, on_unknown = "keep" }} }}'
    why = f"{_distinct(tally)} are not labels of the enum"
    why += f" ({', '.join(labels)})" if labels else ""
    why += f': map each to a label (in place of {PLACEHOLDER!r}); on_unknown = "keep" passes'
    why += " the labels through"
    return Fix([f"[{section}]", _transforms([*specs, step])], why)


def _round_fix(
    section: str, transforms: Sequence[Spec], tally: ValueTally, target_type: str | None
) -> Fix:
    numeric = next((s for s in transforms if s.name == "numeric"), None)
    if numeric is not None:
        options = dict(numeric.options) if isinstance(numeric.options, Mapping) else {}
        options["rounding"] = "half_even"
        steps = [
            _inline_spec(Spec(s.name, options, s.key)) if s is numeric else _inline_spec(s)
            for s in transforms
        ]
        return Fix(
            [f"[{section}]", _transforms(steps)],
            f"values in {_rows(tally)} have more decimals than the numeric transform's "
            'scale: rounding = "half_even" rounds them',
        )
    return Fix(
        [f"[{section}]", "round = true"],
        f"values in {_rows(tally)} have more digits than {target_type or 'the column'} "
        "keeps, which PostgreSQL would round silently: round = true rounds them as "
        "PostgreSQL would, and verify compares the rounded values",
    )


def _rows(tally: ValueTally) -> str:
    n = sum(tally.distinct.values()) + tally.more
    return f"{n:,} row" + ("" if n == 1 else "s")


def _distinct(tally: ValueTally) -> str:
    n = len(tally.distinct)
    more = "+" if tally.more else ""
    return f"{n:,}{more} distinct value" + ("" if n == 1 and not more else "s")


def sci(number: decimal.Decimal) -> str:
    """A number short: 1.5e12, 2460000, -3.2e9."""
    if abs(number) < 10_000_000 and number == number.to_integral_value():
        return str(int(number))
    text = f"{number:.1e}".replace("e+", "e")
    mantissa, _, exponent = text.partition("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _key(name: str) -> str:
    return name if _BARE.fullmatch(name) else _toml(name)


def _toml(value: object) -> str:
    """A value as TOML inline text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        escaped = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped)
        return f'"{escaped}"'
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(str(k))} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return _toml(str(value))


def _inline_spec(spec: Spec) -> str:
    if spec.options is True:
        return _toml(spec.name)
    return f"{{ {_key(spec.name)} = {_toml(spec.options)} }}"


def _transforms(steps: Sequence[str]) -> str:
    return "transforms = [" + ", ".join(steps) + "]"
