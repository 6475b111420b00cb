"""Every shipped config option composes, converts to the typed schema and validates."""

from __future__ import annotations

import itertools

import pytest

from reftlab.app.compose import group_options
from reftlab.config import ConfigError, RunConfig, validate

METHODS = group_options("method")
COTS = group_options("cot")
DATASETS = group_options("dataset")
# Data sets with no Hub copy are rejected unless local files are named (README: "Combinations").
NEEDS_LOCAL_FILES = {"mathqa_numeric"}


def test_shipped_groups_are_the_documented_ones():
    assert METHODS == sorted(["sft", "reft", "offline_st", "online_st", "prefixrl", "bandit"])
    assert COTS == ["natural", "program"]
    assert DATASETS == sorted(["gsm8k", "svamp", "mathqa", "mathqa_numeric", "arith"])
    assert {"tiny", "galactica-125m", "codellama-7b", "qwen2.5-0.5b"} <= set(group_options("model"))
    assert group_options("budget") == ["full", "laptop", "smoke"]


@pytest.mark.parametrize("method,cot,dataset", list(itertools.product(METHODS, COTS, DATASETS)))
def test_every_combination_composes_and_validates(composer, method, cot, dataset):
    run = composer(f"method={method}", f"cot={cot}", f"dataset={dataset}")
    assert isinstance(run, RunConfig)
    assert (run.method.name, run.cot.name, run.dataset.name) == (method, cot, dataset)
    if dataset in NEEDS_LOCAL_FILES:
        with pytest.raises(ConfigError, match="dataset.path=DIR"):
            validate(run)
        run = composer(
            f"method={method}",
            f"cot={cot}",
            f"dataset={dataset}",
            "dataset.test_file=/data/test.json",
        )
    validate(run)


@pytest.mark.parametrize("model", group_options("model"))
def test_every_model_preset_validates(composer, model):
    validate(composer(f"model={model}", "dataset=gsm8k"))


def test_default_is_the_embedded_reft_run(composer):
    run = composer()
    assert (run.method.name, run.cot.name, run.dataset.name, run.model.name) == (
        "reft",
        "natural",
        "arith",
        "tiny",
    )
    assert run.budget.name == "full"


def test_reft_carries_the_paper_hyperparameters(composer):
    m = composer("method=reft", "dataset=gsm8k").method
    assert (m.kl_coef, m.gamma, m.lam, m.clip_range, m.value_clip_range) == (
        0.05,
        1.0,
        0.95,
        0.2,
        0.2,
    )
    assert (m.vf_coef, m.ppo_epochs, m.rollouts_per_query, m.warmup_epochs) == (5.0, 2, 1, 2)
    assert m.advantage == "gae" and m.reward_shape == "partial"
    # The ReFT code's adv_whitening='global' and per-response averaging of both losses.
    assert (m.whiten_advantages, m.loss_agg) == (True, "seq_mean")


def test_the_other_rl_methods_keep_unwhitened_token_means(composer):
    for overrides in (["method=bandit"], ["method=prefixrl"], ["dataset=gsm8k", "method=bandit"]):
        m = composer(*overrides).method
        assert (m.whiten_advantages, m.loss_agg) == (False, "token_mean"), overrides
    # The embedded default runs ReFT's whitening and per-response mean (they measured better)...
    assert (composer().method.whiten_advantages, composer().method.loss_agg) == (
        True,
        "seq_mean",
    )
    # ...and a command line still reaches the alternative.
    m = composer("method.whiten_advantages=false", "method.loss_agg=token_mean").method
    assert (m.whiten_advantages, m.loss_agg) == (False, "token_mean")


def test_reft_uses_the_smaller_kl_for_programs(composer):
    assert composer("method=reft", "cot=program").method.kl_coef == 0.01
    # ...and only for ReFT: the bandit baseline has no KL whatever the CoT.
    assert composer("method=bandit", "cot=program").method.kl_coef == 0.0


