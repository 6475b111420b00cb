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
        ("45%", "0.45", False),  # documented choice: a percent is its number
        ("3/4", "0.75", True),
        ("0.30000000000000004", "0.3", True),  # float noise: 1.4e-17 <= 1e-9
        ("1234568", "1234567", False),  # relative 8.1e-7 > 1e-9
        # MathQA-numeric: 5/12 written to two decimals; |0.41666... - 0.42| = 0.00333 <= 0.005
        ("0.42", "0.4166666666666667", True),
        ("0.4167", "0.4166666666666667", True),  # 0.0000333 <= 0.00005
        ("0.4", "0.4166666666666667", False),  # one decimal gives no slack
        ("0.41", "0.4166666666666667", False),  # truncated: 0.00667 > 0.005
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


def test_rounding_slack_is_half_a_unit_of_the_last_digit() -> None:
    assert rounding_slack(number("0.42")) == pytest.approx(0.5 * 0.01)
    assert rounding_slack(number("3.333")) == pytest.approx(0.5 * 0.001)
    assert rounding_slack(number("3.5")) == 0.0
    assert rounding_slack(number("12")) == 0.0


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_thousands_separators_round_trip(value: int) -> None:
    assert number(f"{value:,}").value == value
    assert numbers_match(number(f"{value:,}"), number(str(value)))


@given(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
    st.integers(min_value=2, max_value=6),
)
def test_a_value_rounded_to_two_or_more_decimals_matches_it(value: float, places: int) -> None:
    exact = WrittenNumber(value, repr(value), 17)
    assert numbers_match(number(f"{value:.{places}f}"), exact)


@given(st.integers(min_value=-(10**6), max_value=10**6), st.floats(min_value=0.01, max_value=0.99))
def test_integers_never_get_rounding_slack(gold: int, offset: float) -> None:
    # Beyond the 1e-9 tolerances (at most 1e-3 here), an integer gold accepts nothing else.
    whole = WrittenNumber(float(gold), str(gold), 0)
    shifted = WrittenNumber(gold + offset, repr(gold + offset), 17)
    assert not numbers_match(shifted, whole)
