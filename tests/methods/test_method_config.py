"""The methods' config rules: stages per method, and the cross-field checks they added."""

from __future__ import annotations

import pytest

from reftlab.config import PIPELINES, ConfigError, pipeline, validate
from reftlab.methods import IMPLEMENTED


def test_every_method_is_built():
    assert set(IMPLEMENTED) == set(PIPELINES)


def test_prefixrl_sft_baseline_has_its_own_stages(method_env):
    assert pipeline(method_env("method=prefixrl").run.method) == PIPELINES["prefixrl"]
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
