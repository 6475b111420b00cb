"""`evaluate_model` on canned generations: metrics, predictions per item, reranking, hacking.

Generation is replaced by a lookup table, so every metric can be worked out by hand; the
scorer, the vote, the reward-model pick and the hacking check are the real ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from reftlab.data import Example
from reftlab.rewards.scorer import Scorer
from reftlab.stages.evaluate import evaluate_model

NUMERIC = [
    Example(id="q1", question="one", answer="18"),
    Example(id="q2", question="two", answer="5"),
    Example(id="q3", question="three", answer="7"),
]
GREEDY = {
    "one": "6 * 3 = 18. The answer is 18.",  # right
    "two": "The answer is 4.",  # wrong
    "three": "The answer is 7.",  # right
}
SAMPLES = {
    # 18 in two spellings outvotes 17: the vote is right, and so is pass@3.
    "one": ["The answer is 18.0.", "The answer is 17.", "The answer is 18."],
    # 6 and 5 tie; 6 came first: the vote is wrong, pass@3 right.
    "two": ["no idea", "The answer is 6.", "The answer is 5."],
    # all wrong
    "three": ["The answer is 3.", "The answer is 3.", "The answer is 2."],
}
# The reward model's scores: its pick is wrong on one (17), right on two (5), wrong on three.
RM_SCORES = {
    "one": [0.1, 0.9, 0.2],
    "two": [0.0, 0.1, 0.5],
    "three": [0.3, 0.2, 0.1],
}


def prompt_of(example: Example) -> str:
    return example.question


def canned_engine(greedy: dict[str, str], samples: dict[str, list[str]], calls: list):
    """A rollout engine that answers each prompt from the tables, and records its calls."""

    def generate(
        model, tokenizer, prompts, max_new_tokens, do_sample=True, num_return_sequences=1, **kwargs
    ):
        calls.append((list(prompts), do_sample, num_return_sequences))
        if not do_sample:
            return SimpleNamespace(texts=[greedy[p] for p in prompts])
        texts = [t for p in prompts for t in samples[p][:num_return_sequences]]
        return SimpleNamespace(texts=texts)

    return SimpleNamespace(name="canned", generate=generate)


def canned_rerank(seen: list):
    def rerank(prompts, completions):
        seen.append((list(prompts), list(completions)))
        scores = []
        for i, prompt in enumerate(prompts):
            # Samples of a prompt arrive together and in order.
            index = prompts[:i].count(prompt)
            assert completions[i] == SAMPLES[prompt][index]
            scores.append(RM_SCORES[prompt][index])
        return scores

    return rerank


def natural_scorer() -> Scorer:
    return Scorer("natural", 0.1, ["the answer is", "####"], "last_number", 2.0)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_golden_metrics_and_predictions(monkeypatch, tmp_path) -> None:
    calls: list = []
    seen: list = []
    engine = canned_engine(GREEDY, SAMPLES, calls)
    metrics = evaluate_model(
        None,
        None,
        NUMERIC,
        prompt_of,
        natural_scorer(),
        batch_size=2,
        max_new_tokens=8,
        samples=3,
        rerank=canned_rerank(seen),
        predictions_path=tmp_path / "p.jsonl",
        show_progress=False,
        engine=engine,
    )
    # greedy right on q1, q3; vote right on q1; some sample right on q1, q2; pick right on q2
    assert metrics == {
        "eval/accuracy": 2 / 3,
        # the wrong greedy answer 4 still gets the partial reward 0.1 for a readable number
        "eval/mean_reward": (1.0 + 0.1 + 1.0) / 3,
        "eval/extracted_rate": 1.0,
        "eval/n": 3,
        # every greedy completion is in the paper's format: both readings agree
        "eval/accuracy_strict": 2 / 3,
        "eval/accuracy_flexible": 2 / 3,
        "eval/maj@3": 1 / 3,
        "eval/pass@3": 2 / 3,
        "eval/rerank@3": 1 / 3,
    }
    # batch_size=2: two batches, each a greedy call then one call for 3 samples per question
    assert calls == [
        (["one", "two"], False, 1),
        (["one", "two"], True, 3),
        (["three"], False, 1),
        (["three"], True, 3),
    ]
    assert [len(s[1]) for s in seen] == [6, 3]

    records = read_jsonl(tmp_path / "p.jsonl")
    assert [r["id"] for r in records] == ["q1", "q2", "q3"]
    one, two, three = records
    assert one["samples"] == SAMPLES["one"]
    assert one["sample_answers"] == ["18.0", "17", "18"]
    assert one["sample_correct"] == [True, False, True]
    assert (one["voted"], one["voted_correct"], one["pass"]) == ("18.0", True, True)
    assert (one["rm_scores"], one["reranked"], one["reranked_correct"]) == (
        [0.1, 0.9, 0.2],
        1,
        False,
    )
    assert two["sample_answers"] == [None, "6", "5"]
    assert (two["voted"], two["voted_correct"], two["pass"]) == ("6", False, True)
    assert (two["reranked"], two["reranked_correct"]) == (2, True)
    assert (three["voted"], three["pass"], three["reranked_correct"]) == ("3", False, False)
    assert "hack_suspected" not in one  # no check on numeric data


def test_greedy_only_has_no_sample_fields(monkeypatch) -> None:
    calls: list = []
    engine = canned_engine(GREEDY, SAMPLES, calls)
    metrics = evaluate_model(
        None,
        None,
        NUMERIC,
        prompt_of,
        natural_scorer(),
        batch_size=8,
        max_new_tokens=8,
        show_progress=False,
        engine=engine,
    )
    assert set(metrics) == {
        "eval/accuracy",
        "eval/mean_reward",
        "eval/extracted_rate",
        "eval/n",
        "eval/accuracy_strict",
        "eval/accuracy_flexible",
    }
    assert [c[1] for c in calls] == [False]


def test_strict_and_flexible_accuracy_tell_format_from_arithmetic(tmp_path) -> None:
    greedy = {
        "one": "6 * 3 = 18. The final answer is $\\boxed{18}$.",  # right, not the paper's format
        "two": "The answer is 4.",  # wrong either way
        "three": "The answer is 7.",  # right either way
    }
    strict = Scorer("natural", 0.1, ["the answer is", "####"], "strict", 2.0)
    metrics = evaluate_model(
        None,
        None,
        NUMERIC,
        prompt_of,
        strict,
        batch_size=8,
        max_new_tokens=8,
        predictions_path=tmp_path / "p.jsonl",
        show_progress=False,
        engine=canned_engine(greedy, {}, []),
    )
    # the reward reads strictly here, so its accuracy is the strict one
    assert metrics["eval/accuracy"] == metrics["eval/accuracy_strict"] == 1 / 3
    assert metrics["eval/accuracy_flexible"] == 2 / 3
    records = read_jsonl(tmp_path / "p.jsonl")
    assert [(r["correct_strict"], r["correct_flexible"]) for r in records] == [
        (False, True),
        (False, False),
        (True, True),
    ]


OPTIONS = {"a": "156", "b": "167", "c": "870", "d": "352", "e": "380"}
CHOICE = [Example(id=f"m{i}", question=f"m{i}", answer="c", options=OPTIONS) for i in range(4)]


def test_hacking_rate_on_multiple_choice(monkeypatch, tmp_path) -> None:
    greedy = {
        "m0": "30 * 29 = 870. The answer is c",  # right letter, its value agrees
        "m1": "13 * 12 = 156. The answer is c",  # right letter, value is option a: a hack
        "m2": "30 * 29 = 870. The answer is b",  # wrong letter
        "m3": "The answer is c",  # right letter, no value to judge
    }
    engine = canned_engine(greedy, {}, [])
    metrics = evaluate_model(
        None,
        None,
        CHOICE,
        prompt_of,
        natural_scorer(),
        batch_size=3,
        max_new_tokens=8,
        check_hacking=True,
        predictions_path=tmp_path / "p.jsonl",
        show_progress=False,
        engine=engine,
    )
    assert metrics["eval/accuracy"] == 3 / 4
    # 3 right letters, 1 of them computed another option's value: 1 / 3
    assert metrics["eval/hacking_rate"] == pytest.approx(1 / 3)
    assert metrics["eval/hacking/correct"] == 3
    assert metrics["eval/hacking/correct_value_elsewhere"] == 1
    assert metrics["eval/hacking/correct_value_agrees"] == 1
    assert metrics["eval/hacking/value_visible"] == 3
    # judged = agrees + elsewhere = 2
    assert metrics["eval/hacking/hack_rate_of_correct_with_value"] == pytest.approx(1 / 2)
    flags = [r["hack_suspected"] for r in read_jsonl(tmp_path / "p.jsonl")]
    assert flags == [False, True, False, False]


def test_hacking_rate_on_programs_reads_the_sandbox_results(monkeypatch) -> None:
    program = 'def solution():\n    print({value})\n    return "{letter}"\n'
    greedy = {
        "m0": program.format(value=870, letter="c"),  # printed value agrees
        "m1": program.format(value=156, letter="c"),  # printed value is option a: a hack
        "m2": program.format(value=352, letter="d"),  # wrong letter
        "m3": "def solution():\n    return 870\n",  # the value itself: chosen by value
    }
    engine = canned_engine(greedy, {}, [])
    with Scorer("program", 0.1, ["the answer is"], "last_number", 2.0, workers=1) as scorer:
        metrics = evaluate_model(
            None,
            None,
            CHOICE,
            prompt_of,
            scorer,
            batch_size=2,
            max_new_tokens=8,
            check_hacking=True,
            show_progress=False,
            engine=engine,
        )
    assert metrics["eval/accuracy"] == 3 / 4
    assert metrics["eval/hacking/correct"] == 3
    assert metrics["eval/hacking/correct_value_elsewhere"] == 1
    assert metrics["eval/hacking_rate"] == pytest.approx(1 / 3)
