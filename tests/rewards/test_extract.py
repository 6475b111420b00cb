"""Final-answer extraction from natural-language chains of thought, on real formats."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from reftlab.rewards.extract import (
    BOXED,
    DEFAULT_MARKERS,
    LAST_NUMBER,
    MARKER,
    PHRASE,
    answer_span,
    cut_continuation,
    extract_number,
    read_first,
    read_number,
)
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


def read(completion: str, fallback: str) -> str | None:
    answer = extract_number(completion, fallback=fallback)
    return answer.text if answer is not None else None


@pytest.mark.parametrize(
    ("completion", "strict", "none", "last_number"),
    [
        # the paper's format: every reading agrees
        ("9 * 2 = 18.\nTherefore, the answer is: 18", "18", "18", "18"),
        # an expression after the marker: strict takes its first number
        ("The answer is: 9 * 2 = 18.", "9", "18", "18"),
        # the marker inside "isn't": strict reads nothing at its start
        ("The answer isn't 20, it's 18.", None, "18", "18"),
        ("The answer is 20. Wait, no, it's 18.", "20", "18", "18"),
        # LaTeX: only the flexible readings read through it
        ("The answer is $\\frac{1}{3}$.", None, "1/3", "1/3"),
        ("The answer is $1{,}000$", "1", "1000", "1000"),
        ("The final answer is $\\boxed{18}$", None, "18", "18"),
        # known phrasings, then the last number
        ("**Final Answer:** 18", None, "18", "18"),
        ("So the result is 18 dollars.", None, "18", "18"),
        ("She has 5 + 198 = 203 apples", None, None, "203"),
        # a marker that reads nothing falls through to the next candidate
        ("The answer is below.\n\\boxed{7}", None, "7", "7"),
        ("2 + 2 = 4. The answer is four.", None, "4", "4"),
        ("no digits here", None, None, None),
    ],
)
def test_readings(completion: str, strict: str, none: str, last_number: str) -> None:
    assert read(completion, "strict") == strict
    assert read(completion, "none") == none
    assert read(completion, "last_number") == last_number


@pytest.mark.parametrize(
    ("completion", "source"),
    [
        ("The answer is 18. \\boxed{20} Answer: 21. So 22", MARKER),
        ("\\boxed{20} Answer: 21. So 22", BOXED),
        ("Answer: 21. So 22", PHRASE),
        ("So 22", LAST_NUMBER),
    ],
)
def test_order_of_precedence(completion: str, source: str) -> None:
    answer, found = read_first(completion, read_number, DEFAULT_MARKERS, LAST_NUMBER)
    assert found == source
    assert answer.text == {MARKER: "18", BOXED: "20", PHRASE: "21", LAST_NUMBER: "22"}[source]


def test_a_new_question_ends_the_completion() -> None:
    text = "She makes 18 dollars.\n\nQuestion: Tom has 5 apples.\nThe answer is 5."
    assert cut_continuation(text) == "She makes 18 dollars.\n"
    assert read(text, "last_number") == "18"


def test_unknown_fallback_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="last_number, none, strict"):
        extract_number("The answer is 3", fallback="first_number")


def test_markers_are_an_argument() -> None:
    text = "Final answer: 12. The answer is 13"
    assert extract_number(text, markers=("final answer:",)).text == "12"
    assert answer_span(text, markers=("final answer:",)) == "12. The answer is 13"


@pytest.mark.parametrize("fallback", ["strict", "none", "last_number"])
def test_svamp_nl_chains_of_thought_give_their_gold(shared_data: Path, fallback: str) -> None:
    # The paper's own format loses nothing to the flexible readings.
    records = json.loads((shared_data / "reft" / "svamp_nl.json").read_text())
    assert len(records) == 3076
    wrong = [
        record["item_id"]
        for record in records
        if not numbers_match(
            extract_number(record["answer_cot"], fallback=fallback),
            parse_number(record["answer_value"]),
        )
    ]
    # Both misses are chains of thought that disagree with their own gold, not extraction errors:
    # svamp_929 rounds 8.93 trucks up to "<9>" (gold 8.9333333333); svamp_2000 ends with
    # "<69.32%>" while the gold is 69.4 (53.2 / 76.7 = 69.36%, so both are off).
    assert wrong == ["svamp_929", "svamp_2000"]


@pytest.mark.parametrize("fallback", ["strict", "last_number"])
def test_gsm8k_answers_give_their_gold(shared_data: Path, fallback: str) -> None:
    lines = (shared_data / "gsm8k" / "train.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 7473
    with_commas = 0
    for record in records:
        gold_text = record["answer"].split("####")[-1].strip()
        with_commas += "," in gold_text
        answer = extract_number(record["answer"], fallback=fallback)
        assert answer is not None
        assert answer.value == float(gold_text.replace(",", "")), record["answer"][-80:]
    assert with_commas == 79  # the data README's count: the comma path was exercised


def test_long_junk_completions_are_read_in_linear_time() -> None:
    # Rollouts that never stop can be long junk; extraction must not backtrack on them.
    junk = [
        "1 " * 50_000,
        "1" * 100_000 + " /",
        "a" * 100_000 + "!",
        "-1,000" * 20_000,
        "\\boxed{" * 20_000,
        "\\frac{" * 20_000,
        "= 1 " * 30_000,
        "no " * 30_000,
        "one " * 30_000,
        "x is the correct answer " * 5_000,
    ]
    start = time.perf_counter()
    for text in junk:
        for fallback in ("strict", "none", "last_number"):
            extract_number(text + " The answer is 7.", fallback=fallback)
            extract_number(text, fallback=fallback)
    assert time.perf_counter() - start < 6.0
