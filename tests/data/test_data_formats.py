"""Record mapping on hand-written rows: the Hub layouts, answers, chains of thought, options."""

from __future__ import annotations

import sys
import types

import pytest

from reftlab.data import DataError, examples_from_rows, load_from_hub
from reftlab.data.errors import RecordError
from reftlab.data.formats import is_program, normalise_cot, normalise_number
from reftlab.data.options import format_options, parse_options

# Rows shaped like the Hub copies load_from_hub reads (no network here).
OPENAI_GSM8K_ROW = {
    "question": "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of "
    "babysitting. How much did she earn?",
    "answer": "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\n"
    "Working 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10",
}
CHILLED_SVAMP_ROW = {
    "ID": "chal-777",
    "Body": "There are 87 oranges and 290 bananas in Philip's collection. If the bananas are "
    "organized into 2 groups and oranges are organized into 93 groups",
    "Question": "How big is each group of bananas?",
    "Equation": "( 290.0 / 2.0 )",
    "Answer": 145.0,
    "Type": "Common-Division",
    "question_concat": "There are 87 oranges ... How big is each group of bananas?",
}
ALLENAI_MATH_QA_ROW = {
    "Problem": "a multiple choice test consists of 4 questions , and each question has 5 answer "
    "choices . in how many r ways can the test be completed if every question is unanswered ?",
    "Rationale": '"5 choices for each of the 4 questions , thus total r of 5 * 5 * 5 * 5 = 5 ^ 4 '
    '= 625 ways to answer all of them . answer : c ."',
    "options": "a ) 24 , b ) 120 , c ) 625 , d ) 720 , e ) 1024",
    "correct": "c",
    "annotated_formula": "power(5, 4)",
    "linear_formula": "power(n1,n0)|",
    "category": "general",
}


def test_openai_gsm8k_hub_row():
    (example,) = examples_from_rows([OPENAI_GSM8K_ROW], "gsm8k", "train")
    assert example.id == "gsm8k_train_0"
    assert example.answer == "10"
    assert example.cot == (
        "Weng earns 12/60 = $0.2 per minute.\n"
        "Working 50 minutes, she earned 0.2 x 50 = $10.\n"
        "The answer is 10."
    )


def test_chilled_svamp_hub_row():
    (example,) = examples_from_rows([CHILLED_SVAMP_ROW], "svamp", "test")
    assert example.id == "chal-777"
    assert example.answer == "145.0"  # 290 / 2
    assert example.question.endswith("into 93 groups, how big is each group of bananas?")
    assert example.cot is None and example.program is None


def test_svamp_body_ending_with_a_full_stop_is_joined_with_a_space():
    row = dict(CHILLED_SVAMP_ROW, Body="Tom has 3 cards.", Question="How many?", Answer=3.0)
    (example,) = examples_from_rows([row], "svamp", "test")
    assert example.question == "Tom has 3 cards. How many?"


def test_allenai_math_qa_hub_row():
    rows = [ALLENAI_MATH_QA_ROW, ALLENAI_MATH_QA_ROW]
    first, second = examples_from_rows(rows, "mathqa", "validation")
    # No id field on the Hub: the documented <dataset>_<split>_<index>.
    assert (first.id, second.id) == ("mathqa_validation_0", "mathqa_validation_1")
    assert first.answer == "c"
    assert first.options["c"] == "625"  # 5 ^ 4
    assert first.cot is None  # the rationale is not used as a chain of thought


def test_hub_row_errors_name_the_row():
    rows = [OPENAI_GSM8K_ROW, {"question": "q"}]
    with pytest.raises(DataError, match=r"openai/gsm8k \[train\], row 1: missing field"):
        examples_from_rows(rows, "gsm8k", "train", source="openai/gsm8k [train]")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("72", "72"),
        ("850,000", "850000"),
        (" -47 ", "-47"),
        ("203.0", "203.0"),
        ("0.4166666666666667", "0.4166666666666667"),
        (51.0, "51.0"),
        (-9867630.0, "-9867630.0"),
        (7, "7"),
    ],
)
def test_normalise_number(raw, expected):
    assert normalise_number(raw) == expected


