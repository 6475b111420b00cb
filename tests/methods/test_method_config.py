"""The methods' config rules: stages per method, and the cross-field checks they added."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from reftlab.app.compose import conf_dir
from reftlab.config import ConfigError, validate
from reftlab.methods.env import RLSettings, rl_settings
from reftlab.methods.registry import METHODS, pipeline
from reftlab.rl.registry import ADVANTAGE_ESTIMATORS


def test_every_registered_method_has_its_yaml_and_its_module():
    assert sorted(METHODS) == sorted(p.stem for p in (conf_dir() / "method").glob("*.yaml"))
    for name in METHODS:
        assert callable(importlib.import_module(f"reftlab.methods.{name}").train_and_evaluate)


def test_each_method_composes_into_its_own_schema(method_env):
    for name, spec in METHODS.items():
        assert type(method_env(f"method={name}").run.method) is spec.schema


@pytest.mark.parametrize(
    "overrides,owner",
    [
        (["method=sft", "method.kl_coef=0.1"], "kl_coef"),
        (["method=reft", "method.samples_per_question=3"], "samples_per_question"),
        (["method=offline_st", "method.trace_source=file"], "trace_source"),
    ],
)
def test_a_knob_of_another_method_fails_at_composition(method_env, overrides, owner):
    with pytest.raises(Exception, match=f"Could not override 'method.{owner}'"):
        method_env(*overrides)


def test_rl_settings_take_every_rl_knob_from_the_method_node(method_env):
    env = method_env("method=reft", "method.kl_coef=0.123", "method.rl_lr=7e-7", "seed=3")
    settings = rl_settings(env, 64)
    node = env.run.method
    shared = {f.name for f in dataclasses.fields(RLSettings)} & set(node.__dataclass_fields__)
    assert shared  # every same-named field is copied as it is
    assert all(getattr(settings, name) == getattr(node, name) for name in shared)
    assert (settings.kl_coef, settings.lr, settings.seed) == (0.123, 7e-7, 3)


def test_uses_values_is_what_the_estimator_declares(method_env):
    for name, spec in ADVANTAGE_ESTIMATORS.items():
        env = method_env("method=bandit", f"method.advantage={name}", "method.rollouts_per_query=2")
        assert rl_settings(env, 8).uses_values is spec.needs_values


def test_prefixrl_sft_baseline_has_its_own_stages(method_env):
    assert pipeline(method_env("method=prefixrl").run.method) == METHODS["prefixrl"].stages
    baseline = method_env("method=prefixrl", "method.offpolicy_use=sft").run.method
    assert pipeline(baseline) == ("sft_warmup", "collect_traces", "sft_on_traces", "rl", "evaluate")


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["method=prefixrl", "method.hard_max_pass_rate=1.5"], "must lie in \\[0, 1\\]"),
        (["method=offline_st", "method.keep_correct=-1"], "0: gold only"),
        (["method=prefixrl", "method.trace_file=t.jsonl"], "method.trace_source=file"),
        (["method=bandit", "method.advantage=rloo"], "rollouts_per_query to 2 or more"),
    ],
)
def test_cross_field_checks_name_the_fix(method_env, overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(method_env(*overrides).run)


def test_the_documented_ablation_sweeps_validate(method_env):
    for advantage in ("none", "batch_mean"):
        validate(method_env("method=bandit", f"method.advantage={advantage}").run)
    for advantage in ("none", "batch_mean", "rloo", "group_norm"):
        validate(
            method_env(
                "method=bandit",
                "method.rollouts_per_query=4",
                "method.mini_batch_size=128",
                f"method.advantage={advantage}",
                "dataset=gsm8k",
            ).run
        )


def test_the_warmup_key_reads_what_the_weights_depend_on_and_not_the_estimates_input(method_env):
    from reftlab.methods.warmup import warmup_key

    def key(*overrides: str) -> str:
        env = method_env("model=smollm2-135m", "budget=laptop", *overrides)
        return warmup_key(env, env.schedule.warmup_epochs)

    base = key()
    # model.params_m only feeds the plan's wall-time estimate; budget.eval_every only evaluates.
    assert key("model.params_m=999") == base
    assert key("budget.eval_every=3") == base
    # The SFT control and every RL method share the warm-up under budget=laptop.
    assert key("method=sft") == key("method=bandit") == base
    assert key("model.max_length=256") != base
    assert key("method.sft_lr=3e-5") != base
