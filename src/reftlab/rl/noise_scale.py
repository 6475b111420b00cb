"""How much of a training step's gradient is signal, from a few independent batches.

Each batch of ``b`` samples gives a gradient ``g_i = G + e_i``, where ``G`` is the true
gradient and the noise ``e_i`` has ``E|e_i|^2 = tr(Sigma) / b``. Over ``K`` independent batches:

    mean over pairs i != j of g_i . g_j   estimates   |G|^2
    mean over i of |g_i|^2                estimates   |G|^2 + tr(Sigma) / b

so ``signal_share = |G|^2 / E|g|^2`` is the part of a step's squared gradient that is signal,
and ``noise_scale = tr(Sigma) / |G|^2`` is the batch at which signal and noise are equal: the
"simple noise scale" of McCandlish et al. (2018), "An Empirical Model of Large-Batch Training".
A step of ``b`` samples is mostly noise while ``b`` is well below it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class NoiseScale:
    """What `gradient_noise_scale` reads from K gradients of `batch_size` samples each."""

    batch_size: int
    batches: int
    # Mean norm of one batch's gradient.
    norm: float
    # Mean, min and max cosine between two batches' gradients.
    cosine: float
    cosine_min: float
    cosine_max: float
    # |G|^2 / E|g|^2: the share of one step's squared gradient that is signal.
    signal_share: float
    # tr(Sigma) / |G|^2, in samples: infinite when no signal is measurable (|G|^2 <= 0).
    noise_scale: float


def gradient_noise_scale(grads: Sequence[Tensor], batch_size: int) -> NoiseScale:
    """The noise scale of K >= 2 flat gradients, each the mean gradient of `batch_size`
    independent samples (see the module docstring). Computed in float64."""
    if len(grads) < 2:
        raise ValueError(f"need at least 2 independent batches' gradients, got {len(grads)}")
    g = [x.detach().reshape(-1).to(torch.float64) for x in grads]
    squares = [float(x @ x) for x in g]
    if min(squares) == 0.0:
        raise ValueError("a batch's gradient is zero: nothing to compare")
    pairs = list(itertools.combinations(range(len(g)), 2))
    dots = [float(g[i] @ g[j]) for i, j in pairs]
    cosines = [d / (squares[i] * squares[j]) ** 0.5 for d, (i, j) in zip(dots, pairs, strict=True)]
    signal = sum(dots) / len(dots)  # |G|^2
    total = sum(squares) / len(squares)  # |G|^2 + tr(Sigma) / b
    noise = max(total - signal, 0.0) * batch_size  # tr(Sigma)
    return NoiseScale(
        batch_size=batch_size,
        batches=len(g),
        norm=sum(s**0.5 for s in squares) / len(squares),
        cosine=sum(cosines) / len(cosines),
        cosine_min=min(cosines),
        cosine_max=max(cosines),
        signal_share=signal / total,
        noise_scale=noise / signal if signal > 0 else float("inf"),
    )
