"""Real runs with `rollout.engine=vllm` on this CPU: a few RL steps of ReFT and of the bandit
baseline, on the tiny model and on the offline real model (SmolLM2-135M), through the CLI.
`make install-vllm` installs vLLM; CI runs it before these tests."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from reftlab.stages.engines import vllm_installed
from tests.stages.test_rl_runs import metrics, reftlab

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not vllm_installed(),
        reason="vLLM is not installed: `make install-vllm` adds it (CI runs it)",
    ),
]

# Partial credit for any last number gives a smoke warm-up's rollouts different rewards, and a
# large step size makes the policy move measurably in one step.
RL_STEPS = [
    "budget.max_rl_steps=2",
    "method.batch_size=8",
    "method.mini_batch_size=8",
    "cot.answer_fallback=last_number",
    "method.rl_lr=1e-3",
]


def rl_records(run_dir, stage: str) -> list[dict]:
    return [r for r in metrics(run_dir) if r["stage"] == stage]


def test_reft_with_vllm_gives_the_same_run_for_the_same_seed(tmp_path):
    """Two runs, separate caches: identical metrics. The policy moves in step 1 (the KL to the
    warm-up is 0 at step 1 and not at step 2), and the engine's sampling log-probs still agree
    with the trainer's at step 2: it sampled from the updated weights."""
    runs = []
    for i in range(2):
        run_dir = tmp_path / f"run{i}"
        reftlab(
            run_dir,
            tmp_path / f"cache{i}",
            "method=reft",
            "rollout.engine=vllm",
            "method.whiten_advantages=true",
            *RL_STEPS,
        )
        runs.append([{k: v for k, v in r.items() if k != "time"} for r in metrics(run_dir)])
        first, second = rl_records(run_dir, "ppo")
        assert abs(first["train/kl"]) < 1e-4 and abs(second["train/kl"]) > 1e-3
        # A stale engine would sample from the warm-up: a gap of the size of the KL's terms.
        assert first["train/engine_logprob_gap"] < 1e-5
        assert second["train/engine_logprob_gap"] < 1e-5
    assert runs[0] == runs[1]


def test_bandit_with_vllm_and_truncated_importance_sampling(tmp_path):
    run_dir = tmp_path / "run"
    reftlab(
        run_dir,
        tmp_path / "cache",
        "method=bandit",
        "rollout.engine=vllm",
        "rollout.tis_cap=2",
        *RL_STEPS,
    )
    steps = rl_records(run_dir, "policy_gradient")
    assert len(steps) == 2
    for record in steps:
        assert record["train/engine_logprob_gap"] < 1e-3
        assert record["train/tis_capped_frac"] == 0.0  # fp32 on both sides: ratios near 1
        assert math.isfinite(record["train/policy_loss"])


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One cache for the real-model runs."""
    return tmp_path_factory.mktemp("cache")


def test_the_readmes_laptop_command_at_smoke_budget(tmp_path, shared_cache, shared_data):
    """`reftlab method=reft model=smollm2-135m dataset=svamp cot=program dataset.path=<ReFT's
    data> rollout.engine=vllm` (README, "A real model on a laptop") with budget=smoke instead of
    budget=laptop, in batches small enough for CI's memory: the real model, real data, programs
    run in the sandbox, evaluations during training, the gain over the warm-up."""
    pytest.importorskip("gguf", reason="the gguf package reads the offline SmolLM2 weights")
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "reftlab",
        "method=reft",
        "model=smollm2-135m",
        "dataset=svamp",
        "cot=program",
        f"dataset.path={shared_data / 'reft'}",
        "budget=smoke",
        "rollout.engine=vllm",
        "budget.eval_every=1",
        "method.sft_batch_size=8",
        "method.batch_size=4",
        "method.mini_batch_size=4",
        # One SFT step (a real model's step is most of this test's time) and the two PPO steps
        # of 4 questions; 8 test problems at each evaluation.
        "budget.max_train_examples=8",
        "budget.max_test_examples=8",
        # The untouched model's programs can loop; 2 s instead of the paper's 10 keeps CI short.
        "cot.program_timeout_s=2",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, "REFTLAB_CACHE": str(shared_cache)}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "time:    ~" in result.stdout  # the plan's wall-time estimate
    records = metrics(run_dir)
    steps = [r for r in records if r["stage"] == "ppo"]
    assert len(steps) == 2
    assert all(r["train/engine_logprob_gap"] < 0.01 for r in steps)
    # The untouched model before the warm-up, the policy after PPO's first step.
    assert [r["step"] for r in records if "eval/accuracy" in r and r["stage"] != "evaluate"][
        :1
    ] == [0]
    assert "eval/accuracy" in steps[0] and "eval/accuracy" not in steps[1]
    summary = json.loads((run_dir / "summary.json").read_text())
    low, gain, high = (summary[f"eval/gain_over_warmup{s}"] for s in ("_ci_low", "", "_ci_high"))
    assert low <= gain <= high
    assert summary["test_accuracy"] - summary["warmup_test_accuracy"] == pytest.approx(gain)


def test_the_bandit_on_the_offline_real_model_with_vllm(tmp_path, shared_cache):
    pytest.importorskip("gguf", reason="the gguf package reads the offline SmolLM2 weights")
    run_dir = tmp_path / "run"
    reftlab(
        run_dir,
        shared_cache,
        "model=smollm2-135m",
        "method=bandit",
        "rollout.engine=vllm",
        "budget.max_train_examples=4",
        "budget.max_test_examples=4",
        "method.warmup_epochs=1",
        "method.sft_batch_size=4",
        "budget.max_rl_steps=2",
        "method.batch_size=4",
        "method.mini_batch_size=4",
        "budget.max_new_tokens=24",
        "cot.answer_fallback=last_number",
        "method.rl_lr=1e-6",
    )
    steps = rl_records(run_dir, "policy_gradient")
    assert len(steps) == 2
    # A real 49k-vocabulary model in fp32 on both sides: vLLM's kernels sum in another order.
    assert all(r["train/engine_logprob_gap"] < 0.01 for r in steps)
    summary = (run_dir / "summary.json").read_text()
    assert '"model": "smollm2-135m"' in summary