def test_bandit_is_the_minimal_baseline(composer):
    m = composer("method=bandit", "dataset=gsm8k").method
    assert (m.rollouts_per_query, m.batch_size, m.advantage, m.kl_coef, m.clip_range) == (
        1,
        32,
        "none",
        0.0,
        None,
    )


def test_demo_schedule_applies_only_to_the_embedded_default(composer):
    assert composer().method.sft_lr > composer("dataset=gsm8k").method.sft_lr
    assert composer("model=qwen2.5-0.5b").method.sft_lr == 1e-5
    # The demo's task (half the solutions without working) is the tiny model's only.
    assert composer().dataset.direct_answer_rate == 0.5
    assert composer("model=smollm2-135m").dataset.direct_answer_rate == 0.0
    assert (
        composer().method.value_lr is not None and composer("dataset=gsm8k").method.value_lr is None
    )


def test_command_line_beats_the_demo_schedule(composer):
    assert composer("method.warmup_epochs=7").method.warmup_epochs == 7


def test_smoke_budget_caps_the_schedule(composer):
    from reftlab.methods.schedule import make_schedule

    full = make_schedule(composer())
    smoke = make_schedule(composer("budget=smoke"))
    assert smoke.warmup_epochs <= 1 < full.warmup_epochs
    assert smoke.max_train_examples == 32 and full.max_train_examples is None
    assert smoke.max_new_tokens <= full.max_new_tokens


# The laptop budget is sized for models of about 100M parameters (smollm2-135m, galactica-125m);
# larger presets compose, and their plan says they take longer (README: "A real model on a laptop").
LARGER_MODELS = [
    m for m in group_options("model") if m not in ("tiny", "smollm2-135m", "galactica-125m")
]


def laptop_minutes(composer, *overrides: str) -> float | None:
    from reftlab.app.plan import make_plan

    run = composer("budget=laptop", "rollout.engine=vllm", *overrides)
    validate(run)
    seconds = make_plan(run)["estimated_s"]
    return None if seconds is None else seconds / 60


@pytest.mark.parametrize("method", METHODS)
def test_laptop_budget_composes_everywhere_and_fits_45_minutes_on_paper(composer, method):
    for cot, dataset in itertools.product(COTS, DATASETS):
        if dataset in NEEDS_LOCAL_FILES:  # composes; no sizes to estimate from without files
            local = ["dataset.path=/x", f"cot={cot}", f"dataset={dataset}"]
            validate(composer("budget=laptop", "model=smollm2-135m", f"method={method}", *local))
            continue
        minutes = laptop_minutes(
            composer, "model=smollm2-135m", f"method={method}", f"cot={cot}", f"dataset={dataset}"
        )
        assert 20 <= minutes <= 46, (cot, dataset, minutes)
    # galactica-125m is priced at 125/135 of SmolLM2-135M.
    minutes = laptop_minutes(composer, "model=galactica-125m", f"method={method}")
    assert 18 <= minutes <= 46


@pytest.mark.parametrize("model", LARGER_MODELS)
def test_laptop_budget_says_when_a_model_is_too_large_for_it(composer, model):
    assert laptop_minutes(composer, f"model={model}", "method=reft", "dataset=gsm8k") > 100


def test_every_laptop_method_shares_one_warmup(composer):
    """So that `method=sft` (SFT trained longer) and every RL method start from ReFT's cached
    warm-up: the settings the warm-up's cache key reads are the same for all."""
    warmups = {
        (m.warmup_epochs, m.sft_lr, m.sft_batch_size)
        for m in (
            composer(f"method={name}", "budget=laptop", "model=smollm2-135m").method
            for name in METHODS
        )
    }
    assert warmups == {(1, 1e-4, 16)}
    sft = composer("method=sft", "budget=laptop", "model=smollm2-135m")
    assert sft.method.continue_epochs == 2
    assert composer("method=sft").method.continue_epochs == 0


