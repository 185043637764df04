"""Tests written for survivors of the mutation run over transforms/values.py (tests/mutation):
each pins a behaviour that a one-token change to the module let through."""

from __future__ import annotations

import decimal

import psycopg
import pytest

from lite2pg.errors import PlanError, TransformError
from lite2pg.transforms import Spec, Transform, compile_transform


def make(name: str, options: object = True) -> Transform:
    return compile_transform(Spec(name, options, f"tables.t.columns.c.{name}"))


def accepts(transform: Transform, value: object) -> bool:
    try:
        transform(value)
    except TransformError:
        return False
    return True


@pytest.mark.parametrize(
    ("options", "precision", "scale"),
    [
        ({"precision": 3}, 3, 0),
        ({"precision": 3, "scale": 0}, 3, 0),
        ({"precision": 4, "scale": 1}, 4, 1),
    ],
)
def test_numeric_precision_takes_what_postgresql_takes_whole_numbers_included(
    pg_dsn: str, options: dict[str, int], precision: int, scale: int
) -> None:
    numeric = make("numeric", options)
    values = ["999", "1000", "-999", "-1000", "0", "1", "99", "100", "-100"]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for text in values:
            try:
                conn.execute(f"SELECT %s::numeric({precision}, {scale})", (text,))
                theirs = True
            except psycopg.errors.NumericValueOutOfRange:
                theirs = False
            assert accepts(numeric, text) is theirs, text
            if theirs:
                assert numeric(text) == decimal.Decimal(text)


@pytest.mark.parametrize(
    ("true_values", "false_values", "at_fault"),
    [
        (["oui"], ["yes"], "false_values"),  # 'yes' is already true
        (["no"], ["non"], "true_values"),  # 'no' is already false
    ],
)
def test_a_boolean_word_given_both_meanings_names_the_list_that_added_it(
    true_values: list[str], false_values: list[str], at_fault: str
) -> None:
    options = {"true_values": true_values, "false_values": false_values}
    with pytest.raises(PlanError) as caught:
        make("boolean", options)
    assert caught.value.key.endswith(f".{at_fault}"), caught.value.key


def test_nullif_false_matches_only_a_boolean_false_and_nullif_0_not_a_boolean() -> None:
    # A boolean reaches nullif from a `boolean` transform before it.
    nullif_false = make("nullif", [False])
    assert nullif_false(False) is None
    assert nullif_false(0) == 0
    assert nullif_false(True) is True
    nullif_zero = make("nullif", [0])
    assert nullif_zero(False) is False
    assert nullif_zero(0) is None


@pytest.mark.parametrize(
    "text",
    [
        "9" * 40,
        "-" + "9" * 40,
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        " " * 30 + "3",
        "0" * 40 + "7",
        "+" + "0" * 35 + "42",
    ],
)
def test_integer_text_is_taken_exactly_when_postgresql_bigint_takes_it(
    pg_dsn: str, text: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        try:
            row = conn.execute("SELECT %s::bigint", (text,)).fetchone()
            theirs = None if row is None else row[0]
        except psycopg.errors.NumericValueOutOfRange:
            theirs = None
    integer = make("integer")
    if theirs is None:
        assert not accepts(integer, text), text
    else:
        assert integer(text) == theirs


@pytest.mark.parametrize("text", ["1e999999999", "-1E200000", "1e-999999999"])
def test_numeric_text_with_an_exponent_past_postgresqls_range_is_out_of_range(
    pg_dsn: str, text: str
) -> None:
    with (
        psycopg.connect(pg_dsn, autocommit=True) as conn,
        pytest.raises(psycopg.errors.DataError),
    ):
        conn.execute("SELECT %s::numeric", (text,))
    with pytest.raises(TransformError) as caught:
        make("numeric")(text)
    assert caught.value.reason.endswith("is out of range")


@pytest.mark.parametrize("value", [3.4, "3.4", -3.6, "-2.25", 0.1, "1.0000000001"])
def test_integer_rejects_any_fraction_whichever_way_it_would_round(value: object) -> None:
    with pytest.raises(TransformError) as caught:
        make("integer")(value)
    assert caught.value.reason.endswith("is not a whole number")
