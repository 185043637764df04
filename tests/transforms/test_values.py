from __future__ import annotations

import decimal
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lite2pg.errors import PlanError, TransformError
from lite2pg.transforms import Spec, Transform, compile_chain, compile_transform, parse_spec


def make(name: str, options: object = True) -> Transform:
    return compile_transform(Spec(name, options, name))


def reason(transform: Transform, value: object) -> str:
    with pytest.raises(TransformError) as caught:
        transform(value)
    return caught.value.reason


# --- strip, lower, nullif, default, required -------------------------------------------


def test_strip_and_lower_change_text_and_pass_other_types() -> None:
    assert make("strip")("  a b \n") == "a b"
    assert make("lower")("ÀbC") == "àbc"
    for value in (None, 3, 2.5, b" x "):
        assert make("strip")(value) == value
        assert make("lower")(value) == value


def test_nullif_turns_listed_values_into_null_and_keeps_text_apart_from_numbers() -> None:
    nullif = make("nullif", ["", "N/A", 0])
    assert nullif("") is None
    assert nullif("N/A") is None
    assert nullif(0) is None
    assert nullif(0.0) is None
    assert nullif("0") == "0"
    assert nullif(" ") == " "
    assert make("nullif", "")("") is None


def test_default_replaces_only_null() -> None:
    default = make("default", "customer")
    assert default(None) == "customer"
    assert default("") == ""
    assert default(0) == 0


def test_required_rejects_null_with_a_reason() -> None:
    assert reason(make("required"), None) == "required: value is NULL"
    assert make("required")("") == ""


def test_flag_transforms_refuse_false_and_unknown_options() -> None:
    with pytest.raises(PlanError, match="remove the transform"):
        make("strip", False)
    with pytest.raises(PlanError, match="unknown key 'chars'"):
        make("strip", {"chars": "x"})


# --- integer, numeric ----------------------------------------------------------------


def test_integer_accepts_whole_numbers_in_any_storage() -> None:
    integer = make("integer")
    assert integer(3) == 3
    assert integer(" 3 ") == 3
    assert integer("-3") == -3
    assert integer(3.0) == 3
    assert integer("3.0") == 3
    assert integer("1e3") == 1000
    assert integer(None) is None


def test_integer_rejects_fractions_and_never_truncates() -> None:
    integer = make("integer")
    assert reason(integer, "3.5") == "integer: '3.5' is not a whole number"
    assert reason(integer, 3.5) == "integer: 3.5 is not a whole number"
    assert reason(integer, "three") == "integer: cannot parse 'three'"
    assert reason(integer, str(2**63)).endswith("is out of bigint range")
    assert reason(integer, "1e400").endswith("is out of bigint range")
    assert reason(integer, b"\x01") == "integer: cannot convert a BLOB value"
    assert reason(integer, "٣") == "integer: cannot parse '٣'"  # Arabic-Indic three


def test_numeric_is_exact_and_keeps_the_written_digits_of_a_real() -> None:
    numeric = make("numeric")
    assert numeric("1.10") == decimal.Decimal("1.10")
    assert numeric(0.1) == decimal.Decimal("0.1")  # not 0.1000000000000000055...
    assert numeric(7) == decimal.Decimal(7)
    assert reason(numeric, "NaN") == "numeric: cannot parse 'NaN'"
    assert reason(numeric, float("inf")) == "numeric: inf is not a finite number"


def test_numeric_with_scale_rejects_a_value_that_would_need_rounding() -> None:
    numeric = make("numeric", {"scale": 2})
    assert str(numeric("1.5")) == "1.50"
    assert reason(numeric, "3.14159") == "numeric: '3.14159' needs rounding to 2 decimal places"


def test_numeric_rounds_half_even_only_when_asked() -> None:
    numeric = make("numeric", {"scale": 2, "rounding": "half_even"})
    assert numeric("3.14159") == decimal.Decimal("3.14")
    assert numeric("0.125") == decimal.Decimal("0.12")
    assert numeric(2.675) == decimal.Decimal("2.68")  # the written 2.675, not its float


def test_numeric_precision_rejects_too_many_integer_digits() -> None:
    numeric = make("numeric", {"precision": 5, "scale": 2})
    assert numeric("999.99") == decimal.Decimal("999.99")
    assert reason(numeric, "1000") == "numeric: '1000' does not fit numeric(5, 2)"


