"""Reading written numbers and deciding when two are the same answer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reftlab.rewards.numbers import (
    WrittenNumber,
    find_numbers,
    numbers_match,
    parse_number,
    rounding_slack,
)


@pytest.mark.parametrize(
    ("text", "value", "canonical"),
    [
        ("850,000", 850_000.0, "850000"),  # GSM8K's "#### 850,000"
        ("1,234,567.5", 1_234_567.5, "1234567.5"),
        ("203.0", 203.0, "203.0"),
        ("-3", -3.0, "-3"),
        ("\u2212120", -120.0, "-120"),  # MathQA's unicode minus
        ("(-12)", -12.0, "-12"),
        ("3/4", 0.75, "3/4"),
        ("15 / 8 ohms", 15 / 8, "15/8"),
        ("2 1/2 cups", 2 + 1 / 2, "2 1/2"),
        ("45%", 45.0, "45%"),  # percent keeps its number
        ("16.66 %", 16.66, "16.66%"),
        ("1.5e6", 1.5 * 10**6, "1.5e6"),
        ("2E-3", 2 * 10**-3, "2e-3"),
        ("<203>.", 203.0, "203"),  # ReFT's "the answer is <203>."
        ("$1,200.50", 1200.5, "1200.50"),
        ("rs . 1200", 1200.0, "1200"),
        ("Rs.1200", 1200.0, "1200"),
        (".5", 0.5, "0.5"),
        ("0.4166666666666667", 0.4166666666666667, "0.4166666666666667"),
    ],
)
def test_parse_number_reads_real_spellings(text: str, value: float, canonical: str) -> None:
    number = parse_number(text)
    assert number is not None
    assert number.value == pytest.approx(value, rel=1e-15)
    assert number.text == canonical


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("20-12", [20.0, 12.0]),  # a minus between numbers is subtraction, not a sign
        ("x2 and 5", [5.0]),  # digits glued to a word are not numbers
        ("12 / 4 = 3", [3.0, 3.0]),
        ("1,2345", [1.0, 2345.0]),  # not a thousands group
        ("3.5.2", [3.5]),
        ("end.", []),
        ("3/0", []),
        ("1e999", []),  # overflows: not a usable number
    ],
)
def test_find_numbers_edge_cases(text: str, values: list[float]) -> None:
    assert [number.value for number in find_numbers(text)] == values


def test_decimals_count_what_was_written() -> None:
    assert parse_number("0.420").decimals == 3
    assert parse_number("9.0").decimals == 1
    assert parse_number("3/4").decimals == 0
    assert parse_number("1.25e3").decimals == 0


def number(text: str) -> WrittenNumber:
    parsed = parse_number(text)
    assert parsed is not None
    return parsed


@pytest.mark.parametrize(
    ("pred", "gold", "same"),
    [
        ("203", "203.0", True),
        ("850000", "850,000", True),
        ("45%", "45", True),
        ("45%", "0.45", True),  # a probability written as a percentage (MathQA-numeric)
        ("45%", "4.5", False),
        ("45%", "45%", True),
        ("41.67%", "0.4166666666666667", True),  # |0.4167 - 0.41667| <= 0.0001 (4 digits)
        ("3/4", "0.75", True),
        ("0.30000000000000004", "0.3", True),  # float noise: 1.4e-17 <= 1e-9
        ("1234568", "1234567", False),  # relative 8.1e-7 > 1e-9
        # MathQA-numeric: 5/12 written to two decimals; |0.41666... - 0.42| = 0.00333 <= 0.005
        ("0.42", "0.4166666666666667", True),
        ("0.4167", "0.4166666666666667", True),  # 0.0000333 <= 0.00005
        ("0.4166", "0.4166666666666667", True),  # cut off, 4 digits: 0.0000667 <= 0.0001
        ("0.4", "0.4166666666666667", False),  # one decimal gives no slack
        ("0.41", "0.4166666666666667", False),  # cut off, 2 digits: 0.00667 > 0.005
        # Small golds: the allowance is relative. mathqa-numeric_2940's gold is 0.01616.
        ("0.016", "0.01616", True),  # 2 digits: 0.00016 <= 0.0005
        ("0.02", "0.01616", False),  # 1 significant digit: no allowance, 0.00384 off (24%)
        ("0.00", "0.002", False),  # mathqa-numeric_1167: no significant digit
        ("0.06", "0.0625", False),  # 1 significant digit
        ("0.063", "0.0625", True),  # 2 digits: 0.0005 <= 0.0005
        ("3.54", "3.5", False),  # 0.04 > 0.005 (the pred's own slack)
        # ReFT's SVAMP golds are rounded: gold 3.333 covers [3.3325, 3.3335]
        ("3.3333333333333335", "3.333", True),
        ("0.33335", "0.3333", True),  # exactly half a unit away: inside
        ("0.16665", "0.165", False),  # 0.00165 > 0.0005: svamp_1418's gold is off
        ("8.999550022498877", "9.0", False),  # "9.0" is a float repr, not a rounding
    ],
)
def test_numbers_match_golden(pred: str, gold: str, same: bool) -> None:
    assert numbers_match(number(pred), number(gold)) is same


def test_reft_compatible_tolerance() -> None:
    # ReFT: abs(pred - gold) <= 1e-2, nothing else.
    reft = {"rel_tol": 0.0, "abs_tol": 1e-2, "rounding": False}
    assert numbers_match(number("8.999550022498877"), number("9.0"), **reft)  # 0.00045
    assert numbers_match(number("0.16665"), number("0.165"), **reft)  # 0.00165
    assert not numbers_match(number("0.42"), number("0.41"), **reft)  # 0.01 + float error
    assert not numbers_match(number("0.4166"), number("0.4"), **reft)  # 0.0166


def test_rounding_slack_follows_the_written_digits() -> None:
    assert rounding_slack(number("0.42")) == pytest.approx(0.5 * 0.01)  # 2 digits: rounded
    assert rounding_slack(number("0.016")) == pytest.approx(0.5 * 0.001)
    assert rounding_slack(number("3.333")) == pytest.approx(0.001)  # 4 digits: also cut off
    assert rounding_slack(number("0.02")) == 0.0  # 1 significant digit
    assert rounding_slack(number("0.00")) == 0.0
    assert rounding_slack(number("3.5")) == 0.0  # 1 decimal
    assert rounding_slack(number("12")) == 0.0


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_thousands_separators_round_trip(value: int) -> None:
    assert number(f"{value:,}").value == value
    assert numbers_match(number(f"{value:,}"), number(str(value)))


@given(
    st.floats(min_value=0.1, max_value=1e6, allow_nan=False, allow_infinity=False),
    st.integers(min_value=2, max_value=6),
    st.booleans(),
)
def test_a_value_rounded_to_two_or_more_decimals_matches_it(
    value: float, places: int, negative: bool
) -> None:
    # From 0.1 up, two decimals carry at least two significant digits.
    value = -value if negative else value
    exact = WrittenNumber(value, repr(value), 17)
    assert numbers_match(number(f"{value:.{places}f}"), exact)


@given(st.integers(min_value=1, max_value=9), st.integers(min_value=2, max_value=6))
def test_one_significant_digit_gets_no_allowance(digit: int, places: int) -> None:
    written = number(f"{digit * 10.0**-places:.{places}f}")  # 0.02, 0.003, ...
    assert written.significant == 1
    shifted = WrittenNumber(written.value * 1.2, repr(written.value * 1.2), 17)
    assert not numbers_match(written, shifted)


@given(st.integers(min_value=-(10**6), max_value=10**6), st.floats(min_value=0.01, max_value=0.99))
def test_integers_never_get_rounding_slack(gold: int, offset: float) -> None:
    # Beyond the 1e-9 tolerances (at most 1e-3 here), an integer gold accepts nothing else.
    whole = WrittenNumber(float(gold), str(gold), 0)
    shifted = WrittenNumber(gold + offset, repr(gold + offset), 17)
    assert not numbers_match(shifted, whole)
