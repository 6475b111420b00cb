"""Short real runs of every method on the tiny model (smoke budget): artifacts, finite metrics,
and each method's own bookkeeping (slow); and, fast, the direction each method's own update
moves a fixed batch (its YAML's loss, advantage, KL and epochs, two steps on two rollouts)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator

from reftlab.methods.env import frozen_copy, rl_settings
from reftlab.models.value import PolicyWithValue
from reftlab.stages.selftrain import OnlineSTSettings, nll_steps
from tests.stages.tiny_rl import (
    response_logprobs,
    rollout_batch,
    tiny_lm,
    train_on_batch,
)

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


@pytest.mark.slow
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
    # The update's direction: test_each_rl_methods_update_raises_the_rewarded_rollout.


@pytest.mark.slow
def test_sft_continued_from_an_rl_runs_warmup(tmp_path):
    """method.continue_epochs: the RL run's cached warm-up, then more SFT from it."""
    cache = tmp_path / "cache"
    reftlab(
        tmp_path / "bandit",
        cache,
        "method=bandit",
        "method.batch_size=16",
        "method.mini_batch_size=16",
    )
    run_dir = tmp_path / "sft"
    summary = reftlab(run_dir, cache, "method=sft", "method.continue_epochs=2")
    warm = stage_result(run_dir, "sft_warmup")
    assert (
        warm["reused"]
        and warm["model_dir"] == stage_result(tmp_path / "bandit", "sft_warmup")["model_dir"]
    )
    warm_test = records(tmp_path / "bandit", "sft_warmup")[-1]["eval/accuracy"]
    assert summary["warmup_test_accuracy"] == warm_test
    # 32 smoke examples in steps of 64 (conf/demo/arith_tiny.yaml): one step per epoch.
    continued = records(run_dir, "sft_continued")
    assert len(continued) == 2
    # It starts where the warm-up ended, not from the base model: the loss of its first step is
    # the warm-up's last, well below the base model's first.
    warmup_steps = records(tmp_path / "bandit", "sft_warmup")
    warmup_losses = [r["train/sft_loss"] for r in warmup_steps if "train/sft_loss" in r]
    assert continued[0]["train/sft_loss"] < warmup_losses[0] - 0.5
    assert continued[0]["train/sft_loss"] == pytest.approx(warmup_losses[-1], rel=0.2)
    assert (run_dir / "predictions" / "evaluate.jsonl").is_file()


@pytest.mark.slow
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
    # The second pass is plain SFT, whose loss falls in tests/stages/test_rl_runs.py's SFT run; here its two
    # logged steps see different pairs, so their losses imply no direction.


@pytest.mark.slow
def test_online_self_training(tmp_path, cache):
    run_dir = tmp_path / "run"
    reftlab(run_dir, cache, "method=online_st", "method.batch_size=16", "method.mini_batch_size=16")
    steps = records(run_dir, "online_self_training")
    assert len(steps) == 2
    for step in steps:
        assert 0 <= step["train/kept_samples"] <= 16 * 4 and step["train/nll_loss"] > 0
    # The update's direction: test_online_self_training_steps_lower_the_nll_of_the_kept.


