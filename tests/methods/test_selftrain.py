"""Self-training keeps the gold CoT plus distinct correct samples, and counts what it drew."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from reftlab.data import format_prompt, format_target
from reftlab.data.prompts import NATURAL_TEMPLATE
from reftlab.data.traces import read_trace_file, select_targets
from reftlab.rewards.scorer import Scorer
from reftlab.stages.sampling import SamplingSettings
from reftlab.stages.selftrain import read_pairs, sample_and_filter


def test_gold_first_then_distinct_correct_samples_in_drawn_order():
    samples = ["A", "B", "A \n", "C", "D", "E"]
    correct = [True, False, True, True, True, True]
    # B is wrong; "A \n" is A again; keep=3 stops after A, C, D.
    assert select_targets(samples, correct, keep=3, gold="G") == ["G", "A", "C", "D"]


def test_a_sample_equal_to_the_gold_cot_is_not_kept_twice():
    assert select_targets([" G ", "X"], [True, True], keep=1, gold="G") == ["G", "X"]


def test_keep_zero_is_gold_only_and_no_gold_is_samples_only():
    assert select_targets(["A"], [True], keep=0, gold="G") == ["G"]
    assert select_targets(["A", "A", "B"], [True, True, False], keep=5) == ["A"]
    with pytest.raises(ValueError):
        select_targets(["A"], [True, False], keep=1)


def test_sample_and_filter_with_real_scoring(examples, tmp_path, monkeypatch):
    """Canned samples per question, scored by the real scorer on real arith examples."""
    chosen = examples[:3]
    prompt = lambda e: format_prompt(NATURAL_TEMPLATE, e)  # noqa: E731
    target = lambda e: format_target(e, "natural")  # noqa: E731
    wrong = {e.id: str(int(e.answer) + 1) for e in chosen}
    canned = {
        prompt(e): [
            " " + e.cot,  # correct, but the gold CoT itself
            " " + e.cot + "\n",  # the same again
            f" The answer is {wrong[e.id]}.",  # wrong
            f" So it is {e.answer}.\nThe answer is {e.answer}.",  # a distinct correct one
        ]
        for e in chosen
    }

    def fake_generate(model, tokenizer, prompts, num_return_sequences, **kwargs):
        assert num_return_sequences == 4 and kwargs["do_sample"]
        return SimpleNamespace(texts=[canned[p][j] for p in prompts for j in range(4)])

    engine = SimpleNamespace(name="canned", generate=fake_generate)
    scorer = Scorer("natural", 0.0, ["the answer is", "####"], "none", 2.0)
    settings = SamplingSettings(
        samples=4, temperature=1.0, top_p=1.0, max_new_tokens=8, seed=0, questions_per_batch=2
    )
    path = tmp_path / "kept.jsonl"
    counts = sample_and_filter(
        None,
        None,
        chosen,
        prompt,
        target,
        scorer,
        settings,
        keep_correct=5,
        path=path,
        show_progress=False,
        engine=engine,
    )
    assert counts == {
        "samples_drawn": 3 * 4,
        "samples_correct": 3 * 3,
        "samples_kept": 3 * 1,  # the gold duplicates are not kept twice
        "questions_with_kept": 3,
        "training_pairs": 3 * 2,
    }
    kept = read_trace_file(path)
    assert kept == {e.id: [target(e), canned[prompt(e)][3]] for e in chosen}
    prompts, completions = read_pairs(path, chosen, prompt)
    assert prompts == [prompt(e) for e in chosen for _ in range(2)]
    assert completions == [c for e in chosen for c in kept[e.id]]
