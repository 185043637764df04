"""Reject categories come from where a value is refused, and `propose` turns a group's
values into the plan lines that fix it (pure: no database)."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from typing import Any

import pytest

from lite2pg.coerce import converter, parse_pg_type
from lite2pg.errors import PlanError, TransformError
from lite2pg.fixes import MAX_DISTINCT, ValueTally, propose, sci
from lite2pg.plan import parse_plan
from lite2pg.reasons import Category
from lite2pg.transforms import compile_chain
from lite2pg.transforms.timestamps import guess_epoch


@pytest.mark.parametrize(
    ("pg", "value", "category"),
    [
        ("timestamptz", 1_700_000_000_000, Category.EPOCH_AMBIGUOUS),
        ("timestamptz", "1700000000", Category.EPOCH_AMBIGUOUS),
        ("date", 19_000, Category.EPOCH_AMBIGUOUS),
        ("timestamptz", "", Category.EMPTY_TEXT),
        ("timestamptz", "yesterday", Category.NOT_A_DATE),
        ("timestamptz(0)", "2024-01-01 00:00:00.5", Category.TOO_PRECISE),
        ("time(1)", "10:00:00.25", Category.TOO_PRECISE),
        ("time", "10 o'clock", Category.NOT_A_TIME),
        ("numeric(10,2)", 1.005, Category.NEEDS_ROUNDING),
        ("numeric(4,2)", 123, Category.TOO_MANY_DIGITS),
        ("money", "0.001", Category.NEEDS_ROUNDING),
        ("money", 2**62, Category.OUT_OF_RANGE),
        ("smallint", 70_000, Category.OUT_OF_RANGE),
        ("bigint", "lots", Category.NOT_A_NUMBER),
        ("bigint", 1.5, Category.NOT_WHOLE),
        ("bigint", b"\x00", Category.WRONG_STORAGE),
        ("boolean", "maybe", Category.NOT_A_BOOLEAN),
        ("varchar(2)", "abc", Category.TOO_LONG),
        ("char(3)", "ab ", Category.TRAILING_BLANKS),
        ("text", "a\x00b", Category.BAD_TEXT),
        ("date", "2024-01-01 10:00", Category.TIME_OF_DAY),
        ("jsonb", "{'a': 1}", Category.NOT_JSON),
        ("jsonb", '{"a": 1, "a": 2}', Category.NOT_JSON),
        ("uuid", "not-a-uuid", Category.NOT_A_UUID),
        ("interval", 5_000_000, Category.NO_UNIT),
        ("interval", "42", Category.NO_UNIT),
        ("interval", "a while", Category.NOT_AN_INTERVAL),
        ("inet", "10.0.0.256", Category.NOT_AN_ADDRESS),
        ("cidr", "10.0.0.1/8", Category.NOT_AN_ADDRESS),
    ],
)
def test_each_refusal_of_a_type_carries_its_category(pg: str, value: Any, category: str) -> None:
    with pytest.raises(TransformError) as refused:
        converter(parse_pg_type(pg))(value)
    assert refused.value.category is category


@pytest.mark.parametrize(
    ("spec", "value", "category"),
    [
        ({"map": {"values": {"a": "b"}}}, "c", Category.NOT_MAPPED),
        ({"map": {"values": {"a": "b"}}}, "", Category.EMPTY_TEXT),
        ("required", None, Category.NULL),
        ({"timestamp": True}, "soon", Category.NOT_A_DATE),
        ({"numeric": {"scale": 1}}, "1.25", Category.NEEDS_ROUNDING),
        ("integer", "1.5", Category.NOT_WHOLE),
        ("boolean", "perhaps", Category.NOT_A_BOOLEAN),
    ],
)
def test_each_transform_refusal_carries_its_category(spec: Any, value: Any, category: str) -> None:
    with pytest.raises(TransformError) as refused:
        compile_chain([spec])(value)
    assert refused.value.category is category


def test_round_rounds_half_away_from_zero_as_postgresql_does() -> None:
    assert converter(parse_pg_type("numeric(5,2)"), rounding=True)("-2.345") == Decimal("-2.35")
    assert converter(parse_pg_type("money"), rounding=True)(0.125) == Decimal("0.13")
    assert converter(parse_pg_type("time(0)"), rounding=True)("23:59:59.5") == "24:00:00"
    ts = converter(parse_pg_type("timestamp(0)"), rounding=True)
    assert ts("2000-01-01 00:00:00.5") == "2000-01-01T00:00:01"
    assert ts("1999-12-31 23:59:58.5") == "1999-12-31T23:59:58"  # a tie goes away from 2000


@pytest.mark.parametrize(
    ("low", "high", "reading"),
    [
        ("1500000000000", "1800000000000", "epoch milliseconds"),
        ("1500000000", "1800000000", "epoch seconds"),
        ("2459000.25", "2460000.75", "Julian days"),
        ("1500000000", "1800000000000", "epoch seconds below 1e11, milliseconds above"),
        ("1500000000000", "9000000000000", None),  # ms up to the year 2255
        ("-2000000000", "4000000000", "epoch seconds"),
        ("1500000000000000", "1600000000000000", None),  # microseconds: no transform reads them
        # Up to 0: no value is 1e11 or more, so not milliseconds (and no division by 0).
        ("-5", "0", "epoch seconds"),
        # 5373484.5 is the Julian day of 10000-01-01, past every date: the range is seconds.
        ("2451545", "5373484.5", "epoch seconds"),
    ],
)
def test_guess_epoch_takes_the_one_unit_that_puts_every_value_in_1900_to_2200(
    low: str, high: str, reading: str | None
) -> None:
    guess = guess_epoch(Decimal(low), Decimal(high))
    assert (guess[0] if guess else None) == reading


def _tally(values: list[Any]) -> ValueTally:
    tally = ValueTally()
    for v in values:
        tally.add(v)
    return tally


def test_a_proposed_epoch_fix_is_a_plan_that_loads_the_values() -> None:
    values = [1_600_000_000 + 86_400 * i for i in range(500)]
    fix = propose("Event", "at", Category.EPOCH_AMBIGUOUS.name, _tally(values))

    assert fix is not None
    assert fix.why == "all 500 values are between 1.6e9 and 1.6e9: epoch seconds, 2020\u20132022"
    plan = parse_plan("\n".join(fix.lines))
    chain = plan.tables["Event"].columns["at"].chain
    assert chain(values[0]).isoformat() == "2020-09-13T12:26:40+00:00"  # type: ignore[attr-defined]


def test_a_proposed_map_lists_the_most_common_unknown_values_as_toml() -> None:
    values = ["Closed "] * 5 + ['say "hi"'] * 3 + [f"junk {i}" for i in range(2_000)]
    fix = propose("t", "status", Category.NOT_MAPPED.name, _tally(values))

    assert fix is not None
    assert fix.lines[1:3] == ['"Closed " = "?"  # 5 rows', '"say \\"hi\\"" = "?"  # 3 rows']
    assert tomllib.loads("\n".join(fix.lines[1:]))['say "hi"'] == "?"
    assert f"--json lists up to {MAX_DISTINCT:,}" in fix.why


def test_a_proposed_round_keeps_the_columns_numeric_transform() -> None:
    plan = parse_plan('[tables.t.columns.c]\ntransforms = ["strip", { numeric = { scale = 2 } }]')
    specs = plan.tables["t"].columns["c"].specs
    fix = propose("t", "c", Category.NEEDS_ROUNDING.name, _tally(["1.005"]), specs)

    assert fix is not None
    rounded = parse_plan("\n".join(fix.lines)).tables["t"].columns["c"].chain
    assert rounded(" 1.005 ") == Decimal("1.00")  # half_even, as the transform documents


def test_sci_is_short() -> None:
    assert [sci(Decimal(x)) for x in ("1500000000000", "2460000", "-3.25e9", "0.5")] == [
        "1.5e12",
        "2460000",
        "-3.2e9",
        "5e-1",
    ]


def test_round_is_a_per_column_plan_option_that_needs_no_transforms() -> None:
    plan = parse_plan("[tables.t.columns.c]\nround = true\n")
    assert plan.tables["t"].columns["c"].round
    assert plan.tables["t"].columns["c"].specs == ()
    with pytest.raises(PlanError, match=r"tables\.t\.columns\.c\.round: expected true or false"):
        parse_plan('[tables.t.columns.c]\nround = "yes"\n')
    with pytest.raises(PlanError, match="transforms: missing"):
        parse_plan("[tables.t.columns.c]\n")


def test_a_proposed_interval_unit_is_a_plan_that_loads_the_numbers() -> None:
    fix = propose("job", "took", Category.NO_UNIT.name, _tally([5_000_000]), (), "interval")
    assert fix is not None
    plan = parse_plan("\n".join(fix.lines))
    chain = plan.tables["job"].columns["took"].chain
    assert converter(parse_pg_type("interval"))(chain(5_000_000)) == "0 mons 0 days 0:00:05.000000"


def test_a_jsonb_value_with_a_key_twice_is_proposed_json_which_keeps_it() -> None:
    fix = propose("t", "doc", Category.NOT_JSON.name, _tally(['{"a": 1, "a": 2}']), (), "jsonb")
    assert fix is not None
    plan = parse_plan("\n".join(fix.lines))
    (kept,) = [plan.tables["t"].cast["doc"]]
    doc = '{"a": 1, "a": 2}'
    assert converter(parse_pg_type(kept))(doc) == doc
