"""Multiple-choice answers: letters, option values and option texts, on real MathQA options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reftlab.data.options import parse_options
from reftlab.rewards.choices import (
    Choice,
    extract_choice,
    letters_for_text,
    letters_for_value,
    option_value,
    read_choice,
    value_before_answer,
)
from reftlab.rewards.numbers import WrittenNumber, parse_number

# mathqa_2 in ReFT's test file
STATIONS = {"a": "156", "b": "167", "c": "870", "d": "352", "e": "380"}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("38", 38.0),
        ("15 / 8 ohms", 15 / 8),
        ("rs . 1200", 1200.0),
        ("s . 5100", 5100.0),
        ("$ 14", 14.0),
        ("$ . 90", 90.0),
        ("16.66 %", 16.66),
        ("- 1 / 6", -1 / 6),
        ("\u2212 120", -120.0),
        ("5 1 / 2", 5.5),
        ("297 cm 2", 297.0),  # squared units, not a second number
        ("2400 m ^ 2", 2400.0),
        ("30 km / hr", 30.0),
        ("24,000", 24000.0),
        ("q = 200", 200.0),
        ("b ) 120 %", 120.0),  # the label repeated inside the text
        ("a . 0.6", 0.6),
        ("16 days .", 16.0),
    ],
)
def test_option_value_reads_mathqa_spellings(text: str, value: float) -> None:
    parsed = option_value(text)
    assert parsed is not None and parsed.value == pytest.approx(value)


@pytest.mark.parametrize(
    "text",
    [
        "data inadequate",
        "none of these",
        "30 , 10",
        "6 / \u03c0",
        "4 \u03c0",
        "40 minutes 20 seconds",
        "78 + ( 4 / 7 ) %",
        "1 , 000,000",
        "25 / \u221a \u03c0",
    ],
)
def test_option_value_refuses_text_and_expressions(text: str) -> None:
    assert option_value(text) is None


def test_option_value_is_linear_on_long_tails() -> None:
    assert option_value("38 " + "a" * 50_000 + " !") is None
    assert option_value("38 " + "km " * 20_000).value == 38.0


@pytest.mark.parametrize(
    "written",
    [
        "(c)",
        "c )",
        "c)",
        "C.",
        "c",
        "C",
        "c: 870",
        "option c",
        "choice (c)",
        "'c'",
        '"c"',
        "c ) 870",
    ],
)
def test_letter_spellings(written: str) -> None:
    assert read_choice(written, STATIONS) == Choice(("c",), "letter")


def test_article_a_is_not_a_letter() -> None:
    # "a total of 870" is the value 870 (option c), not option a.
    assert read_choice("a total of 870 tickets", STATIONS) == Choice(("c",), "value")


def test_value_selects_nearest_matching_option() -> None:
    options = {"a": "16 %", "b": "16.66 %", "c": "76.69 %", "d": "76.98 %", "e": "75 %"}
    # 16.666... is within one unit of the truncated "16.66" (0.0067 < 0.01)
    assert letters_for_value(WrittenNumber(50 / 3, "16.67", 2), options) == ("b",)
    # 76.693 is within a unit (0.01) of "76.69" only; 76.975 of "76.98" only; 76.8 of neither
    assert letters_for_value(parse_number("76.693"), options) == ("c",)
    assert letters_for_value(parse_number("76.975"), options) == ("d",)
    assert letters_for_value(parse_number("76.8"), options) == ()
    assert letters_for_value(parse_number("50"), options) == ()
    # 38 * (1 + 1e-5) is within the 1e-4 relative option tolerance of "38"
    assert letters_for_value(WrittenNumber(38.00038, "38.00038", 5), {"a": "38"}) == ("a",)


def test_duplicate_options_tie() -> None:
    options = {"a": "2000", "b": "2778", "c": "2299", "d": "2778", "e": "2240"}
    assert read_choice("2778", options) == Choice(("b", "d"), "value")


def test_text_options_match_longest_first() -> None:
    options = {"a": "38", "b": "27.675", "c": "30", "d": "data inadequate", "e": "none of these"}
    assert letters_for_text("None of these.", options) == ("e",)
    assert read_choice("data inadequate", options) == Choice(("d",), "text")
    assert letters_for_text("none", {"a": "none", "b": "none of these"}) == ("a",)
    assert letters_for_text("none of these", {"a": "none", "b": "none of these"}) == ("b",)


def test_extract_choice_from_completions() -> None:
    cot = "28 stations plus 2 ends: 30 * 29 = 870 tickets."
    assert extract_choice(cot + " The answer is (c).", STATIONS).letters == ("c",)
    assert extract_choice(cot + " The answer is 870.", STATIONS) == Choice(("c",), "value")
    assert extract_choice(cot + " The answer is 871.", STATIONS) is None  # no such option
    assert extract_choice(cot, STATIONS) == Choice(("c",), "value")  # last-number fallback
    assert extract_choice(cot, STATIONS, fallback="none") is None
    assert value_before_answer(cot + " The answer is (c).").value == 870.0


def mathqa_original(shared_data: Path) -> list[dict]:
    path = shared_data / "mathqa" / "mathqa_test_nodup_our_filtered.json"
    return json.loads(path.read_text())


def test_gold_values_select_gold_letters_on_real_mathqa(shared_data: Path) -> None:
    """The source's numeric answer, matched to its options, gives the correct letter."""
    records = mathqa_original(shared_data)
    exact, tie, unmatched, wrong = 0, 0, [], []
    for record in records:
        options = parse_options(record["options"])
        value = WrittenNumber(float(record["answer"]), repr(float(record["answer"])), 17)
        letters = letters_for_value(value, options)
        if letters == (record["correct"],):
            exact += 1
        elif record["correct"] in letters:
            tie += 1
        elif letters:
            wrong.append(record["id"])
        else:
            unmatched.append(record["id"])
    # A value never selects a wrong option. The 8 ties are duplicate options holding the gold.
    # The 12 unmatched are records whose numeric "answer" is not their correct option: the sign
    # is dropped ("− 120" stored as 120.0, "- 6" as 6.0), the value is in other units ("$ 1,354"
    # stored as 1.0, "13,400" as 13.0), or the correct option is an expression or a pair
    # ("30 , 10", "3 ab / 11", "78 + ( 4 / 7 ) %", "1 , 000,000").
    assert (len(records), exact, tie, len(unmatched), wrong) == (1605, 1585, 8, 12, [])


def test_reft_mathqa_question_layouts_parse_to_five_options(shared_data: Path) -> None:
    records = json.loads((shared_data / "reft" / "mathqa_test_set.json").read_text())
    valued = 0
    for record in records:
        options = parse_options(record["question"].split("\n")[-1])
        assert sorted(options) == list("abcde")
        valued += option_value(options[record["answer_value"]]) is not None
    # Correct options that are text or expressions ("none of these", "30 , 10") have no value.
    assert valued / len(records) > 0.95
