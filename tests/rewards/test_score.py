"""Partial-credit rewards (ReFT): 1 correct, partial_reward wrong but well-formed, 0 nothing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reftlab.data.records import Example
from reftlab.rewards.score import (
    Score,
    is_choice,
    read_returned_number,
    score_natural,
    score_program,
)
from reftlab.sandbox.result import ExecResult
from tests.rewards.reference_impls import score_completions

SANCTUARY = Example(id="svamp_0", question="29 species, 7 pairs each?", answer="203")
STATIONS = Example(
    id="mathqa_2",
    question="28 stations: how many tickets?",
    answer="c",
    options={"a": "156", "b": "167", "c": "870", "d": "352", "e": "380"},
)
FRACTION = Example(id="mathqa-numeric_x", question="?", answer="0.4166666666666667")


@pytest.mark.parametrize(
    ("completion", "example", "expected"),
    [
        ("29 * 7 = 203. Therefore, the answer is <203>.", SANCTUARY, Score(1.0, "203", True)),
        ("The answer is 204.", SANCTUARY, Score(0.1, "204", False)),
        ("The answer is two hundred.", SANCTUARY, Score(0.1, "200", False)),
        ("The answer is two hundred and three.", SANCTUARY, Score(1.0, "203", True)),
        ("The answer is a lot.", SANCTUARY, Score(0.0, None, False)),
        ("I do not know.", SANCTUARY, Score(0.0, None, False)),
        ("The answer is (c).", STATIONS, Score(1.0, "c", True)),
        ("The answer is a", STATIONS, Score(0.1, "a", False)),
        ("The answer is 870", STATIONS, Score(1.0, "c", True)),
        ("The answer is 871", STATIONS, Score(0.0, None, False)),  # not an option
        ("The answer is 0.42", FRACTION, Score(1.0, "0.42", True)),
        ("The answer is 0.4", FRACTION, Score(0.1, "0.4", False)),
    ],
)
def test_natural_partial_credit(completion: str, example: Example, expected: Score) -> None:
    assert score_natural(completion, example) == expected


def test_partial_reward_is_an_argument() -> None:
    assert score_natural("The answer is 204.", SANCTUARY, partial_reward=0.0).reward == 0.0
    assert score_natural("The answer is 204.", SANCTUARY, partial_reward=0.25).reward == 0.25
    assert score_natural("The answer is 203.", SANCTUARY, partial_reward=0.25).reward == 1.0


def test_fallback_none_gives_no_credit_without_marker() -> None:
    assert score_natural("29 * 7 = 203", SANCTUARY).reward == 1.0
    assert score_natural("29 * 7 = 203", SANCTUARY, fallback="none").reward == 0.0


@pytest.mark.parametrize(
    ("result", "example", "expected"),
    [
        (ExecResult("ok", "203", "int"), SANCTUARY, Score(1.0, "203", True, "ok")),
        (
            ExecResult("ok", "203.00000000001", "float"),
            SANCTUARY,
            Score(1.0, "203.00000000001", True, "ok"),
        ),
        (ExecResult("ok", "204", "int"), SANCTUARY, Score(0.1, "204", False, "ok")),
        (ExecResult("ok", "5/12", "Fraction"), FRACTION, Score(1.0, "5/12", True, "ok")),
        (ExecResult("ok", "True", "bool"), SANCTUARY, Score(0.0, None, False, "ok")),
        (ExecResult("ok", "203 pairs", "str"), SANCTUARY, Score(1.0, "203", True, "ok")),
        (ExecResult("ok", "203 or 204", "str"), SANCTUARY, Score(0.0, None, False, "ok")),
        (ExecResult("ok", "inf", "float"), SANCTUARY, Score(0.0, None, False, "ok")),
        (
            ExecResult("no_result", error="returned None"),
            SANCTUARY,
            Score(0.0, None, False, "no_result"),
        ),
        (ExecResult("timeout"), SANCTUARY, Score(0.0, None, False, "timeout")),
        (
            ExecResult("error", error="ZeroDivisionError"),
            SANCTUARY,
            Score(0.0, None, False, "error"),
        ),
        (ExecResult("crashed"), SANCTUARY, Score(0.0, None, False, "crashed")),
        (ExecResult("ok", "c", "str"), STATIONS, Score(1.0, "c", True, "ok")),
        (ExecResult("ok", "(b)", "str"), STATIONS, Score(0.1, "b", False, "ok")),
        (ExecResult("ok", "870", "int"), STATIONS, Score(1.0, "c", True, "ok")),
        (ExecResult("ok", "871", "int"), STATIONS, Score(0.0, None, False, "ok")),
    ],
)
def test_program_partial_credit(result: ExecResult, example: Example, expected: Score) -> None:
    assert score_program(result, example) == expected


def test_returned_number_is_one_number_with_at_most_its_unit() -> None:
    assert read_returned_number(" -3/4 ").value == -0.75
    assert read_returned_number("$18").value == 18.0
    assert read_returned_number("1e+20").value == 1e20
    assert read_returned_number("18 dollars").value == 18.0
    assert read_returned_number("12.5 km/h").value == 12.5
    assert read_returned_number("x = 18") is None
    assert read_returned_number("18 or 20") is None
    assert read_returned_number("nan") is None


def test_is_choice_reads_the_record() -> None:
    assert is_choice(STATIONS)
    assert is_choice(Example(id="m", question="?", answer="d"))  # options lost: letter still
    assert not is_choice(SANCTUARY)


def test_malformed_gold_is_a_clear_error() -> None:
    broken = Example(id="gsm8k_9", question="?", answer="eighteen")
    with pytest.raises(ValueError, match="gsm8k_9.*eighteen"):
        score_natural("The answer is 18", broken)


class FakeSandbox:
    """Records the batches it gets and returns canned results in order."""

    def __init__(self, results: Sequence[ExecResult]) -> None:
        self.results = list(results)
        self.calls: list[list[str]] = []

    def __call__(self, programs: Sequence[str]) -> list[ExecResult]:
        self.calls.append(list(programs))
        return self.results[: len(programs)]


def test_program_batch_runs_once_on_extracted_programs() -> None:
    completions = [
        "def solution():\n    return 29 * 7\n\nQuestion: next one",
        "import math\ndef solution():\n    return 204\n",
    ]
    sandbox = FakeSandbox([ExecResult("ok", "203", "int"), ExecResult("ok", "204", "int")])
    scores = score_completions(
        completions, [SANCTUARY, SANCTUARY], cot="program", run_programs=sandbox
    )
    assert [score.reward for score in scores] == [1.0, 0.1]
    assert sandbox.calls == [
        [
            "def solution():\n    return 29 * 7\n",
            "import math\ndef solution():\n    return 204\n",
        ]
    ]


def test_batch_natural_and_errors() -> None:
    scores = score_completions(
        ["The answer is 203", "The answer is c"], [SANCTUARY, STATIONS], cot="natural"
    )
    assert [score.reward for score in scores] == [1.0, 1.0]
    with pytest.raises(ValueError, match="2 completions for 1 examples"):
        score_completions(["a", "b"], [SANCTUARY], cot="natural")
    with pytest.raises(ValueError, match="known: natural, program"):
        score_completions(["a"], [SANCTUARY], cot="latex")
    with pytest.raises(ValueError, match="run_programs"):
        score_completions(["a"], [SANCTUARY], cot="program")


def test_real_gsm8k_golds_score_one_and_perturbed_score_partial(shared_data: Path) -> None:
    """Each GSM8K test solution earns 1.0; the same text with its answer changed earns 0.1."""
    lines = (shared_data / "gsm8k" / "test.jsonl").read_text().splitlines()
    rewards, perturbed = [], []
    for index, line in enumerate(lines):
        record = json.loads(line)
        gold = record["answer"].split("####")[-1].strip().replace(",", "")
        example = Example(id=f"gsm8k_{index}", question=record["question"], answer=gold)
        rewards.append(score_natural(record["answer"], example).reward)
        off_by_one = int(gold) + 1 if gold.lstrip("-").isdigit() else float(gold) + 1
        wrong = record["answer"].rsplit("####", 1)[0] + f"#### {off_by_one}"
        perturbed.append(score_natural(wrong, example).reward)
    assert len(rewards) == 1319
    assert set(rewards) == {1.0}
    assert set(perturbed) == {0.1}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [*"0123456789 .,-/%$()[]{}=*+:\n\\abcABC", "the answer is ", "\\boxed{", "\\frac"]
            + ["Answer: ", "isn't ", "Wait, no, ", "####", "**", "Question: ", "eighteen "]
        ),
        max_size=40,
    ).map("".join)
)
def test_any_text_gets_a_reward_never_an_exception(completion: str) -> None:
    for example in (SANCTUARY, STATIONS, FRACTION):
        for fallback in ("strict", "none", "last_number"):
            score = score_natural(completion, example, fallback=fallback)
            assert score.reward in (0.0, 0.1, 1.0)
