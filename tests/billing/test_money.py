from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.money import (
    decimal_text,
    fen_to_yuan,
    fraction_text,
    parse_decimal,
    parse_fraction,
    round_fen,
    round_half_up,
    yuan_text,
)
from pipeline.billing.yaml_decimal import load_yaml

from . import reference_rating as reference


@pytest.mark.parametrize(
    ("value", "fen"),
    [("0.005", 1), ("0.004999", 0), ("-0.005", -1), ("282.145", 28215), ("2.675", 268)],
)
def test_round_fen_half_up(value: str, fen: int) -> None:
    assert round_fen(Decimal(value)) == fen


def test_round_fen_of_fraction_tie() -> None:
    assert round_fen(Fraction(1, 200)) == 1
    assert round_fen(Fraction(1, 3)) == 33


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=6, max_value=10**9, min_value=-(10**9)
    ),
    st.integers(0, 5),
)
def test_round_half_up_matches_decimal_quantize(value: Decimal, places: int) -> None:
    expected = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    assert round_half_up(value, places) == expected


def test_yuan_text() -> None:
    assert yuan_text(28215) == "282.15"
    assert yuan_text(-5) == "-0.05"
    assert fen_to_yuan(100) == Decimal("1.00")


@pytest.mark.parametrize("bad", [0.1, True, "abc", "NaN", "Infinity", None, [1]])
def test_parse_decimal_refuses(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_decimal(bad)


def test_parse_decimal_accepts_text_int_decimal() -> None:
    assert parse_decimal(" 1_000.5 ") == Decimal("1000.5")
    assert parse_decimal(3) == 3
    assert parse_decimal(Decimal("0.1")) == Decimal("0.1")


@given(st.fractions(max_denominator=10**6))
def test_fraction_text_round_trip(value: Fraction) -> None:
    assert parse_fraction(fraction_text(value)) == value


def test_fraction_text_is_decimal_when_finite() -> None:
    assert fraction_text(Fraction(5, 2)) == "2.5"
    assert fraction_text(Fraction(1, 3)) == "1/3"
    assert fraction_text(Fraction(-7)) == "-7"


def test_yaml_floats_are_exact_decimals() -> None:
    data = load_yaml("a: 0.1\nb: 0.2\nc: 0.4883\nd: 1_0.5\ne: 7\n")
    assert data["a"] + data["b"] == Decimal("0.3")  # no 0.30000000000000004
    assert isinstance(data["c"], Decimal) and str(data["c"]) == "0.4883"
    assert data["d"] == Decimal("10.5")
    assert data["e"] == 7


def test_yaml_refuses_infinite() -> None:
    import yaml

    with pytest.raises(yaml.YAMLError):
        load_yaml("a: .inf\n")
    with pytest.raises(yaml.YAMLError):
        load_yaml("a: .nan\n")


@settings(max_examples=500)
@given(
    st.one_of(
        st.fractions(),
        st.decimals(allow_nan=False, allow_infinity=False),
        st.integers(-(10**30), 10**30),
    ),
    st.integers(0, 45),
)
def test_rounding_and_text_match_the_reference(
    value: Fraction | Decimal | int, places: int
) -> None:
    """Same Decimal (value, exponent and sign of zero) and same text as the reference core."""
    expected = reference.round_half_up(value, places)
    got = round_half_up(value, places)
    assert (got, str(got)) == (expected, str(expected))
    exact = Fraction(value)
    assert fraction_text(exact) == reference.fraction_text(exact)


@given(st.decimals())
def test_decimal_text_is_positional_text(value: Decimal) -> None:
    assert decimal_text(value) == f"{value:f}"
