"""Advantage estimators, in a registry keyed by the names the YAML uses (``method.advantage``).

Every estimator has one signature::

    estimate(rewards, values, response_mask, group_ids, gamma, lam) -> (advantages, returns)

``rewards``: (B, T) per-token rewards (e.g. from ``kl_penalized_rewards``); ``values``: (B, T)
value-head estimates, or None for estimators without a critic; ``response_mask``: (B, T), true
at real response tokens; ``group_ids``: (B,) long, equal for rollouts of the same prompt, or
None for estimators that do not group. ``advantages`` and ``returns`` are (B, T) and 0 at
masked positions; whatever ``rewards`` and ``values`` hold there has no effect.

``gae`` works per token. The others are outcome-level: they score a whole response with its
sequence reward ``R = sum_t mask_t * r_t`` (undiscounted, so ``gamma`` and ``lam`` are unused),
turn ``R`` into one advantage per response and broadcast it to every response token; their
``returns`` are ``R`` broadcast the same way, for logging.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from reftlab.rl.masked import masked_sum, zero_masked
from reftlab.rl.registry import ADVANTAGE_ESTIMATORS, lookup

# Added to a group's standard deviation so a group whose rollouts all score the same gets
# advantage 0 instead of 0 / 0.
GROUP_STD_EPS = 1e-6


class AdvantageEstimator(Protocol):
    """The one signature every registered advantage estimator has."""

    def __call__(
        self,
        rewards: Tensor,
        values: Tensor | None,
        response_mask: Tensor,
        group_ids: Tensor | None,
        gamma: float,
        lam: float,
    ) -> tuple[Tensor, Tensor]: ...


def _require(tensor: Tensor | None, what: str, estimator: str) -> Tensor:
    if tensor is None:
        raise ValueError(f"advantage estimator {estimator!r} needs {what}, got None")
    return tensor


def gae_loop(
    rewards: Tensor, values: Tensor, response_mask: Tensor, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016), a loop backwards over time.

    ``delta_t = r_t + gamma * V_{t+1} - V_t`` and ``A_t = delta_t + gamma * lam * A_{t+1}``,
    where ``t+1`` is the next *real* token: masked positions are skipped (padding after the end,
    or tokens masked inside a response), and after the last real token ``V`` and ``A`` are 0
    (the episode ends with the response). ``returns = advantages + values``. All tensors (B, T);
    both outputs are 0 at masked positions.
    """
    mask = response_mask.bool()
    next_value = torch.zeros_like(rewards[:, 0])
    lastgaelam = torch.zeros_like(rewards[:, 0])
    advantages_reversed = []
    for t in reversed(range(rewards.shape[-1])):
        real = mask[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        gae = delta + gamma * lam * lastgaelam
        # A masked step leaves the carried value and advantage as they were: it is not a step.
        lastgaelam = torch.where(real, gae, lastgaelam)
        next_value = torch.where(real, values[:, t], next_value)
        advantages_reversed.append(torch.where(real, gae, torch.zeros_like(gae)))
    advantages = torch.stack(advantages_reversed[::-1], dim=-1)
    returns = zero_masked(advantages + values, mask)
    return advantages, returns


def estimate_gae(
    rewards: Tensor,
    values: Tensor | None,
    response_mask: Tensor,
    group_ids: Tensor | None,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """``gae``: per-token GAE with a value function (ReFT's PPO); see ``gae_loop``.

    ``group_ids`` is unused.
    """
    return gae_loop(rewards, _require(values, "values", "gae"), response_mask, gamma, lam)


def sequence_rewards(rewards: Tensor, response_mask: Tensor) -> Tensor:
    """``R = sum_t mask_t * r_t``: the undiscounted reward of each response, (B, T) -> (B,)."""
    return masked_sum(rewards, response_mask, dim=-1)


def _broadcast(per_sequence: Tensor, response_mask: Tensor) -> Tensor:
    """A (B,) value copied onto every real token of (B, T), 0 elsewhere."""
    return zero_masked(per_sequence.unsqueeze(-1).expand(response_mask.shape), response_mask)


def estimate_none(
    rewards: Tensor,
    values: Tensor | None,
    response_mask: Tensor,
    group_ids: Tensor | None,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """``none``: ``A = R``, the raw sequence reward on every token (plain REINFORCE weight).

    No baseline, as in the minimal bandit policy gradient. ``values``, ``group_ids``, ``gamma``
    and ``lam`` are unused.
    """
    seq_rewards = _broadcast(sequence_rewards(rewards, response_mask), response_mask)
    return seq_rewards, seq_rewards.clone()


def estimate_batch_mean(
    rewards: Tensor,
    values: Tensor | None,
    response_mask: Tensor,
    group_ids: Tensor | None,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """``batch_mean``: ``A_i = R_i - mean_j R_j``, REINFORCE with the batch-mean baseline.

    ``values``, ``group_ids``, ``gamma`` and ``lam`` are unused.
    """
    seq_rewards = sequence_rewards(rewards, response_mask)
    advantages = _broadcast(seq_rewards - seq_rewards.mean(), response_mask)
    return advantages, _broadcast(seq_rewards, response_mask)


def group_statistics(values: Tensor, group_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-row sum, size and unbiased std of the row's group, each (B,).

    ``values``: (B,); ``group_ids``: (B,) long, any labels (they need not be 0..G-1 or sorted).
    A group of size 1 has std 0.
    """
    labels, group_index = torch.unique(group_ids, return_inverse=True)
    n_groups = labels.numel()
    sums = torch.zeros(n_groups, dtype=values.dtype, device=values.device)
    sums = sums.index_add(0, group_index, values)
    sizes = torch.bincount(group_index, minlength=n_groups).to(values.dtype)
    means = sums / sizes
    squared_errors = (values - means[group_index]) ** 2
    sum_squared = torch.zeros_like(sums).index_add(0, group_index, squared_errors)
    stds = torch.where(sizes > 1, (sum_squared / (sizes - 1).clamp(min=1)).sqrt(), 0.0)
    return sums[group_index], sizes[group_index], stds[group_index]


def estimate_group_norm(
    rewards: Tensor,
    values: Tensor | None,
    response_mask: Tensor,
    group_ids: Tensor | None,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """``group_norm``: ``A_i = (R_i - mean_g R) / (std_g R + 1e-6)`` over i's group g (GRPO).

    ``std`` is the unbiased sample std; a group of size 1 gets advantage 0. ``values``,
    ``gamma`` and ``lam`` are unused.
    """
    groups = _require(group_ids, "group_ids", "group_norm")
    seq_rewards = sequence_rewards(rewards, response_mask)
    sums, sizes, stds = group_statistics(seq_rewards, groups)
    normalised = (seq_rewards - sums / sizes) / (stds + GROUP_STD_EPS)
    return _broadcast(normalised, response_mask), _broadcast(seq_rewards, response_mask)


def estimate_rloo(
    rewards: Tensor,
    values: Tensor | None,
    response_mask: Tensor,
    group_ids: Tensor | None,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """``rloo``: ``A_i = R_i - (sum_{j in g, j != i} R_j) / (n_g - 1)`` (Kool et al. 2019).

    The baseline is the mean reward of the *other* rollouts of the same prompt, so it does not
    depend on the rollout it scores and the estimate stays unbiased. A group of size 1 has no
    other rollout and gets advantage 0. ``values``, ``gamma`` and ``lam`` are unused.
    """
    groups = _require(group_ids, "group_ids", "rloo")
    seq_rewards = sequence_rewards(rewards, response_mask)
    sums, sizes, _ = group_statistics(seq_rewards, groups)
    leave_one_out = (sums - seq_rewards) / (sizes - 1).clamp(min=1)
    advantages = torch.where(sizes > 1, seq_rewards - leave_one_out, 0.0)
    return _broadcast(advantages, response_mask), _broadcast(seq_rewards, response_mask)


def get_advantage_estimator(name: str) -> AdvantageEstimator:
    """The estimator registered as ``name`` in `reftlab.rl.registry`; a ValueError lists the
    known names otherwise."""
    return lookup(ADVANTAGE_ESTIMATORS, "advantage estimator", name).load()
