"""Short real runs of every method on the tiny model (smoke budget): artifacts, finite metrics,
parameters that moved, and each method's own bookkeeping."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SMOKE = ["budget=smoke", "budget.max_epochs=null", "dataset.train_size=64", "dataset.test_size=16"]
# Partial credit for any last number gives the smoke warm-up's rollouts different rewards.
SIGNAL = ["cot.answer_fallback=last_number"]
N_TRAIN = 32  # budget=smoke
SAMPLES = 4  # budget=smoke caps samples per question (samples_per_question, rejection_samples)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One cache for the module: every run here shares the same SFT warm-up."""
    return tmp_path_factory.mktemp("cache")


def reftlab(run_dir: Path, cache: Path, *overrides: str) -> dict:
    env = {**os.environ, "REFTLAB_CACHE": str(cache)}
    result = subprocess.run(
        [sys.executable, "-m", "reftlab", f"hydra.run.dir={run_dir}", *SMOKE, *SIGNAL, *overrides],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    assert 0.0 <= summary["warmup_test_accuracy"] <= 1.0
    return summary


def records(run_dir: Path, stage: str) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    found = [r for r in map(json.loads, lines) if r["stage"] == stage]
    for record in found:
        for key, value in record.items():
            if key not in ("stage", "time", "step"):
                assert isinstance(value, (int, float)) and math.isfinite(value), (key, value)
    return found


def stage_result(run_dir: Path, stage: str) -> dict:
    return json.loads((run_dir / "progress.json").read_text())["completed"][stage]["result"]


def max_change(a: Path, b: Path) -> float:
    from transformers import AutoModelForCausalLM

    sa = AutoModelForCausalLM.from_pretrained(a).state_dict()
    sb = AutoModelForCausalLM.from_pretrained(b).state_dict()
    return max((sa[k].float() - sb[k].float()).abs().max().item() for k in sa)


def moved(run_dir: Path, stage: str) -> float:
    warmup = Path(stage_result(run_dir, "sft_warmup")["model_dir"])
    return max_change(warmup, run_dir / "checkpoints" / stage / "final")


def test_bandit(tmp_path, cache):
    run_dir = tmp_path / "run"
    reftlab(
        run_dir,
        cache,
        "method=bandit",
        "method.reward_shape=partial",
        "method.batch_size=16",
        "method.mini_batch_size=16",
    )
    steps = records(run_dir, "policy_gradient")
    assert len(steps) == 2  # budget=smoke: two RL steps
    for step in steps:
        # Plain REINFORCE: no clipping, no KL, one update per batch on fresh samples.
        assert step["train/clipfrac"] == 0.0 and step["train/kl"] == 0.0
        assert abs(step["train/approx_kl"]) < 1e-6
    assert moved(run_dir, "policy_gradient") > 0


def test_offline_self_training(tmp_path, cache):
    first_losses = {}
    for restart in ("base", "warmup"):
        run_dir = tmp_path / restart
        summary = reftlab(run_dir, cache, "method=offline_st", f"method.restart_from={restart}")
        assert summary["samples_drawn"] == N_TRAIN * SAMPLES
        assert summary["samples_kept"] <= summary["samples_correct"] <= summary["samples_drawn"]
        kept = (run_dir / "samples" / "offline_st.jsonl").read_text().splitlines()
        assert len(kept) == summary["training_pairs"] == N_TRAIN + summary["samples_kept"]
        steps = records(run_dir, "sft_on_samples")
        assert steps and all("train/sft_loss" in s for s in steps)
        first_losses[restart] = steps[0]["train/sft_loss"]
    # Restarting from the untrained base starts from a far higher loss than from the warm-up.
    assert first_losses["base"] > first_losses["warmup"] + 0.3
    assert moved(run_dir, "sft_on_samples") > 0  # the restart_from=warmup run


def test_online_self_training(tmp_path, cache):
    run_dir = tmp_path / "run"
    reftlab(run_dir, cache, "method=online_st", "method.batch_size=16", "method.mini_batch_size=16")
    steps = records(run_dir, "online_self_training")
    assert len(steps) == 2
    for step in steps:
        assert 0 <= step["train/kept_samples"] <= 16 * 4 and step["train/nll_loss"] > 0
    assert moved(run_dir, "online_self_training") > 0


def gold_traces(path: Path, n: int) -> list[str]:
    """A trace file holding the gold CoTs of the run's first n training problems."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from reftlab.app.cli import conf_dir
    from reftlab.config import register_configs, to_run_config
    from reftlab.data.splits import load_splits

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        run = to_run_config(compose("config", overrides=[*SMOKE, "output_dir=."]))
    GlobalHydra.instance().clear()
    train = load_splits(run).train[:n]
    path.write_text("".join(json.dumps({"id": e.id, "completion": e.cot}) + "\n" for e in train))
    return [e.id for e in train]


def test_prefixrl_on_file_traces(tmp_path, cache):
    run_dir = tmp_path / "run"
    gold_traces(tmp_path / "traces.jsonl", 8)
    summary = reftlab(
        run_dir,
        cache,
        "method=prefixrl",
        "method.trace_source=file",
        "method.reward_shape=partial",
        f"method.trace_file={tmp_path / 'traces.jsonl'}",
        "method.batch_size=8",
        "method.rollouts_per_query=4",
        "method.mini_batch_size=32",
    )
    # Traces from a file cost no sampling; all 8 problems with a trace get prefixes, half the
    # pool of 32 is prefixed (plain_fraction=0.5).
    assert summary["samples_drawn"] == 0 and summary["hard_problems"] == 8
    assert summary["prefixed_problems"] == 16 and summary["pool_size"] == N_TRAIN
    steps = records(run_dir, "prefix_rl")
    assert len(steps) == 2
    seen = {k for s in steps for k in s if k.startswith("train/reward_p")}
    assert seen == {"train/reward_prefixed", "train/reward_plain"}
    assert "train_reward_prefixed" in summary and "train_reward_plain" in summary
    assert moved(run_dir, "prefix_rl") > 0


def test_prefixrl_sft_baseline_on_rejection_traces(tmp_path, cache):
    run_dir = tmp_path / "run"
    summary = reftlab(
        run_dir,
        cache,
        "method=prefixrl",
        "method.offpolicy_use=sft",
        "method.reward_shape=partial",
        "method.batch_size=8",
        "method.rollouts_per_query=4",
        "method.mini_batch_size=32",
    )
    assert summary["samples_drawn"] == N_TRAIN * SAMPLES  # where the off-policy compute went
    plan = json.loads((run_dir / "plan.json").read_text())
    assert plan["stages"] == ["sft_warmup", "collect_traces", "sft_on_traces", "rl", "evaluate"]
    steps = records(run_dir, "rl")
    assert len(steps) == 2
    assert all("train/reward_plain" in s and "train/reward_prefixed" not in s for s in steps)
    assert summary["prefixed_problems"] == 0
    checkpoints = run_dir / "checkpoints"
    assert max_change(checkpoints / "sft_on_traces" / "final", checkpoints / "rl" / "final") > 0
