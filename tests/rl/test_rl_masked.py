"""Masked reductions: golden values and the rule that masked positions never matter."""

from __future__ import annotations

import math

import torch

from reftlab.rl.masked import (
    last_token_index,
    masked_mean,
    masked_moments,
    masked_sum,
    masked_var,
    moments_mean_var,
    whiten,
    whiten_with_moments,
)

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


# One step's advantages on two shards (two processes, or grad_accum=2): shard A holds one
# response of two tokens, shard B two responses of one and two tokens; 99 is padding.
SHARD_A = torch.tensor([[1.0, 2.0, 99.0]])
MASK_A = torch.tensor([[True, True, False]])
SHARD_B = torch.tensor([[4.0, 99.0], [3.0, 5.0]])
MASK_B = torch.tensor([[True, False], [True, True]])


def test_moments_are_count_sum_and_sum_of_squares_of_the_real_tokens():
    torch.testing.assert_close(
        masked_moments(SHARD_A, MASK_A), torch.tensor([2.0, 1.0 + 2.0, 1.0**2 + 2.0**2]).double()
    )
    torch.testing.assert_close(
        masked_moments(SHARD_B, MASK_B),
        torch.tensor([3.0, 4.0 + 3.0 + 5.0, 4.0**2 + 3.0**2 + 5.0**2]).double(),
    )


def test_summed_moments_give_the_whole_batchs_mean_and_unbiased_variance():
    moments = masked_moments(SHARD_A, MASK_A) + masked_moments(SHARD_B, MASK_B)
    mean, var = moments_mean_var(moments)
    # The five real tokens 1, 2, 4, 3, 5: mean 15 / 5 = 3, squared errors 4 + 1 + 1 + 0 + 4.
    assert mean.item() == (1.0 + 2.0 + 4.0 + 3.0 + 5.0) / 5
    assert math.isclose(var.item(), (4.0 + 1.0 + 1.0 + 0.0 + 4.0) / (5 - 1), rel_tol=1e-12)
    # sum x^2 - n * mean^2 is the same squared error: (1 + 4 + 16 + 9 + 25) - 5 * 3^2 = 10
    assert math.isclose(var.item(), (55.0 - 5 * 3.0**2) / 4, rel_tol=1e-12)


def test_whitening_two_shards_with_the_steps_moments_equals_whitening_the_whole_batch():
    moments = masked_moments(SHARD_A, MASK_A) + masked_moments(SHARD_B, MASK_B)
    # mean 3, unbiased variance 10 / 4 = 2.5 (above): A_t -> (A_t - 3) / sqrt(2.5 + 1e-8)
    std = math.sqrt(2.5 + 1e-8)
    white_a = whiten_with_moments(SHARD_A, MASK_A, moments)
    white_b = whiten_with_moments(SHARD_B, MASK_B, moments)
    torch.testing.assert_close(white_a, torch.tensor([[(1.0 - 3.0) / std, (2.0 - 3.0) / std, 0.0]]))
    expected_b = [[(4.0 - 3.0) / std, 0.0], [(3.0 - 3.0) / std, (5.0 - 3.0) / std]]
    torch.testing.assert_close(white_b, torch.tensor(expected_b))
    # The same as whitening the five tokens in one batch (padded to one width).
    whole = whiten(
        torch.tensor([[1.0, 2.0], [4.0, 0.0], [3.0, 5.0]]), torch.tensor([[1, 1], [1, 0], [1, 1]])
    )
    torch.testing.assert_close(whole, torch.cat([white_a[:, :2], white_b]))
    # A shard whitened alone would use its own mean: shard A's is 1.5, not 3.
    alone = whiten(SHARD_A, MASK_A)
    assert not torch.allclose(alone, white_a)
    torch.testing.assert_close(alone[0, :2].sum(), torch.tensor(0.0))


def test_whitening_with_moments_keeps_the_mean_when_asked():
    moments = masked_moments(SHARD_A, MASK_A) + masked_moments(SHARD_B, MASK_B)
    std = math.sqrt(2.5 + 1e-8)
    white = whiten_with_moments(SHARD_A, MASK_A, moments, shift_mean=False)
    torch.testing.assert_close(
        white, torch.tensor([[(1.0 - 3.0) / std + 3.0, (2.0 - 3.0) / std + 3.0, 0.0]])
    )


def test_last_token_index_finds_the_last_real_token_even_after_a_gap():
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
    assert last_token_index(mask).tolist() == [1, 2, 0, 3]
