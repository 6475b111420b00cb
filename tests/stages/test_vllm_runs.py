"""Real runs with `rollout.engine=vllm` on this CPU: a few RL steps of ReFT and of the bandit
baseline, on the tiny model and on the offline real model (SmolLM2-135M), through the CLI.
`make install-vllm` installs vLLM; CI runs it before these tests."""

from __future__ import annotations

import math

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
    """One cache for the real-model runs: the bandit run reuses ReFT's warm-up."""
    return tmp_path_factory.mktemp("cache")


@pytest.mark.parametrize("method,stage", [("reft", "ppo"), ("bandit", "policy_gradient")])
def test_the_offline_real_model_with_vllm(tmp_path, shared_cache, method, stage):
    pytest.importorskip("gguf", reason="the gguf package reads the offline SmolLM2 weights")
    run_dir = tmp_path / "run"
    reftlab(
        run_dir,
        shared_cache,
        "model=smollm2-135m",
        f"method={method}",
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
    steps = rl_records(run_dir, stage)
    assert len(steps) == 2
    # A real 49k-vocabulary model in fp32 on both sides: vLLM's kernels sum in another order.
    assert all(r["train/engine_logprob_gap"] < 0.01 for r in steps)
    summary = (run_dir / "summary.json").read_text()
    assert '"model": "smollm2-135m"' in summary
