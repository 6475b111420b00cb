"""Short real runs: `method=sft eval.samples=4 eval.rerank=true` on the tiny model, the reward
model stage and its cache, and `reftlab eval` on the run's checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reftlab.stages.evaluate import majority_vote
from reftlab.stages.reward_model import REWARD_HEAD_FILE, pick_top

pytestmark = pytest.mark.slow

# Easy one-step problems (answers 0-9) and enough SFT steps (30 epochs of 2 steps) that some
# answers come out right, so that the metrics are not all zero; 32 train, 16 test questions.
OVERRIDES = [
    "budget=smoke",
    "budget.max_epochs=null",
    "method=sft",
    "method.warmup_epochs=30",
    "method.sft_batch_size=16",
    "dataset.max_steps=1",
    "dataset.max_start=5",
    "dataset.max_operand=4",
    "dataset.train_size=64",
    "dataset.test_size=16",
    "eval.samples=4",
    "eval.temperature=0.7",
    "eval.rerank=true",
    "eval.rm_epochs=2",
]
K = 4


def environment(cache: Path) -> dict[str, str]:
    return {**os.environ, "REFTLAB_CACHE": str(cache), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("eval_run")
    run_dir, cache = root / "run", root / "cache"
    result = subprocess.run(
        [sys.executable, "-m", "reftlab", f"hydra.run.dir={run_dir}", *OVERRIDES],
        capture_output=True,
        text=True,
        env=environment(cache),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, cache


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def completed_stage(run_dir: Path, stage: str) -> dict:
    return json.loads((run_dir / "progress.json").read_text())["completed"][stage]["result"]


def test_summary_reports_vote_pass_and_rerank(sft_run) -> None:
    run_dir, _ = sft_run
    summary = json.loads((run_dir / "summary.json").read_text())
    acc, maj, pas, rerank = (
        summary["eval/accuracy"],
        summary[f"eval/maj@{K}"],
        summary[f"eval/pass@{K}"],
        summary[f"eval/rerank@{K}"],
    )
    assert summary["test_accuracy"] == acc
    assert summary["eval/n"] == 16
    # Voting and the reward model pick one of the samples: right only where some sample is.
    assert pas >= maj and pas >= rerank
    # With 4 samples at temperature 0.7 something is right somewhere (the run gets ~1/3).
    assert pas > 0
    for value in (acc, maj, pas, rerank):
        assert 0.0 <= value <= 1.0 and value * 16 == round(value * 16)
    # The reading the reward used (the embedded default's: the marker only), and both readings.
    assert summary["answer_reading"] == "none"
    for key in ("eval/accuracy_strict", "eval/accuracy_flexible"):
        assert summary[key] * 16 == round(summary[key] * 16)


def answer_key(answer: str) -> object:
    """How the run's scorer groups answers for the vote ("1/1" and "1" are one number)."""
    from reftlab.rewards.scorer import Scorer

    return Scorer("natural", 0.1, ["the answer is"], "none", 2.0).answer_key(answer)


def test_metrics_are_recomputed_from_the_predictions(sft_run) -> None:
    run_dir, _ = sft_run
    summary = json.loads((run_dir / "summary.json").read_text())
    records = read_jsonl(run_dir / "predictions" / "sft.jsonl")
    assert len(records) == 16
    for r in records:
        assert len(r["samples"]) == len(r["sample_answers"]) == len(r["rm_scores"]) == K
        assert r["pass"] == any(r["sample_correct"])
        # The vote as recorded is the vote of the recorded answers (numbers compare by value).
        voted = majority_vote(r["sample_answers"], key=answer_key)
        assert r["voted"] == voted
        assert r["reranked"] == pick_top(r["rm_scores"])
        assert r["reranked_correct"] == r["sample_correct"][r["reranked"]]
    assert summary[f"eval/pass@{K}"] == sum(r["pass"] for r in records) / 16
    assert summary[f"eval/maj@{K}"] == sum(r["voted_correct"] for r in records) / 16
    assert summary[f"eval/rerank@{K}"] == sum(r["reranked_correct"] for r in records) / 16
    assert summary["eval/accuracy"] == sum(r["correct"] for r in records) / 16


def test_reward_model_is_its_own_stage(sft_run) -> None:
    run_dir, cache = sft_run
    result = completed_stage(run_dir, "reward_model")
    folder = Path(result["model_dir"])
    assert folder.parent == cache / "stages" and folder.name.startswith("reward_model-")
    assert (folder / REWARD_HEAD_FILE).is_file() and (folder / "config.json").is_file()
    # 32 training questions x 4 samples (rm_samples capped by budget.max_samples_per_question)
    assert result["metrics"]["reward_model/n_samples"] == 32 * K
    records = read_jsonl(run_dir / "metrics.jsonl")
    steps = [r for r in records if r["stage"] == "reward_model" and "train/rm_loss" in r]
    # ceil(128 / 16 per step) = 8 steps per epoch, 2 epochs
    assert len(steps) == 16
    assert all(0 <= r["train/rm_loss"] < 100 for r in steps)


