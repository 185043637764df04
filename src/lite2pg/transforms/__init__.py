"""Per-column value transforms, compiled from plan specs into plain callables.

A spec is a one-key table `{ name = options }` (or just `"name"` for a transform without
options); `compile_chain` turns a list of specs into one `Transform` applying them in order.
A `Transform` takes a value as Python's sqlite3 returns it (None, int, float, str, bytes)
and returns None, int, float, str, bytes, bool, Decimal, an aware UTC datetime, a date or a
`native.Interval`, or raises `TransformError(reason)`.

Transforms: map, boolean, integer, numeric, strip, lower, nullif, default, required
(values.py), timestamp (timestamps.py), interval (intervals.py), hash_password
(passwords.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from lite2pg.errors import PlanError
from lite2pg.transforms._common import Compiler, Transform
from lite2pg.transforms._options import join_key, type_name, unknown_key_problem
from lite2pg.transforms.intervals import compile_interval
from lite2pg.transforms.passwords import compile_hash_password
from lite2pg.transforms.timestamps import compile_timestamp
from lite2pg.transforms.values import (
    compile_boolean,
    compile_default,
    compile_integer,
    compile_lower,
    compile_map,
    compile_nullif,
    compile_numeric,
    compile_required,
    compile_strip,
)

__all__ = [
    "COMPILERS",
    "SECRET_TRANSFORMS",
    "Spec",
    "Transform",
    "compile_chain",
    "compile_transform",
    "compose",
    "identity",
    "parse_spec",
]

COMPILERS: Mapping[str, Compiler] = {
    "hash_password": compile_hash_password,
    "map": compile_map,
    "timestamp": compile_timestamp,
    "interval": compile_interval,
    "boolean": compile_boolean,
    "integer": compile_integer,
    "numeric": compile_numeric,
    "strip": compile_strip,
    "lower": compile_lower,
    "nullif": compile_nullif,
    "default": compile_default,
    "required": compile_required,
}

# A column with one of these is secret: no reason in its chain may show its values.
SECRET_TRANSFORMS = frozenset({"hash_password"})


@dataclasses.dataclass(frozen=True)
class Spec:
    """One transform as the plan gives it: its name, raw options, and dotted key."""

    name: str
    options: object
    key: str


def parse_spec(raw: object, key: str) -> Spec:
    """Read `"name"` or `{ name = options }` into a `Spec`."""
    if isinstance(raw, str):
        name, options = raw, True
    elif isinstance(raw, Mapping):
        if len(raw) != 1:
            problem = "is empty" if not raw else f"has {len(raw)} keys ({', '.join(raw)})"
            raise PlanError(key, f"a transform is a table with exactly one key; this one {problem}")
        ((name, options),) = raw.items()
    else:
        raise PlanError(key, f'expected {{ name = options }} or "name", got {type_name(raw)}')
    if name not in COMPILERS:
        raise PlanError(join_key(key, name), unknown_key_problem(name, COMPILERS))
    return Spec(name, options, join_key(key, name))


def compile_transform(spec: Spec, *, secret: bool = False) -> Transform:
    """Check a spec's options and build its transform (`PlanError` if they are invalid)."""
    return COMPILERS[spec.name](spec.options, spec.key, secret)


def identity(value: object) -> object:
    """The empty chain."""
    return value


def compose(steps: Sequence[Transform]) -> Transform:
    """Apply `steps` in order."""
    if not steps:
        return identity
    if len(steps) == 1:
        return steps[0]
    frozen = tuple(steps)

    def chain(value: object) -> object:
        for step in frozen:
            value = step(value)
        return value

    return chain


def compile_chain(specs: Sequence[object], key: str = "transforms") -> Transform:
    """Compile a list of raw specs into one transform; secret if any step is."""
    parsed = [parse_spec(raw, join_key(key, i)) for i, raw in enumerate(specs)]
    secret = any(spec.name in SECRET_TRANSFORMS for spec in parsed)
    return compose([compile_transform(spec, secret=secret) for spec in parsed])
