"""The names the YAML uses for the RL engine's parts, what each needs, and where it lives.

One registry per kind of part, keyed by the name the YAML uses (`method.advantage`,
`method.policy_loss`, `method.kl_estimator`, `method.loss_agg`). An entry points at its function as
`"module:function"` and declares what the RL step must give it, so that config checks, the
dry run and the RL stage read the same entry. This module imports no torch: the command line
checks names against it before anything heavy loads. To add an estimator or a loss, write the
function in its module and add one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar


@dataclass(frozen=True)
class Entry:
    """A registered function, found at `target` ("module:function") when first used."""

    target: str

    def load(self) -> Callable[..., Any]:
        module, name = self.target.split(":")
        return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class AdvantageSpec(Entry):
    """An advantage estimator and what the RL step must give it.

    `needs_values`: it reads a value model's estimates, so the step runs a critic and trains
    it. `min_rollouts_per_query`: it compares rollouts of the same prompt, so each prompt needs
    at least this many.
    """

    needs_values: bool = False
    min_rollouts_per_query: int = 1


ADVANTAGE_ESTIMATORS: dict[str, AdvantageSpec] = {
    "gae": AdvantageSpec("reftlab.rl.advantages:estimate_gae", needs_values=True),
    "none": AdvantageSpec("reftlab.rl.advantages:estimate_none"),
    "batch_mean": AdvantageSpec("reftlab.rl.advantages:estimate_batch_mean"),
    "group_norm": AdvantageSpec(
        "reftlab.rl.advantages:estimate_group_norm", min_rollouts_per_query=2
    ),
    "rloo": AdvantageSpec("reftlab.rl.advantages:estimate_rloo", min_rollouts_per_query=2),
}

POLICY_LOSSES: dict[str, Entry] = {
    "ppo_clip": Entry("reftlab.rl.losses:ppo_policy_loss"),
    "pg": Entry("reftlab.rl.losses:pg_policy_loss"),
}

KL_ESTIMATORS: dict[str, Entry] = {
    "k1": Entry("reftlab.rl.kl:kl_k1"),
    "k2": Entry("reftlab.rl.kl:kl_k2"),
    "k3": Entry("reftlab.rl.kl:kl_k3"),
}

# How a per-token loss becomes a scalar (`method.loss_agg`; rl/losses.py `aggregate_loss`):
# token_mean weighs every token alike, seq_mean every response alike (the ReFT code's average).
LOSS_AGGREGATIONS = ("token_mean", "seq_mean")

# ReFT's critic (`method.value_model`): a linear head on the policy's last hidden state, or a
# separate copy of the backbone with its own head (the paper's ablation); see models/value.py.
VALUE_MODELS = ("head", "separate")

E = TypeVar("E", bound=Entry)


def lookup(registry: Mapping[str, E], kind: str, name: str) -> E:
    """The entry `name` of `registry`; a ValueError lists the known names otherwise."""
    try:
        return registry[name]
    except KeyError:
        known = ", ".join(sorted(registry))
        raise ValueError(f"unknown {kind} {name!r}; known: {known}") from None


def advantage_spec(name: str) -> AdvantageSpec:
    return lookup(ADVANTAGE_ESTIMATORS, "advantage estimator", name)
