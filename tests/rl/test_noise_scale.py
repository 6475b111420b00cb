"""The gradient noise scale: golden values on hand-made gradients, and its estimate of a known
noise scale from synthetic batches."""

from __future__ import annotations

import math

import pytest
import torch

from reftlab.rl.noise_scale import gradient_noise_scale


def test_golden_values_of_two_gradients():
    # g1 . g2 = 6 estimates |G|^2; the mean |g|^2 = 10 = |G|^2 + tr(Sigma) / b with b = 2.
    ns = gradient_noise_scale([torch.tensor([3.0, 1.0]), torch.tensor([1.0, 3.0])], batch_size=2)
    assert ns.cosine == pytest.approx(0.6)
    assert ns.signal_share == pytest.approx(0.6)
    assert ns.noise_scale == pytest.approx((10 - 6) * 2 / 6)
    assert ns.norm == pytest.approx(math.sqrt(10))
    assert (ns.batches, ns.batch_size) == (2, 2)


def test_identical_gradients_are_all_signal_and_orthogonal_ones_all_noise():
    same = gradient_noise_scale([torch.tensor([2.0, 0.0])] * 3, batch_size=16)
    assert same.signal_share == pytest.approx(1.0) and same.noise_scale == pytest.approx(0.0)
    apart = gradient_noise_scale([torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])], 16)
    assert apart.signal_share == 0.0 and apart.noise_scale == math.inf
    opposite = gradient_noise_scale([torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 0.0])], 16)
    assert opposite.cosine == pytest.approx(-1.0) and opposite.noise_scale == math.inf


@pytest.mark.parametrize("batch_size", [4, 64])
def test_recovers_a_known_noise_scale(batch_size):
    """Batches of b samples of G + noise with tr(Sigma) = 50 |G|^2: the estimate is 50 whatever
    the batch size (the signal share is what depends on b)."""
    dim, true_scale = 20_000, 50.0
    gen = torch.Generator().manual_seed(0)
    G = torch.randn(dim, generator=gen, dtype=torch.float64)
    G /= G.norm()
    per_coordinate = math.sqrt(true_scale / dim / batch_size)  # tr(Sigma)/b spread over dim
    grads = [
        G + per_coordinate * torch.randn(dim, generator=gen, dtype=torch.float64) for _ in range(12)
    ]
    ns = gradient_noise_scale(grads, batch_size)
    assert ns.noise_scale == pytest.approx(true_scale, rel=0.2)
    assert ns.signal_share == pytest.approx(1 / (1 + true_scale / batch_size), rel=0.2)


def test_refuses_what_it_cannot_compare():
    with pytest.raises(ValueError, match="at least 2"):
        gradient_noise_scale([torch.ones(3)], 8)
    with pytest.raises(ValueError, match="zero"):
        gradient_noise_scale([torch.ones(3), torch.zeros(3)], 8)
