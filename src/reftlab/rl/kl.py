"""Per-token KL estimators and the KL-penalised reward of ReFT / InstructGPT.

The estimators follow J. Schulman, "Approximating KL Divergence" (2020). Each takes the
log-probabilities of the *sampled* tokens under the policy (``logprobs``) and under the frozen
reference model (``ref_logprobs``), both (B, T), and returns a (B, T) estimate whose expectation
under the policy's samples is (k1, k3) or approximates (k2) ``KL(policy || reference)``.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from reftlab.rl.masked import last_token_index, zero_masked
from reftlab.rl.registry import KL_ESTIMATORS, lookup


class KLEstimator(Protocol):
    """A per-token KL estimate from sampled-token log-probs, (B, T) -> (B, T)."""

    def __call__(self, logprobs: Tensor, ref_logprobs: Tensor) -> Tensor: ...


def kl_k1(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """``k1 = log p - log q``: unbiased, high variance, can be negative per token."""
    return logprobs - ref_logprobs


def kl_k2(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """``k2 = 0.5 * (log p - log q)^2``: biased, low variance, never negative."""
    return 0.5 * (logprobs - ref_logprobs) ** 2


def kl_k3(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """``k3 = (q/p) - log(q/p) - 1`` with ``log(q/p) = ref_logprobs - logprobs``.

    Unbiased and never negative (``e^x >= 1 + x``).
    """
    log_ratio = ref_logprobs - logprobs
    return torch.exp(log_ratio) - log_ratio - 1


def get_kl_estimator(name: str) -> KLEstimator:
    """The KL estimator registered as ``name`` in `reftlab.rl.registry`; a ValueError lists the
    known names otherwise."""
    return lookup(KL_ESTIMATORS, "KL estimator", name).load()


def kl_penalized_rewards(
    scores: Tensor,
    logprobs: Tensor,
    ref_logprobs: Tensor,
    response_mask: Tensor,
    kl_coef: float,
    estimator: str = "k1",
) -> tuple[Tensor, Tensor]:
    """Per-token rewards ``r_t = -kl_coef * kl_t + [t = last] * score`` (ReFT, InstructGPT).

    ``scores``: (B,) one terminal reward per response; ``logprobs``, ``ref_logprobs`` and
    ``response_mask``: (B, T). The score lands on the last real token of each response (a row
    with no real token receives none). Returns ``(rewards, kl)``, both (B, T) and 0 at masked
    positions; ``kl`` is the per-token estimate, for logging.
    """
    mask = response_mask.bool()
    kl = get_kl_estimator(estimator)(logprobs, ref_logprobs)
    kl = zero_masked(kl, mask)
    last = torch.nn.functional.one_hot(last_token_index(mask), num_classes=mask.shape[-1])
    terminal = last.to(kl.dtype) * (scores.to(kl.dtype) * mask.any(dim=-1)).unsqueeze(-1)
    return -kl_coef * kl + terminal, kl
