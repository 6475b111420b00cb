"""Masked reductions: golden values and the rule that masked positions never matter."""

from __future__ import annotations

import math

import torch

from reftlab.rl.masked import last_token_index, masked_mean, masked_sum, masked_var, whiten

X = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
MASK = torch.tensor([[True, True, False], [True, False, False]])


def test_masked_sum_and_mean_over_the_batch_and_per_sequence():
    assert masked_sum(X, MASK).item() == 1.0 + 2.0 + 4.0
    assert math.isclose(masked_mean(X, MASK).item(), (1.0 + 2.0 + 4.0) / 3, rel_tol=1e-6)
    torch.testing.assert_close(masked_sum(X, MASK, dim=-1), torch.tensor([1.0 + 2.0, 4.0]))
    torch.testing.assert_close(masked_mean(X, MASK, dim=-1), torch.tensor([(1.0 + 2.0) / 2, 4.0]))


def test_masked_mean_accepts_a_float_mask_and_gives_zero_for_an_empty_row():
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(masked_mean(X, mask, dim=-1), torch.tensor([1.5, 0.0]))


def test_masked_var_is_the_unbiased_variance_of_the_real_tokens():
    mean = (1.0 + 2.0 + 4.0) / 3
    expected = ((1.0 - mean) ** 2 + (2.0 - mean) ** 2 + (4.0 - mean) ** 2) / (3 - 1)
    assert math.isclose(masked_var(X, MASK).item(), expected, rel_tol=1e-6)
    biased = ((1.0 - mean) ** 2 + (2.0 - mean) ** 2 + (4.0 - mean) ** 2) / 3
    assert math.isclose(masked_var(X, MASK, unbiased=False).item(), biased, rel_tol=1e-6)


def test_masked_var_of_a_single_token_is_zero():
    assert masked_var(X, torch.tensor([[True, False, False], [False, False, False]])).item() == 0


def test_masked_positions_never_reach_a_result_even_as_nan():
    poisoned = torch.where(MASK, X, torch.tensor(float("nan")))
    assert masked_sum(poisoned, MASK).item() == masked_sum(X, MASK).item()
    assert masked_mean(poisoned, MASK).item() == masked_mean(X, MASK).item()
    assert masked_var(poisoned, MASK).item() == masked_var(X, MASK).item()
    torch.testing.assert_close(whiten(poisoned, MASK), whiten(X, MASK))


def test_whiten_gives_zero_mean_unit_variance_on_real_tokens_and_zero_elsewhere():
    x = torch.randn(4, 7, generator=torch.Generator().manual_seed(0)) * 3 + 5
    mask = torch.rand(4, 7, generator=torch.Generator().manual_seed(1)) > 0.3
    white = whiten(x, mask)
    assert abs(masked_mean(white, mask).item()) < 1e-5
    assert math.isclose(masked_var(white, mask).item(), 1.0, rel_tol=1e-4)
    assert (white[~mask] == 0).all()


def test_whiten_without_shifting_keeps_the_mean():
    x = torch.tensor([[1.0, 3.0, 100.0]])
    mask = torch.tensor([[True, True, False]])
    # mean 2, unbiased variance ((1-2)^2 + (3-2)^2) / 1 = 2
    scale = 1 / math.sqrt(2 + 1e-8)
    expected = torch.tensor([[(1.0 - 2.0) * scale + 2.0, (3.0 - 2.0) * scale + 2.0, 0.0]])
    torch.testing.assert_close(whiten(x, mask, shift_mean=False), expected)


def test_last_token_index_finds_the_last_real_token_even_after_a_gap():
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
    assert last_token_index(mask).tolist() == [1, 2, 0, 3]