def test_reward_model_is_reused_by_a_run_with_the_same_warmup(sft_run, tmp_path, monkeypatch):
    """The reward model's cache key depends on the warm-up and its own settings only: an Env
    built from the same overrides finds the run's reward model without training."""
    import torch

    from reftlab.app.compose import compose_run
    from reftlab.methods.env import WarmupSource, setup
    from reftlab.methods.evaluation import reward_model_folder
    from reftlab.methods.warmup import warmup_key
    from reftlab.runtime.context import RunContext
    from reftlab.runtime.tracking import MetricsLogger, read_metrics

    run_dir, cache = sft_run
    monkeypatch.setenv("REFTLAB_CACHE", str(cache))
    torch.set_num_threads(1)
    run = compose_run(OVERRIDES)
    ctx = RunContext.open(tmp_path, MetricsLogger(tmp_path), resume=False, save_every=0)
    env, _ = setup(run, ctx)
    sft_dir = Path(completed_stage(run_dir, "sft")["model_dir"])
    source = WarmupSource(warmup_key(env, env.schedule.warmup_epochs), sft_dir)
    folder = reward_model_folder(env, source)
    assert folder == Path(completed_stage(run_dir, "reward_model")["model_dir"])
    logged = read_metrics(tmp_path)
    assert [r["reused"] for r in logged] == [1]
    assert not any("train/rm_loss" in r for r in logged)


def test_eval_verb_reproduces_the_runs_evaluation(sft_run, tmp_path) -> None:
    run_dir, cache = sft_run
    sft_dir = completed_stage(run_dir, "sft")["model_dir"]
    reward_model = completed_stage(run_dir, "reward_model")["model_dir"]
    output = tmp_path / "preds.jsonl"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "reftlab",
            "eval",
            sft_dir,
            f"output={output}",
            f"eval.reward_model={reward_model}",
            *OVERRIDES,
        ],
        capture_output=True,
        text=True,
        env=environment(cache),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    printed = json.loads(lines[0])
    summary = json.loads((run_dir / "summary.json").read_text())
    # Same weights, data, prompts and seeds: the same numbers as the run's own evaluation.
    for key in ("eval/accuracy", f"eval/maj@{K}", f"eval/pass@{K}", f"eval/rerank@{K}", "eval/n"):
        assert printed[key] == summary[key], key
    assert printed["checkpoint"] == sft_dir and printed["output"] == str(output)
    assert printed["reward_model"] == reward_model
    ours = read_jsonl(output)
    theirs = read_jsonl(run_dir / "predictions" / "sft.jsonl")
    assert [r["samples"] for r in ours] == [r["samples"] for r in theirs]


def test_eval_verb_reports_hacking_on_real_mathqa(sft_run, tmp_path, shared_data) -> None:
    """Multiple choice (MathQA from ReFT's files): the hacking check sits next to accuracy."""
    run_dir, cache = sft_run
    sft_dir = completed_stage(run_dir, "sft")["model_dir"]
    output = tmp_path / "mathqa.jsonl"
    test_file = shared_data / "reft" / "mathqa_test_set.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "reftlab",
            "eval",
            sft_dir,
            f"output={output}",
            "dataset=mathqa",
            f"dataset.test_file={test_file}",
            "budget=smoke",
            "budget.max_test_examples=6",
        ],
        capture_output=True,
        text=True,
        env=environment(cache),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    # One of the six prompts is longer than the tiny model's context: it is dropped, and said so.
    assert "test split: dropped 1 of 6 examples whose prompt is longer than" in result.stderr
    assert printed["dataset"] == "mathqa" and printed["eval/n"] == 5
    assert printed["eval/hacking/total"] == 5
    assert 0.0 <= printed["eval/hacking_rate"] <= 1.0
    assert printed["eval/hacking/correct"] == round(printed["eval/accuracy"] * 5)
    records = read_jsonl(output)
    # the first six records of the file, by their item_id, less the one too long
    first_six = ["mathqa_0", "mathqa_2", "mathqa_6", "mathqa_11", "mathqa_12", "mathqa_13"]
    ids = [r["id"] for r in records]
    assert len(ids) == 5 and ids == [i for i in first_six if i in ids]
    assert all(isinstance(r["hack_suspected"], bool) for r in records)