def test_the_wall_time_estimate_prices_every_stage(composer):
    """A golden count with every unit cost at 1 s: a dropped term (the reference's forward, a
    PPO epoch, an evaluation during training) changes it."""
    from reftlab.methods.estimate import UnitCosts, estimate
    from reftlab.methods.schedule import make_schedule

    run = composer(
        "method=reft",
        "model=smollm2-135m",
        "cot=program",
        "dataset=svamp",
        "budget=laptop",
        "rollout.engine=vllm",
    )
    e = estimate(run, make_schedule(run), 320, 300, UnitCosts(1.0, 1.0, 1.0, 1.0))
    # warm-up: 320 examples x 1 epoch + its 300-question evaluation
    # ppo: 16 steps x 16 rollouts x (sample + old log-probs + reference + 2 PPO epochs)
    assert e.stages == {"sft_warmup": 620.0, "ppo": 1280.0, "evaluate": 300.0}
    # before the warm-up, at its step 10 (of 20), at PPO's step 10 (of 16)
    assert e.evaluations_during_training == 900.0
    # Sampling with transformers' generate is priced at twice vLLM's.
    hf = composer(
        "method=reft", "model=smollm2-135m", "cot=program", "dataset=svamp", "budget=laptop"
    )
    assert (
        estimate(hf, make_schedule(hf), 320, 300, UnitCosts(1.0, 1.0, 1.0, 1.0)).stages["ppo"]
        == 16 * 16 * 6.0
    )
    assert estimate(composer(), make_schedule(composer()), 320, 300) is None  # tiny: no size


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["method.advantage=group_norm"], "rollouts_per_query to 2 or more"),
        (["method.advantage=magic"], "choose one of: gae, none"),
        (["method.kl_coef=-1"], "must be >= 0"),
        (["method.loss_agg=sum"], "choose one of: token_mean, seq_mean"),
        (
            ["method=prefixrl", "method.prefix_min_frac=0.9", "method.prefix_max_frac=0.5"],
            "min <= max",
        ),
        (["method.kl_penalty=loss", "method.kl_estimator=k1"], "use kl_estimator=k3"),
        (["eval.rerank=true"], "eval.samples >= 2"),
        (["method=prefixrl", "method.trace_source=file"], "method.trace_file=PATH"),
        (["dataset=gsm8k", "dataset.path=/d", "dataset.test_file=/t"], "not both"),
        (["model=qwen2.5-0.5b", "model.path=null"], "needs model.path"),
    ],
)
def test_cross_field_checks_name_the_fix(composer, overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(composer(*overrides))


def test_rollout_engine_vllm_without_vllm_is_one_line_naming_the_fix(composer, monkeypatch):
    from reftlab.app.compose import validate_run
    from reftlab.stages import engines

    monkeypatch.setattr(engines, "vllm_installed", lambda: False)
    validate_run(composer("rollout.engine=hf"))
    with pytest.raises(ConfigError, match=r"needs vLLM.*make install-vllm.*rollout\.engine=hf"):
        validate_run(composer("rollout.engine=vllm"))


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["rollout.engine=sglang"], "rollout.engine=sglang is not valid"),
        (["rollout.engine=vllm", "rollout.tis_cap=0.5"], r"tis_cap=0.5 must be >= 1"),
        (["rollout.tis_cap=2"], "with rollout.engine=hf they are the same model"),
        (["rollout.engine=static", "rollout.tis_cap=2"], "engine=static they are the same model"),
        (["rollout.vllm.gpu_memory_utilization=1.5"], r"must lie in \(0, 1\)"),
        (["rollout.vllm.cpu_kv_cache_gb=0"], "cpu_kv_cache_gb=0.0 must be > 0"),
        (["rollout.vllm.dtype=int8"], "rollout.vllm.dtype=int8 is not valid"),
    ],
)
def test_rollout_settings_are_checked_before_anything_loads(composer, overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(composer(*overrides))
