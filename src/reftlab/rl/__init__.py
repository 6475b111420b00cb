"""The RL math: masked reductions, KL estimators, advantage estimators and losses.

Pure functions over tensors and scalars; nothing here sees a config, a logger, a device or a
file. Estimators and losses sit in registries keyed by the names the YAML uses.
"""

from __future__ import annotations

from reftlab.rl.advantages import ADVANTAGE_ESTIMATORS, get_advantage_estimator
from reftlab.rl.kl import KL_ESTIMATORS, get_kl_estimator, kl_penalized_rewards
from reftlab.rl.losses import (
    POLICY_LOSSES,
    explained_variance,
    get_policy_loss,
    value_loss,
)
from reftlab.rl.masked import masked_mean, masked_sum, masked_var, whiten

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "KL_ESTIMATORS",
    "POLICY_LOSSES",
    "explained_variance",
    "get_advantage_estimator",
    "get_kl_estimator",
    "get_policy_loss",
    "kl_penalized_rewards",
    "masked_mean",
    "masked_sum",
    "masked_var",
    "value_loss",
    "whiten",
]