def gold_traces(path: Path, n: int) -> list[str]:
    """A trace file holding the gold CoTs of the run's first n training problems."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from reftlab.app.compose import conf_dir, register_configs
    from reftlab.config import to_run_config
    from reftlab.methods.inputs import load_run_splits

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        run = to_run_config(compose("config", overrides=[*SMOKE, "output_dir=."]))
    GlobalHydra.instance().clear()
    train = load_run_splits(run).train[:n]
    path.write_text("".join(json.dumps({"id": e.id, "completion": e.cot}) + "\n" for e in train))
    return [e.id for e in train]


@pytest.mark.slow
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
    assert summary["trace_samples_drawn"] == 0 and summary["hard_problems"] == 8
    assert summary["prefixed_problems"] == 16 and summary["pool_size"] == N_TRAIN
    steps = records(run_dir, "prefix_rl")
    assert len(steps) == 2
    seen = {k for s in steps for k in s if k.startswith("train/reward_p")}
    assert seen == {"train/reward_prefixed", "train/reward_plain"}
    assert "train_reward_prefixed" in summary and "train_reward_plain" in summary
    # The update's direction: test_each_rl_methods_update_raises_the_rewarded_rollout.


@pytest.mark.slow
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
    # Where the off-policy compute went; RL's own rollouts are counted from the metrics.
    assert summary["trace_samples_drawn"] == N_TRAIN * SAMPLES
    plan = json.loads((run_dir / "plan.json").read_text())
    assert plan["stages"] == ["sft_warmup", "collect_traces", "sft_on_traces", "rl", "evaluate"]
    steps = records(run_dir, "rl")
    assert len(steps) == 2
    assert all("train/reward_plain" in s and "train/reward_prefixed" not in s for s in steps)
    assert summary["prefixed_problems"] == 0


@pytest.mark.slow
def test_prefixrl_plain_rl_arm_draws_no_traces(tmp_path, cache):
    run_dir = tmp_path / "run"
    summary = reftlab(
        run_dir,
        cache,
        "method=prefixrl",
        "method.offpolicy_use=none",
        "method.batch_size=8",
        "method.rollouts_per_query=4",
        "method.mini_batch_size=32",
    )
    plan = json.loads((run_dir / "plan.json").read_text())
    assert plan["stages"] == ["sft_warmup", "rl", "evaluate"]
    assert not (run_dir / "traces").exists() and "trace_samples_drawn" not in summary
    assert summary["prefixed_problems"] == 0 and summary["pool_size"] == N_TRAIN
    assert len(records(run_dir, "rl")) == 2


# --- fast: the direction of each method's own update, on a fixed batch -------------------------

# Two rollouts of one prompt, the first right (1.0) and the second wrong (0.0).
PROMPT = [3, 5, 7]
ROLLOUTS = [[9, 10, 11, 2], [12, 13, 2]]


@pytest.mark.parametrize("method", ["bandit", "reft", "prefixrl"])
def test_each_rl_methods_update_raises_the_rewarded_rollout(method, method_env):
    """Two steps of the method's own RL settings (bandit: REINFORCE on the raw reward; reft:
    PPO with GAE, a value head and the KL in the reward; prefixrl: clipped PG on group-normalised
    advantages) at a learning rate that moves a tiny model: the rollout scored 1 gains
    log-probability, and more than the rollout scored 0 (which has advantage 0 or below)."""
    env = method_env(
        f"method={method}",
        "method.batch_size=1",
        "method.rollouts_per_query=2",
        "method.mini_batch_size=2",
    )
    s = dataclasses.replace(rl_settings(env, 1), lr=1e-2)
    lm = tiny_lm(seed=0)
    policy = PolicyWithValue(lm) if s.uses_values else lm
    reference = frozen_copy(lm) if s.kl_coef > 0 else None
    batch = rollout_batch([PROMPT, PROMPT], ROLLOUTS, group_ids=[0, 0])
    before = response_logprobs(lm, batch)
    train_on_batch(policy, reference, batch, torch.tensor([1.0, 0.0]), s, steps=2)
    gain = response_logprobs(lm, batch) - before
    assert gain[0] > 0.5 and gain[0] > gain[1] + 0.5
    if s.advantage == "group_norm":  # the wrong rollout's advantage is -1/sqrt(2)
        assert gain[1] < -0.5


def test_online_self_training_steps_lower_the_nll_of_the_kept(tokenizer, small_model):
    """Three passes of online self-training's NLL step over the same kept (prompt, sample)
    pairs: the loss each pass measures before its step falls."""
    s = OnlineSTSettings(
        steps=1,
        batch_size=2,
        mini_batch_size=2,
        rollouts_per_query=1,
        lr=1e-3,
        mix_gold=False,
        temperature=1.0,
        top_p=1.0,
        max_new_tokens=16,
        max_length=64,
        seed=0,
    )
    prompts = ["Question: Tom has 5 books.\nAnswer:", "Question: Ann has 2 pens.\nAnswer:"]
    kept = [" The answer is 5.", " 2 + 0 = 2.\nThe answer is 2."]
    optimizer = torch.optim.AdamW(small_model.parameters(), lr=s.lr, weight_decay=0.0)
    accelerator = Accelerator(cpu=True)
    losses = []
    for step in range(3):
        shuffle = torch.Generator().manual_seed(step)
        metrics = nll_steps(
            small_model, optimizer, accelerator, tokenizer, prompts, kept, s, shuffle
        )
        losses.append(metrics["train/nll_loss"])
    assert losses[2] < losses[1] < losses[0]