def test_numeric_options_are_checked() -> None:
    with pytest.raises(PlanError, match="rounding needs a scale"):
        make("numeric", {"rounding": "half_even"})
    with pytest.raises(PlanError, match=re.escape("expected 'reject' | 'half_even'")):
        make("numeric", {"scale": 2, "rounding": "up"})
    with pytest.raises(PlanError, match="scale 3 exceeds precision 2"):
        make("numeric", {"scale": 3, "precision": 2})


# --- boolean ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, True),
        (0, False),
        (1.0, True),
        ("yes", True),
        ("No", False),
        (" TRUE ", True),
        ("false", False),
        ("t", True),
        ("F", False),
        ("Y", True),
        ("n", False),
        ("on", True),
        ("OFF", False),
        ("1", True),
        ("0", False),
        (None, None),
    ],
)
def test_boolean_reads_the_usual_spellings(value: object, expected: bool | None) -> None:
    assert make("boolean")(value) is expected


def test_boolean_rejects_anything_else() -> None:
    boolean = make("boolean")
    assert reason(boolean, 2) == "boolean: 2 is neither 0 nor 1"
    assert reason(boolean, "maybe") == "boolean: cannot interpret 'maybe'"
    assert reason(boolean, "") == "boolean: cannot interpret ''"


def test_boolean_takes_extra_values_but_not_contradictory_ones() -> None:
    boolean = make("boolean", {"true_values": ["Oui"], "false_values": ["non"]})
    assert boolean("oui") is True
    assert boolean("NON") is False
    with pytest.raises(PlanError, match="'yes' cannot be both"):
        make("boolean", {"false_values": ["yes"]})


# --- map -------------------------------------------------------------------------------

STATUS = {"in progress": "in_progress", "wip": "in_progress", "open": "open"}


def test_map_translates_exactly_by_default() -> None:
    mapper = make("map", {"values": STATUS})
    assert mapper("wip") == "in_progress"
    assert reason(mapper, "WIP") == "map: unknown value 'WIP'"
    assert mapper(None) is None


def test_map_can_ignore_case_and_whitespace() -> None:
    mapper = make("map", {"values": STATUS, "ignore_case": True, "trim": True})
    assert mapper("  In   PROGRESS\t") == "in_progress"
    assert mapper("Open") == "open"
    assert reason(mapper, "reopened?") == "map: unknown value 'reopened?'"


def test_map_looks_numbers_up_by_their_text() -> None:
    mapper = make("map", {"values": {"1": "low", "4": "urgent"}})
    assert mapper(1) == "low"
    assert mapper("4") == "urgent"
    assert reason(mapper, 2) == "map: unknown value 2"


@pytest.mark.parametrize(
    ("on_unknown", "expected"),
    [("keep", " Weird "), ("null", None), ("default:other", "other")],
)
def test_map_on_unknown_policies(on_unknown: str, expected: object) -> None:
    mapper = make("map", {"values": STATUS, "on_unknown": on_unknown})
    assert mapper(" Weird ") == expected


def test_map_rejects_keys_that_clash_once_normalised() -> None:
    with pytest.raises(PlanError, match="clashes with 'open'") as caught:
        make("map", {"values": {"open": "open", "OPEN": "closed"}, "ignore_case": True})
    assert caught.value.key == "map.values.OPEN"
    make("map", {"values": {"open": "open", "OPEN": "open"}, "ignore_case": True})


def test_map_options_are_checked() -> None:
    with pytest.raises(PlanError, match="values: missing"):
        make("map", {"ignore_case": True})
    with pytest.raises(PlanError, match="is empty"):
        make("map", {"values": {}})
    with pytest.raises(PlanError, match="did you mean 'on_unknown'"):
        make("map", {"values": STATUS, "on_unknwon": "keep"})
    with pytest.raises(PlanError, match="'default:VALUE'"):
        make("map", {"values": STATUS, "on_unknown": "drop"})


