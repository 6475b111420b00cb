"""Final-answer extraction from natural-language chains of thought, on real formats."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from reftlab.rewards.extract import answer_span, extract_number
from reftlab.rewards.numbers import numbers_match, parse_number


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("29 * 7 = 203\nTherefore, the answer is <203>.", "203"),  # ReFT's SVAMP files
        ("16 - 3 - 4 = 9 ... 9 * 2 = 18\n#### 18", "18"),  # GSM8K
        ("So she makes 18 dollars. The answer is 18.", "18"),  # the project's convention
        ("THE ANSWER IS 18", "18"),
        ("The answer is: $1,200.", "1200"),
        ("The answer is 850,000 dollars.", "850000"),
        ("The answer is -5.", "-5"),
        ("The answer is \\boxed{3/4}.", "3/4"),
        ("The answer is **45%**.", "45%"),
        ("The answer is:\n\n42", "42"),  # marker at the end of its line
        # the last marker wins, and only its line counts
        ("The answer is 3? No. The answer is 4.\nQuestion: 7 apples", "4"),
    ],
)
def test_extract_number_after_marker(completion: str, expected: str) -> None:
    answer = extract_number(completion)
    assert answer is not None and answer.text == expected


def test_marker_without_number_extracts_nothing_even_with_fallback() -> None:
    assert extract_number("2 + 2 = 4. The answer is four.", fallback="last_number") is None


def test_fallbacks_without_marker() -> None:
    text = "She has 5 + 198 = 203 apples"
    assert extract_number(text, fallback="last_number").text == "203"
    assert extract_number(text, fallback="none") is None
    assert extract_number("no digits here", fallback="last_number") is None


def test_unknown_fallback_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="last_number, none"):
        extract_number("The answer is 3", fallback="first_number")


def test_markers_are_an_argument() -> None:
    text = "Final answer: 12. The answer is 13"
    assert extract_number(text, markers=("final answer:",)).text == "12"
    assert answer_span(text, markers=("final answer:",)) == "12. The answer is 13"


def test_svamp_nl_chains_of_thought_give_their_gold(shared_data: Path) -> None:
    records = json.loads((shared_data / "reft" / "svamp_nl.json").read_text())
    assert len(records) == 3076
    wrong = [
        record["item_id"]
        for record in records
        if not numbers_match(
            extract_number(record["answer_cot"], fallback="none"),
            parse_number(record["answer_value"]),
        )
    ]
    # Both misses are chains of thought that disagree with their own gold, not extraction errors:
    # svamp_929 rounds 8.93 trucks up to "<9>" (gold 8.9333333333); svamp_2000 ends with
    # "<69.32%>" while the gold is 69.4 (53.2 / 76.7 = 69.36%, so both are off).
    assert wrong == ["svamp_929", "svamp_2000"]


def test_gsm8k_answers_give_their_gold(shared_data: Path) -> None:
    lines = (shared_data / "gsm8k" / "train.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 7473
    with_commas = 0
    for record in records:
        gold_text = record["answer"].split("####")[-1].strip()
        with_commas += "," in gold_text
        answer = extract_number(record["answer"], fallback="none")
        assert answer is not None
        assert answer.value == float(gold_text.replace(",", "")), record["answer"][-80:]
    assert with_commas == 79  # the data README's count: the comma path was exercised


def test_long_junk_completions_are_read_in_linear_time() -> None:
    # Rollouts that never stop can be long junk; extraction must not backtrack on them.
    junk = ["1 " * 50_000, "1" * 100_000 + " /", "a" * 100_000 + "!", "-1,000" * 20_000]
    start = time.perf_counter()
    for text in junk:
        extract_number(text + " The answer is 7.")
        extract_number(text)
    assert time.perf_counter() - start < 2.0