@pytest.mark.parametrize("raw", ["three", "6%", "", "1_000", "nan", float("inf"), True, None])
def test_normalise_number_rejects_non_numbers(raw):
    with pytest.raises(RecordError):
        normalise_number(raw)


@pytest.mark.parametrize(
    ("cot", "expected"),
    [
        ("7 * 3 = 21.\n\nTherefore, the answer is <21>.", "7 * 3 = 21.\n\nThe answer is 21."),
        ("Done. The answer is <4>.", "Done. The answer is 4."),
        ("5 + 2 = 7. the answer is 7", "5 + 2 = 7. The answer is 7."),
        ("x is 3.5.\nThe answer is 3.5.", "x is 3.5.\nThe answer is 3.5."),
        ("Therefore, the answer is < 12 >.", "The answer is 12."),
    ],
)
def test_normalise_cot(cot, expected):
    assert normalise_cot(cot) == expected
    assert normalise_cot(expected) == expected  # idempotent


def test_normalise_cot_uses_the_last_answer_sentence_only():
    cot = "So the answer is 5 apples. Then 5 + 1 = 6.\nThe answer is 6."
    assert normalise_cot(cot) == cot


@pytest.mark.parametrize("cot", ["1 + 2 = 3", "The answer is <>.", "the answer is 5 apples."])
def test_normalise_cot_rejects_missing_final_sentence(cot):
    with pytest.raises(RecordError):
        normalise_cot(cot)


def test_is_program():
    assert is_program("def solution():\n    return 1")
    assert is_program("import datetime\ndef solution():\n    return 1")
    assert not is_program("We define solution(): add 1 and 2. The answer is 3.")


def test_parse_options_both_layouts_agree():
    line = "a ) 15 ohms , b ) 15 / 8 ohms , c ) 1 , 000 , d ) 8 / 15 ohms , e ) 8 ohms"
    listed = "['a ) 15 ohms', 'b ) 15 / 8 ohms', 'c ) 1 , 000', 'd ) 8 / 15 ohms', 'e ) 8 ohms']"
    expected = {
        "a": "15 ohms",
        "b": "15 / 8 ohms",
        "c": "1 , 000",
        "d": "8 / 15 ohms",
        "e": "8 ohms",
    }
    assert parse_options(line) == expected
    assert parse_options(listed) == expected
    assert (
        parse_options(
            ["a ) 15 ohms", "b ) 15 / 8 ohms", "c ) 1 , 000", "d ) 8 / 15 ohms", "e ) 8 ohms"]
        )
        == expected
    )
    assert format_options(expected) == line


def test_parse_options_keeps_duplicate_option_texts():
    assert parse_options("a ) 5 , b ) 5 , c ) 6") == {"a": "5", "b": "5", "c": "6"}


@pytest.mark.parametrize(
    "raw", ["38 , 27 , 30", "a ) 1 , c ) 2", "b ) 1 , a ) 2", "['a ) 1', 'oops']", "[unclosed"]
)
def test_parse_options_rejects_malformed(raw):
    with pytest.raises(RecordError):
        parse_options(raw)


def test_load_from_hub_maps_the_split_it_asks_for(monkeypatch):
    # A stand-in for the datasets library: the test must not reach the Hub.
    calls = []

    def fake_load_dataset(hub_id, config_name, split):
        calls.append((hub_id, config_name, split))
        return [OPENAI_GSM8K_ROW]

    monkeypatch.setitem(
        sys.modules, "datasets", types.SimpleNamespace(load_dataset=fake_load_dataset)
    )
    (example,) = load_from_hub("openai/gsm8k", "test", "main")
    assert calls == [("openai/gsm8k", "main", "test")]
    # The dataset name comes from the registry entry with this hub id.
    assert (example.id, example.answer) == ("gsm8k_test_0", "10")
    with pytest.raises(DataError, match=r"no registered dataset has hub id 'me/mine'"):
        load_from_hub("me/mine", "train")
