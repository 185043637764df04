"""Value transforms: map, boolean, integer, numeric, strip, lower, nullif, default, required.

Each `compile_*` takes the transform's options as the plan gives them, checks them
(raising `PlanError`) and returns a plain `Transform`. NULL (None) passes through every
transform here unchanged, except `default` (which replaces it) and `required` (which
rejects it).
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Mapping

from lite2pg.errors import PlanError, TransformError
from lite2pg.reasons import Category, for_value
from lite2pg.transforms._common import Transform, flag, kind, show, table
from lite2pg.transforms._options import Scalar, check_scalar, join_key, type_name

# Decimal text as people write it (no NaN, no Infinity, no underscores, ASCII digits only:
# Python's own parsers accept Unicode digits, which a legacy column should not contain).
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")

# PostgreSQL bigint, the widest integer type; anything outside cannot be loaded as one.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# Exponents beyond this are refused before any arithmetic so that text such as '1e999999999'
# cannot make us build a gigantic number; PostgreSQL numeric allows 131072 digits anyway.
_MAX_EXPONENT = 131072


def to_decimal(value: object, name: str, secret: bool) -> decimal.Decimal:
    """Read a number (int, float, Decimal or decimal text) exactly, rejecting anything else."""
    if isinstance(value, bool):
        return decimal.Decimal(int(value))
    if isinstance(value, int):
        return decimal.Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TransformError(
                f"{name}: {show(value, secret)} is not a finite number", Category.NOT_A_NUMBER
            )
        # repr gives the shortest text that reads back as this float, i.e. what the
        # application most likely wrote, rather than the float's full binary expansion.
        return decimal.Decimal(repr(value))
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise TransformError(
                f"{name}: {show(value, secret)} is not a finite number", Category.NOT_A_NUMBER
            )
        return value
    if isinstance(value, str):
        text = value.strip()
        if not _DECIMAL_TEXT.fullmatch(text):
            raise TransformError(
                f"{name}: cannot parse {show(value, secret)}",
                for_value(value, Category.NOT_A_NUMBER),
            )
        number = decimal.Decimal(text)
        if abs(number.adjusted()) > _MAX_EXPONENT:
            raise TransformError(
                f"{name}: {show(value, secret)} is out of range", Category.OUT_OF_RANGE
            )
        return number
    raise TransformError(f"{name}: cannot convert a {kind(value)} value", Category.WRONG_STORAGE)


def compile_strip(options: object, key: str, secret: bool) -> Transform:
    """`strip = true`: remove leading and trailing whitespace from text; other types pass."""
    flag(options, key)

    def strip(value: object) -> object:
        return value.strip() if isinstance(value, str) else value

    return strip


def compile_lower(options: object, key: str, secret: bool) -> Transform:
    """`lower = true`: lower-case text; other types pass."""
    flag(options, key)

    def lower(value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    return lower


def _same(a: object, b: Scalar) -> bool:
    """Equality that keeps text and numbers apart ('1' is not 1) and booleans apart from 0/1."""
    if isinstance(b, bool) or isinstance(a, bool):
        return type(a) is type(b) and a == b
    if isinstance(b, int | float):
        return isinstance(a, int | float | decimal.Decimal) and a == b
    return type(a) is type(b) and a == b


def compile_nullif(options: object, key: str, secret: bool) -> Transform:
    """`nullif = ""` or `nullif = ["", "N/A"]`: turn exactly these values into NULL.

    Text matches exactly (put `strip` first to also catch '  '); numbers match numerically.
    """
    raw = options if isinstance(options, list) else [options]
    if not raw:
        raise PlanError(key, "give at least one value")
    values = tuple(
        check_scalar(v, join_key(key, i) if isinstance(options, list) else key)
        for i, v in enumerate(raw)
    )

    def nullif(value: object) -> object:
        return None if any(_same(value, v) for v in values) else value

    return nullif


def compile_default(options: object, key: str, secret: bool) -> Transform:
    """`default = VALUE`: replace NULL with VALUE."""
    replacement = check_scalar(options, key)

    def default(value: object) -> object:
        return replacement if value is None else value

    return default


def compile_required(options: object, key: str, secret: bool) -> Transform:
    """`required = true`: reject NULL, so a NOT NULL target column gets a clear reason."""
    flag(options, key)

    def required(value: object) -> object:
        if value is None:
            raise TransformError("required: value is NULL", Category.NULL)
        return value

    return required


def compile_integer(options: object, key: str, secret: bool) -> Transform:
    """`integer = true`: whole numbers from INTEGER, integral REAL, or number text.

    '3', ' 3 ', '3.0' and 3.0 give 3; '3.5' and 3.5 are rejected, never truncated.
    The result must fit PostgreSQL's bigint.
    """
    flag(options, key)

    def integer(value: object) -> object:
        if value is None:
            return None
        if isinstance(value, int):
            number = int(value)  # a bool becomes 0 or 1
        elif isinstance(value, str) and _INTEGER_TEXT.fullmatch(text := value.strip()):
            # Past 29 significant digits it is out of range: no int() of a huge text. Blanks
            # and leading zeros are not digits ('  007' is 7, as PostgreSQL reads it).
            digits = text.lstrip("+-").lstrip("0")
            number = int(text) if len(digits) < 30 else _INT64_MAX + 1
        else:
            exact = to_decimal(value, "integer", secret)
            if exact != exact.to_integral_value():
                raise TransformError(
                    f"integer: {show(value, secret)} is not a whole number", Category.NOT_WHOLE
                )
            number = int(exact) if exact.adjusted() < 30 else _INT64_MAX + 1
        if not _INT64_MIN <= number <= _INT64_MAX:
            raise TransformError(
                f"integer: {show(value, secret)} is out of bigint range", Category.OUT_OF_RANGE
            )
        return number

    return integer


def compile_numeric(options: object, key: str, secret: bool) -> Transform:
    """`numeric = { scale = 2, precision = 10, rounding = "reject" }`: exact decimals.

    Returns `decimal.Decimal`. With `scale`, the value is given exactly that many decimal
    places; a value that would need rounding is rejected unless `rounding = "half_even"`.
    With `precision` (as in numeric(p, s); scale defaults to 0 then, like PostgreSQL),
    a value with too many integer digits is rejected.
    """
    opts = table(options, key)
    scale = opts.get_int("scale", None, minimum=0, maximum=1000)
    precision = opts.get_int("precision", None, minimum=1, maximum=1000)
    rounding = opts.get_str("rounding", "reject", ("reject", "half_even"))
    opts.finish()
    if precision is not None and scale is None:
        scale = 0
    if precision is not None and scale is not None and scale > precision:
        raise PlanError(opts.key_of("scale"), f"scale {scale} exceeds precision {precision}")
    if rounding != "reject" and scale is None:
        raise PlanError(opts.key_of("rounding"), "rounding needs a scale")
    # Enough working precision that quantize never fails for values PostgreSQL accepts.
    context = decimal.Context(prec=_MAX_EXPONENT + 2000, rounding=decimal.ROUND_HALF_EVEN)
    quantum = decimal.Decimal(1).scaleb(-scale) if scale is not None else None

    def numeric(value: object) -> object:
        if value is None:
            return None
        exact = to_decimal(value, "numeric", secret)
        if quantum is None:
            return exact
        result = exact.quantize(quantum, context=context)
        if rounding == "reject" and result != exact:
            raise TransformError(
                f"numeric: {show(value, secret)} needs rounding to {scale} decimal places",
                Category.NEEDS_ROUNDING,
            )
        if precision is not None and result and result.adjusted() + 1 > precision - (scale or 0):
            raise TransformError(
                f"numeric: {show(value, secret)} does not fit numeric({precision}, {scale})",
                Category.TOO_MANY_DIGITS,
            )
        return result

    return numeric


_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})


def _token(text: str) -> str:
    return " ".join(text.split()).casefold()


def compile_boolean(options: object, key: str, secret: bool) -> Transform:
    """`boolean = true` or `{ true_values = ["oui"], false_values = ["non"] }`.

    0/1 (INTEGER or REAL) and the words 1/0, true/false, t/f, yes/no, y/n, on/off (any case,
    surrounding whitespace ignored) plus the extra values; anything else is rejected.
    """
    opts = table(options, key)
    extra_true = {_token(v) for v in opts.get_str_list("true_values")}
    extra_false = {_token(v) for v in opts.get_str_list("false_values")}
    opts.finish()
    trues = _TRUE | extra_true
    falses = _FALSE | extra_false
    both = trues & falses
    if both:
        where = "true_values" if extra_true & both else "false_values"
        raise PlanError(
            opts.key_of(where), f"{sorted(both)[0]!r} cannot be both a true and a false value"
        )

    def boolean(value: object) -> object:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            if value in (0, 1):
                return value == 1
            raise TransformError(
                f"boolean: {show(value, secret)} is neither 0 nor 1", Category.NOT_A_BOOLEAN
            )
        if isinstance(value, str):
            token = _token(value)
            if token in trues:
                return True
            if token in falses:
                return False
            raise TransformError(
                f"boolean: cannot interpret {show(value, secret)}",
                for_value(value, Category.NOT_A_BOOLEAN),
            )
        raise TransformError(
            f"boolean: cannot convert a {kind(value)} value", Category.WRONG_STORAGE
        )

    return boolean


def _map_key(value: object) -> str | None:
    """The text a value is looked up by: INTEGER 2 matches the key "2"; BLOBs match nothing."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | decimal.Decimal):
        return str(value)
    return None