def _vary(text: str, data: st.DataObject) -> str:
    """The same text with random case and whitespace runs."""
    # Only case changes that casefold undoes: dotless i (U+0131) upper-cases to 'I', whose
    # casefold is a dotted 'i'.
    chars = [
        c.upper() if c.upper().casefold() == c.casefold() and data.draw(st.booleans()) else c
        for c in text
    ]
    varied = "".join(chars)
    gap = data.draw(st.sampled_from([" ", "  ", "\t", " \u00a0 "]))
    varied = varied.replace(" ", gap)
    edges = st.sampled_from(["", " ", "\t", "\n "])
    return data.draw(edges) + varied + data.draw(edges)


keys = st.text(
    alphabet=st.characters(categories=["Ll", "Nd"], max_codepoint=0x24F), min_size=1, max_size=8
)


@given(
    table=st.dictionaries(
        st.lists(keys, min_size=1, max_size=3).map(" ".join), keys, min_size=1, max_size=8
    ),
    data=st.data(),
)
def test_map_finds_every_key_whatever_its_case_and_spacing(
    table: dict[str, str], data: st.DataObject
) -> None:
    mapper = make("map", {"values": table, "ignore_case": True, "trim": True})
    for source, target in table.items():
        assert mapper(_vary(source, data)) == target


@given(value=st.one_of(st.text(), st.integers(), st.floats(), st.binary(), st.none()))
def test_map_answers_any_value_with_a_result_or_a_reason(value: object) -> None:
    mapper = make("map", {"values": STATUS, "ignore_case": True, "trim": True})
    try:
        result = mapper(value)
    except TransformError as exc:
        assert exc.reason.startswith("map: unknown value ")
        assert len(exc.reason) < 100
    else:
        assert result in (*STATUS.values(), None)


# --- chains ----------------------------------------------------------------------------


def test_a_chain_applies_its_transforms_in_order() -> None:
    chain = compile_chain(["strip", {"nullif": ""}, {"default": "customer"}, "lower"])
    assert chain("  ") == "customer"
    assert chain(" Admin ") == "admin"


def test_a_chain_with_hash_password_never_shows_values_in_reasons() -> None:
    chain = compile_chain([{"map": {"values": {"x": "y"}}}, "hash_password"])
    assert reason(chain, "hunter2") == "map: unknown value <redacted>"


def test_an_unknown_transform_name_gets_a_suggestion() -> None:
    with pytest.raises(PlanError, match="did you mean 'timestamp'") as caught:
        parse_spec({"timestmap": True}, "transforms[0]")
    assert caught.value.key == "transforms[0].timestmap"


def test_a_transform_spec_has_exactly_one_key() -> None:
    with pytest.raises(PlanError, match=re.escape("has 2 keys (strip, lower)")):
        parse_spec({"strip": True, "lower": True}, "transforms[0]")
    with pytest.raises(PlanError, match="is empty"):
        parse_spec({}, "transforms[0]")
    with pytest.raises(PlanError, match="got an integer"):
        parse_spec(3, "transforms[0]")


any_value = st.one_of(
    st.none(), st.text(), st.integers(), st.floats(), st.binary(), st.decimals(), st.booleans()
)


@given(any_value)
def test_value_transforms_answer_any_value_with_a_result_or_a_reason(value: object) -> None:
    # Each answers with a value of its own type (NULL stays NULL), or refuses naming itself
    # in a short reason: never another exception, never a value of another type.
    for name, transform, kind in (
        ("integer", make("integer"), int),
        ("numeric", make("numeric"), decimal.Decimal),
        ("numeric", make("numeric", {"scale": 2, "precision": 6}), decimal.Decimal),
        ("boolean", make("boolean"), bool),
    ):
        try:
            result = transform(value)
        except TransformError as exc:
            assert exc.reason.startswith(f"{name}: ") and len(exc.reason) < 120, exc.reason
        else:
            if value is None:
                assert result is None
            else:
                assert type(result) is kind, (name, value, result)


@given(st.decimals(allow_nan=False, allow_infinity=False).filter(lambda d: d.adjusted() < 1000))
def test_numeric_reads_back_any_decimal_written_as_text(value: decimal.Decimal) -> None:
    assert make("numeric")(str(value)) == value


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_integer_reads_back_any_bigint_written_as_text(value: int) -> None:
    assert make("integer")(f" {value} ") == value
    assert make("integer")(value) == value
