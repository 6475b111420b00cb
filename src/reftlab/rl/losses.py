"""Policy and value losses, and the diagnostics that tell whether an update is healthy.

Tensors are (B, T) over the response tokens; ``response_mask`` is true at real tokens. A
per-token loss becomes a scalar by ``aggregate_loss``:

- ``token_mean`` (default): the mean over every real token of the batch, so every token weighs
  the same and a long response weighs more than a short one (PPO in TRL).
- ``seq_mean``: the mean over each response's tokens, then over the responses, so every response
  weighs the same (the ReFT code's ``(loss * mask).sum(-1) / length`` then ``.mean()``, and the
  GRPO paper's ``1/G sum_i 1/|o_i| sum_t``).

A batch split into shards (micro-batches, processes) gets the whole batch's loss back when each
shard's aggregate is weighted by its share of ``aggregation_count``: its tokens for
``token_mean``, its non-empty responses for ``seq_mean``.

Policy losses sit in a registry keyed by the names the YAML uses (``method.policy_loss``), with
one signature::

    loss_fn(logprobs, old_logprobs, advantages, response_mask, clip_range, loss_agg)
        -> (loss, stats)
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from reftlab.rl.masked import count_tokens, masked_mean, masked_var, zero_masked
from reftlab.rl.registry import LOSS_AGGREGATIONS, POLICY_LOSSES, lookup


def aggregate_loss(losses: Tensor, response_mask: Tensor, loss_agg: str = "token_mean") -> Tensor:
    """Reduce per-token ``losses`` (B, T) to a scalar over the real tokens of ``response_mask``.

    ``token_mean``: ``sum_{b,t} m * l / sum_{b,t} m``. ``seq_mean``: ``mean_b (sum_t m * l /
    sum_t m)`` over the responses that have at least one real token.
    """
    if loss_agg == "token_mean":
        return masked_mean(losses, response_mask)
    if loss_agg == "seq_mean":
        per_sequence = masked_mean(losses, response_mask, dim=-1)
        nonempty = count_tokens(response_mask, dim=-1) > 0
        return masked_mean(per_sequence, nonempty)
    raise _unknown_aggregation(loss_agg)


def aggregation_count(response_mask: Tensor, loss_agg: str = "token_mean") -> Tensor:
    """What ``aggregate_loss`` divides by: the real tokens of ``response_mask`` (B, T) for
    ``token_mean``, the responses with at least one real token for ``seq_mean``; a scalar.

    Shards ``k`` of a batch with aggregates ``L_k`` and counts ``n_k`` give the whole batch's
    aggregate as ``sum_k L_k * n_k / sum_k n_k``.
    """
    if loss_agg == "token_mean":
        return count_tokens(response_mask)
    if loss_agg == "seq_mean":
        return (count_tokens(response_mask, dim=-1) > 0).sum()
    raise _unknown_aggregation(loss_agg)


def _unknown_aggregation(loss_agg: str) -> ValueError:
    known = ", ".join(LOSS_AGGREGATIONS)
    return ValueError(f"unknown loss aggregation {loss_agg!r}; known: {known}")


def approx_kl(logprobs: Tensor, old_logprobs: Tensor, response_mask: Tensor) -> Tensor:
    """Token mean of ``(ratio - 1) - log ratio``, ``ratio = exp(logprobs - old_logprobs)``.

    The k3 estimate of ``KL(old || new)`` from samples of the old policy: how far one update
    moved the policy. A detached scalar; inputs (B, T).
    """
    log_ratio = zero_masked((logprobs - old_logprobs).detach(), response_mask)
    return masked_mean(torch.expm1(log_ratio) - log_ratio, response_mask)


def truncated_importance_weights(
    logprobs: Tensor, sampling_logprobs: Tensor, response_mask: Tensor, cap: float
) -> Tensor:
    """Per-token weights ``min(exp(logprobs - sampling_logprobs), cap)`` (B, T), 0 where masked.

    Truncated importance sampling (Ionides 2008; as verl and TRL apply it to vLLM rollouts):
    tokens were drawn by the engine (``sampling_logprobs``), the update's old policy is the
    trainer's (``logprobs``), and the two differ by kernels and precision. Weighting each token's
    advantage by the ratio corrects the mismatch; the cap bounds the variance a rare
    large ratio would add. Detached: a weight, not a path for gradients.
    """
    ratio = torch.exp((logprobs - sampling_logprobs).detach())
    return zero_masked(ratio.clamp(max=cap), response_mask)


def ppo_policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    response_mask: Tensor,
    clip_range: float | None,
    loss_agg: str = "token_mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """The clipped surrogate of PPO (Schulman et al. 2017, eq. 7), negated to be minimised.

    ``ratio = exp(logprobs - old_logprobs)``; per token
    ``max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps))``, aggregated by ``loss_agg``.
    ``clip_range=None`` drops the clipped term: the plain importance-weighted policy gradient.
    All tensors (B, T). ``stats``: ``approx_kl`` (see ``approx_kl``) and ``clipfrac``, the
    fraction of real tokens whose clipped term was the larger one, i.e. whose gradient the clip
    removed; both detached scalars.
    """
    # Padding is zeroed before exp: a huge masked log-ratio would give inf * 0 = nan gradients.
    log_ratio = zero_masked(logprobs - old_logprobs, response_mask)
    advantages = zero_masked(advantages, response_mask)
    ratio = torch.exp(log_ratio)
    pg_loss1 = -advantages * ratio
    if clip_range is None:
        pg_losses = pg_loss1
        clipped = torch.zeros_like(response_mask, dtype=logprobs.dtype)
    else:
        pg_loss2 = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
        pg_losses = torch.maximum(pg_loss1, pg_loss2)
        clipped = (pg_loss2 > pg_loss1).to(logprobs.dtype)
    stats = {
        "approx_kl": approx_kl(logprobs, old_logprobs, response_mask),
        "clipfrac": masked_mean(clipped.detach(), response_mask),
    }
    return aggregate_loss(pg_losses, response_mask, loss_agg), stats


def policy_gradient_loss(
    logprobs: Tensor, advantages: Tensor, response_mask: Tensor, loss_agg: str = "token_mean"
) -> Tensor:
    """The REINFORCE loss ``-A * log pi(a_t | s_t)``, aggregated by ``loss_agg``; a scalar.

    Its gradient is ``-sum A * grad log pi`` divided by the aggregation's count (Williams 1992).
    ``advantages`` are treated as constants. Inputs (B, T).
    """
    advantages = zero_masked(advantages.detach(), response_mask)
    logprobs = zero_masked(logprobs, response_mask)
    return aggregate_loss(-advantages * logprobs, response_mask, loss_agg)


def pg_policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    response_mask: Tensor,
    clip_range: float | None,
    loss_agg: str = "token_mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """``pg``: ``policy_gradient_loss`` under the registry's signature.

    ``clip_range`` is unused (``clipfrac`` is 0); ``old_logprobs`` only feed ``approx_kl``.
    """
    loss = policy_gradient_loss(logprobs, advantages, response_mask, loss_agg)
    stats = {
        "approx_kl": approx_kl(logprobs, old_logprobs, response_mask),
        "clipfrac": torch.zeros((), dtype=logprobs.dtype, device=logprobs.device),
    }
    return loss, stats


class PolicyLoss(Protocol):
    """The one signature every registered policy loss has."""

    def __call__(
        self,
        logprobs: Tensor,
        old_logprobs: Tensor,
        advantages: Tensor,
        response_mask: Tensor,
        clip_range: float | None,
        loss_agg: str = "token_mean",
    ) -> tuple[Tensor, dict[str, Tensor]]: ...


def get_policy_loss(name: str) -> PolicyLoss:
    """The policy loss registered as ``name`` in `reftlab.rl.registry`; a ValueError lists the
    known names otherwise."""
    return lookup(POLICY_LOSSES, "policy loss", name).load()


def value_loss(
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    response_mask: Tensor,
    clip_range: float | None,
    loss_agg: str = "token_mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """The clipped value loss of PPO implementations (baselines, CleanRL, TRL).

    ``V_clip = V_old + clip(V - V_old, -eps, eps)``; per token
    ``0.5 * max((V - G)^2, (V_clip - G)^2)`` with ``G = returns``, aggregated by ``loss_agg``.
    ``clip_range=None`` gives the plain ``0.5 * (V - G)^2``. All tensors (B, T). ``stats``:
    ``clipfrac``, the fraction of real tokens where the clipped error was the larger; detached.
    """
    # Padding is zeroed first so that junk there cannot turn gradients into inf * 0 = nan.
    values = zero_masked(values, response_mask)
    old_values = zero_masked(old_values, response_mask)
    returns = zero_masked(returns, response_mask)
    v_loss_unclipped = (values - returns) ** 2
    if clip_range is None:
        v_losses = v_loss_unclipped
        clipped = torch.zeros_like(response_mask, dtype=values.dtype)
    else:
        values_clipped = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
        v_loss_clipped = (values_clipped - returns) ** 2
        v_losses = torch.maximum(v_loss_unclipped, v_loss_clipped)
        clipped = (v_loss_clipped > v_loss_unclipped).to(values.dtype)
    stats = {"clipfrac": masked_mean(clipped.detach(), response_mask)}
    return 0.5 * aggregate_loss(v_losses, response_mask, loss_agg), stats


def explained_variance(values: Tensor, returns: Tensor, response_mask: Tensor) -> Tensor:
    """``1 - Var[G - V] / Var[G]`` over the real tokens; a detached scalar. Inputs (B, T).

    1 is a perfect critic, 0 one no better than a constant, negative one worse than that; nan
    when the returns do not vary (as in CleanRL).
    """
    values, returns = values.detach(), returns.detach()
    var_returns = masked_var(returns, response_mask)
    var_residual = masked_var(returns - values, response_mask)
    return torch.where(var_returns > 0, 1 - var_residual / var_returns, torch.nan)