def compile_map(options: object, key: str, secret: bool) -> Transform:
    """`map = { values = { old = "new" }, ignore_case, trim, on_unknown }`: translate values.

    Keys are text; an INTEGER or REAL value is looked up by its decimal text (2 -> "2").
    `ignore_case` compares case-insensitively (Unicode casefold); `trim` ignores leading and
    trailing whitespace and treats any inner run of whitespace as one space.
    `on_unknown`: "reject" (default), "keep" (the original value), "null", or
    "default:VALUE" (the text VALUE). NULL stays NULL; follow with `default` to replace it.
    """
    opts = table(options, key)
    raw_values = opts.get("values")
    ignore_case = opts.get_bool("ignore_case", False)
    trim = opts.get_bool("trim", False)
    on_unknown = opts.get_str("on_unknown", "reject")
    opts.finish()
    values_key = opts.key_of("values")
    if raw_values is None:
        raise PlanError(values_key, 'missing; give a table such as { "in progress" = "open" }')
    if not isinstance(raw_values, Mapping):
        raise PlanError(values_key, f"expected a table, got {type_name(raw_values)}")
    if not raw_values:
        raise PlanError(values_key, "is empty")

    def normalise(text: str) -> str:
        if trim:
            text = " ".join(text.split())
        if ignore_case:
            text = text.casefold()
        return text

    table_: dict[str, Scalar] = {}
    origin: dict[str, str] = {}
    for source, target in raw_values.items():
        entry_key = join_key(values_key, source)
        target = check_scalar(target, entry_key)
        norm = normalise(source)
        if norm in table_ and not _same(table_[norm], target):
            raise PlanError(
                entry_key,
                f"clashes with {origin[norm]!r}, which maps to {table_[norm]!r}, "
                "once case/whitespace are ignored",
            )
        table_[norm] = target
        origin[norm] = source

    keep = on_unknown == "keep"
    null = on_unknown == "null"
    fallback: str | None = None
    if on_unknown.startswith("default:"):
        fallback = on_unknown.removeprefix("default:")
    elif on_unknown not in ("reject", "keep", "null"):
        raise PlanError(
            opts.key_of("on_unknown"),
            f"expected 'reject', 'keep', 'null' or 'default:VALUE', got {on_unknown!r}",
        )

    def map_(value: object) -> object:
        if value is None:
            return None
        text = _map_key(value)
        if text is not None:
            found = table_.get(normalise(text), _MISSING)
            if found is not _MISSING:
                return found
        if keep:
            return value
        if null:
            return None
        if fallback is not None:
            return fallback
        raise TransformError(
            f"map: unknown value {show(value, secret)}", for_value(value, Category.NOT_MAPPED)
        )

    return map_


_MISSING = object()
