"""The methods reftlab runs, by the name `method=` takes: the one list of them.

Each entry says what the rest of reftlab needs to know about a method: its typed config schema
(the nodes of the stages it runs), its stages in order (a stage name is also the key of its
checkpoint), the title of its closing table, and whether its stages shard their work over
processes and `grad_accum`. The orchestration is `reftlab.methods.<name>.train_and_evaluate`.

This module imports no torch: the command line reads it to compose and check a run.
"""

from __future__ import annotations

from dataclasses import dataclass

from reftlab.config import (
    MethodConfig,
    OfflineSTConfig,
    OnlineSTConfig,
    PrefixRLConfig,
    RLConfig,
    SFTConfig,
)
from reftlab.errors import ReftlabError


@dataclass(frozen=True)
class MethodSpec:
    schema: type[MethodConfig]
    stages: tuple[str, ...]
    title: str
    # Whether the stages shard each step over processes and grad_accum (SFT, RL, evaluation).
    sharded: bool = False


METHODS: dict[str, MethodSpec] = {
    "sft": MethodSpec(SFTConfig, ("sft", "evaluate"), "SFT", sharded=True),
    "reft": MethodSpec(RLConfig, ("sft_warmup", "ppo", "evaluate"), "ReFT", sharded=True),
    "offline_st": MethodSpec(
        OfflineSTConfig,
        ("sft_warmup", "sample_and_filter", "sft_on_samples", "evaluate"),
        "offline self-training",
    ),
    "online_st": MethodSpec(
        OnlineSTConfig,
        ("sft_warmup", "online_self_training", "evaluate"),
        "online self-training",
    ),
    "prefixrl": MethodSpec(
        PrefixRLConfig,
        ("sft_warmup", "collect_traces", "prefix_rl", "evaluate"),
        "PrefixRL",
    ),
    "bandit": MethodSpec(
        RLConfig,
        ("sft_warmup", "policy_gradient", "evaluate"),
        "bandit policy gradient",
        sharded=True,
    ),
}

# PrefixRL's strongest baseline (`method.offpolicy_use=sft`) runs other stages: SFT on the
# traces, then plain RL.
PREFIXRL_SFT_BASELINE = ("sft_warmup", "collect_traces", "sft_on_traces", "rl", "evaluate")
# Plain RL from the warm-up (`method.offpolicy_use=none`): no traces, no prefixes.
PREFIXRL_PLAIN_RL = ("sft_warmup", "rl", "evaluate")
# SFT trained longer from an RL method's warm-up (`method.continue_epochs`): the control that
# says whether RL beat simply training longer.
SFT_CONTINUED = ("sft_warmup", "sft_continued", "evaluate")


def get_method(name: str) -> MethodSpec:
    try:
        return METHODS[name]
    except KeyError:
        raise ReftlabError(
            f"unknown method {name!r}; choose one of: {', '.join(METHODS)}"
        ) from None


def method_schemas() -> dict[str, type[MethodConfig]]:
    """Each method's config schema, for `reftlab.config.register_configs`."""
    return {name: spec.schema for name, spec in METHODS.items()}


def pipeline(method: MethodConfig) -> tuple[str, ...]:
    """The stages a method's config runs, in order."""
    if method.name == "prefixrl" and method.offpolicy_use == "sft":
        return PREFIXRL_SFT_BASELINE
    if method.name == "prefixrl" and method.offpolicy_use == "none":
        return PREFIXRL_PLAIN_RL
    if method.name == "sft" and method.continue_epochs:
        return SFT_CONTINUED
    return get_method(method.name).stages
