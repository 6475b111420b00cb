"""Reductions over the real tokens of a padded batch.

Every tensor here is ``(B, T)`` (or broadcastable to the mask) and ``mask`` is ``True`` (or 1)
at real tokens and ``False`` (or 0) at padding. Values at masked positions never reach a result,
even when they are ``nan`` or ``inf``, so callers may pad with anything.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Added to a variance before its square root so a constant input whitens to 0, not nan.
WHITEN_EPS = 1e-8


def zero_masked(x: Tensor, mask: Tensor) -> Tensor:
    """``x`` (B, T) with its masked positions set to 0, gradients included.

    ``torch.where`` rather than ``x * mask`` so that ``nan`` or ``inf`` padding cannot leak in
    (``inf * 0`` is ``nan``), and masked positions receive a zero gradient.
    """
    return torch.where(mask.bool(), x, torch.zeros_like(x))


def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of ``x`` over the positions where ``mask`` is true.

    ``x``: (B, T), ``mask``: (B, T). ``dim=None`` sums everything (a scalar); ``dim=-1`` gives
    one sum per sequence, (B,).
    """
    kept = zero_masked(x, mask)
    return kept.sum() if dim is None else kept.sum(dim=dim)


def count_tokens(mask: Tensor, dim: int | None = None) -> Tensor:
    """Number of real tokens in ``mask`` (B, T): a scalar for ``dim=None``, else per ``dim``."""
    real = mask.bool().to(torch.long)
    return real.sum() if dim is None else real.sum(dim=dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` over the real tokens: ``sum(x * mask) / sum(mask)``.

    ``x``: (B, T), ``mask``: (B, T). ``dim=None`` is the token-level mean over the whole batch
    (every real token weighs the same); ``dim=-1`` gives one mean per sequence, (B,). A slice
    with no real token has mean 0 rather than nan, so an empty response does not poison a loss.
    """
    total = masked_sum(x, mask, dim)
    count = count_tokens(mask, dim).clamp(min=1)
    return total / count.to(total.dtype)


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance of ``x`` over all real tokens of ``mask`` (both (B, T)); a scalar.

    ``var = sum(mask * (x - mean)^2) / (n - 1)`` with Bessel's correction when ``unbiased``
    (``/ n`` otherwise), ``n`` the number of real tokens. Fewer than two real tokens give 0
    under Bessel's correction, where the sample variance is undefined.
    """
    mean = masked_mean(x, mask)
    squared_error = masked_sum((x - mean) ** 2, mask)
    n = count_tokens(mask).to(squared_error.dtype)
    if unbiased:
        # torch.where rather than an `if` so that no host sync happens on an accelerator.
        return torch.where(n >= 2, squared_error / (n - 1).clamp(min=1), 0.0)
    return squared_error / n.clamp(min=1)


def masked_moments(x: Tensor, mask: Tensor) -> Tensor:
    """``[n, sum x, sum x^2]`` over the real tokens of ``mask``: a (3,) float64 tensor, detached.

    Moments add up: those of a batch split into shards (micro-batches, processes) are the sum of
    the shards' moments, so ``whiten_with_moments`` given the summed moments whitens every shard
    exactly as the whole batch would be whitened. float64, so that ``sum x^2 - n * mean^2`` loses
    no precision to cancellation. ``x``, ``mask``: (B, T).
    """
    kept = zero_masked(x.detach().to(torch.float64), mask)
    n = count_tokens(mask).to(torch.float64)
    return torch.stack([n, kept.sum(), (kept**2).sum()])


def moments_mean_var(moments: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and unbiased variance from ``masked_moments`` (or a sum of them); scalars.

    ``mean = S1 / n`` and ``var = (S2 - n * mean^2) / (n - 1)`` (Bessel's correction, as
    ``masked_var``); fewer than two values give variance 0.
    """
    n, total, total_squares = moments.unbind()
    mean = total / n.clamp(min=1)
    squared_error = (total_squares - n * mean**2).clamp(min=0)
    var = torch.where(n >= 2, squared_error / (n - 1).clamp(min=1), 0.0)
    return mean, var


def whiten_with_moments(
    x: Tensor, mask: Tensor, moments: Tensor, shift_mean: bool = True
) -> Tensor:
    """``(x - mean) / sqrt(var + 1e-8)`` over the real tokens of ``mask``, with the mean and
    variance of ``moments`` (``masked_moments`` of the whole batch, which may hold more than
    ``x``); ``x``, ``mask``: (B, T).

    With ``shift_mean=False`` the mean is added back, so only the scale changes (as PPO
    implementations do for rewards). Masked positions of the result are 0.
    """
    mean, var = (stat.to(x.dtype) for stat in moments_mean_var(moments))
    whitened = (x - mean) * torch.rsqrt(var + WHITEN_EPS)
    if not shift_mean:
        whitened = whitened + mean
    return zero_masked(whitened, mask)


def whiten(x: Tensor, mask: Tensor, shift_mean: bool = True) -> Tensor:
    """Normalise ``x`` (B, T) to unit variance over the real tokens of ``mask`` (B, T).

    ``(x - mean) / sqrt(var + 1e-8)``, mean and (unbiased) variance taken over the real tokens
    only: ``whiten_with_moments`` with ``x``'s own moments.
    """
    return whiten_with_moments(x, mask, masked_moments(x, mask), shift_mean)


def last_token_index(mask: Tensor) -> Tensor:
    """Index of the last real token of each row of ``mask`` (B, T); (B,) long.

    A row with no real token gets index 0; callers check ``mask.any(-1)`` where that matters.
    """
    length = mask.shape[-1]
    # argmax returns the first maximum, so searching the reversed mask finds the last real token.
    from_end = mask.bool().flip(-1).to(torch.long).argmax(dim=-1)
    return torch.where(mask.bool().any(dim=-1), length - 1 - from_end, torch.zeros_like(from_end))
