"""Advantage estimators: golden values, GAE properties, and the registry."""

from __future__ import annotations

import math

import pytest
import torch

from reftlab.rl.advantages import (
    gae_loop,
    get_advantage_estimator,
)
from reftlab.rl.registry import ADVANTAGE_ESTIMATORS
from tests.rl.reference_impls import gae_vectorized

GAMMA, LAM = 0.9, 0.8
R0, R1, R2, R3 = 0.1, -0.2, 0.3, 1.0
V0, V1, V2, V3 = 0.5, 0.4, 0.6, 0.7


def run(name, rewards, response_mask, values=None, group_ids=None, gamma=1.0, lam=1.0):
    estimator = get_advantage_estimator(name)
    return estimator(rewards, values, response_mask, group_ids, gamma, lam)


def test_gae_on_four_steps():
    rewards = torch.tensor([[R0, R1, R2, R3]], dtype=torch.float64)
    values = torch.tensor([[V0, V1, V2, V3]], dtype=torch.float64)
    mask = torch.ones(1, 4, dtype=torch.bool)
    a3 = R3 - V3
    a2 = (R2 + GAMMA * V3 - V2) + GAMMA * LAM * a3
    a1 = (R1 + GAMMA * V2 - V1) + GAMMA * LAM * a2
    a0 = (R0 + GAMMA * V1 - V0) + GAMMA * LAM * a1
    advantages, returns = run("gae", rewards, mask, values, gamma=GAMMA, lam=LAM)
    torch.testing.assert_close(advantages, torch.tensor([[a0, a1, a2, a3]], dtype=torch.float64))
    expected_returns = torch.tensor([[a0 + V0, a1 + V1, a2 + V2, a3 + V3]], dtype=torch.float64)
    torch.testing.assert_close(returns, expected_returns)


def test_gae_stops_at_the_last_real_token_and_skips_a_gap():
    rewards = torch.tensor([[R0, R1, R2, R3], [R0, R1, R2, R3]], dtype=torch.float64)
    values = torch.tensor([[V0, V1, V2, V3], [V0, V1, V2, V3]], dtype=torch.float64)
    # row 0: three steps then padding; row 1: step 1 masked out, steps 0, 2, 3 remain
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 1, 1]], dtype=torch.bool)
    advantages, _ = gae_loop(rewards, values, mask, GAMMA, LAM)
    b2 = R2 - V2  # no bootstrap after the last real token
    b1 = (R1 + GAMMA * V2 - V1) + GAMMA * LAM * b2
    b0 = (R0 + GAMMA * V1 - V0) + GAMMA * LAM * b1
    c3 = R3 - V3
    c2 = (R2 + GAMMA * V3 - V2) + GAMMA * LAM * c3
    c0 = (R0 + GAMMA * V2 - V0) + GAMMA * LAM * c2  # step 0's successor is step 2
    expected = torch.tensor([[b0, b1, b2, 0.0], [c0, 0.0, c2, c3]], dtype=torch.float64)
    torch.testing.assert_close(advantages, expected)


def test_gae_with_gamma_lam_one_and_zero_values_is_the_reward_to_go():
    rewards = torch.tensor([[R0, R1, R2, R3], [1.0, 2.0, 3.0, 9.0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
    advantages, returns = run("gae", rewards, mask, torch.zeros(2, 4), gamma=1.0, lam=1.0)
    expected = torch.tensor(
        [
            [R0 + R1 + R2 + R3, R1 + R2 + R3, R2 + R3, R3],
            [1.0 + 2.0 + 3.0, 2.0 + 3.0, 3.0, 0.0],
        ]
    )
    torch.testing.assert_close(advantages, expected)
    torch.testing.assert_close(returns, expected)


def test_gae_with_lam_one_is_the_discounted_return_minus_the_value():
    gen = torch.Generator().manual_seed(3)
    rewards, values = torch.randn(3, 6, generator=gen), torch.randn(3, 6, generator=gen)
    mask = torch.ones(3, 6, dtype=torch.bool)
    advantages, returns = gae_loop(rewards, values, mask, gamma=GAMMA, lam=1.0)
    discounted = torch.zeros(3, 6)
    running = torch.zeros(3)
    for t in reversed(range(6)):
        running = rewards[:, t] + GAMMA * running
        discounted[:, t] = running
    torch.testing.assert_close(returns, discounted)
    torch.testing.assert_close(advantages, discounted - values)


def random_batch(seed: int, batch: int = 5, length: int = 9):
    gen = torch.Generator().manual_seed(seed)
    rewards = torch.randn(batch, length, generator=gen, dtype=torch.float64)
    values = torch.randn(batch, length, generator=gen, dtype=torch.float64)
    # ragged lengths (one row empty, one full) plus random holes inside the responses
    lengths = torch.randint(0, length + 1, (batch,), generator=gen)
    lengths[0], lengths[1] = 0, length
    mask = torch.arange(length) < lengths.unsqueeze(-1)
    mask &= torch.rand(batch, length, generator=gen) > 0.2
    group_ids = torch.randint(0, 3, (batch,), generator=gen)
    return rewards, values, mask, group_ids


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 1.0), (0.9, 0.8), (0.99, 0.95), (0.5, 0.0)])
def test_loop_and_vectorized_gae_agree(seed, gamma, lam):
    rewards, values, mask, _ = random_batch(seed)
    loop_advantages, loop_returns = gae_loop(rewards, values, mask, gamma, lam)
    vec_advantages, vec_returns = gae_vectorized(rewards, values, mask, gamma, lam)
    torch.testing.assert_close(loop_advantages, vec_advantages)
    torch.testing.assert_close(loop_returns, vec_returns)


@pytest.mark.parametrize("name", sorted(ADVANTAGE_ESTIMATORS))
@pytest.mark.parametrize("seed", range(3))
def test_masked_positions_change_nothing(name, seed):
    rewards, values, mask, group_ids = random_batch(seed)
    expected = run(name, rewards, mask, values, group_ids, gamma=0.9, lam=0.8)
    noise = torch.randn(
        rewards.shape, generator=torch.Generator().manual_seed(99), dtype=rewards.dtype
    )
    for junk in (noise * 100, torch.full_like(rewards, float("nan"))):
        got = run(
            name,
            torch.where(mask, rewards, junk),
            mask,
            torch.where(mask, values, junk),
            group_ids,
            gamma=0.9,
            lam=0.8,
        )
        torch.testing.assert_close(got, expected)
        assert (got[0][~mask] == 0).all() and (got[1][~mask] == 0).all()


def test_gae_vectorized_also_ignores_masked_nan():
    rewards, values, mask, _ = random_batch(7)
    poisoned = torch.where(mask, values, torch.tensor(float("nan"), dtype=values.dtype))
    torch.testing.assert_close(
        gae_vectorized(rewards, poisoned, mask, GAMMA, LAM),
        gae_loop(rewards, values, mask, GAMMA, LAM),
    )


# Six rollouts of three prompts; the sequence reward is the sum of each row's real tokens.
GROUP_IDS = torch.tensor([7, 3, 7, 7, 3, 9])
GROUP_REWARDS = torch.tensor(
    [
        [0.0, 0.0, 1.0],  # prompt 7: R = 1
        [0.5, 1.5, 4.0],  # prompt 3: R = 0.5 + 1.5 = 2, last token is padding
        [0.0, 0.0, 0.0],  # prompt 7: R = 0
        [0.0, 0.0, 0.0],  # prompt 7: R = 0
        [0.0, 0.0, 0.0],  # prompt 3: R = 0
        [5.0, 0.0, 0.0],  # prompt 9 alone: R = 5
    ]
)
GROUP_MASK = torch.tensor(
    [[1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 1], [1, 0, 0]], dtype=torch.bool
)


def per_sequence(advantages: torch.Tensor) -> torch.Tensor:
    """The advantage of each row, checking it is the same on every real token."""
    first = advantages[:, 0]
    assert torch.equal(advantages, torch.where(GROUP_MASK, first.unsqueeze(-1), 0.0))
    return first


def test_none_is_the_raw_sequence_reward():
    advantages, returns = run("none", GROUP_REWARDS, GROUP_MASK)
    torch.testing.assert_close(per_sequence(advantages), torch.tensor([1.0, 2.0, 0, 0, 0, 5.0]))
    torch.testing.assert_close(returns, advantages)


def test_batch_mean_subtracts_the_mean_over_the_batch():
    advantages, returns = run("batch_mean", GROUP_REWARDS, GROUP_MASK)
    mean = (1.0 + 2.0 + 0 + 0 + 0 + 5.0) / 6
    expected = torch.tensor([1.0 - mean, 2.0 - mean, -mean, -mean, -mean, 5.0 - mean])
    torch.testing.assert_close(per_sequence(advantages), expected)
    torch.testing.assert_close(per_sequence(returns), torch.tensor([1.0, 2.0, 0, 0, 0, 5.0]))


def test_group_norm_on_two_groups_and_a_singleton():
    advantages, _ = run("group_norm", GROUP_REWARDS, GROUP_MASK, group_ids=GROUP_IDS)
    eps = 1e-6
    # prompt 7: R = 1, 0, 0; mean 1/3; unbiased std sqrt(((2/3)^2 + 2 * (1/3)^2) / 2)
    std7 = math.sqrt(((2 / 3) ** 2 + 2 * (1 / 3) ** 2) / 2)
    # prompt 3: R = 2, 0; mean 1; unbiased std sqrt((1^2 + 1^2) / 1)
    std3 = math.sqrt(2.0)
    expected = torch.tensor(
        [
            (1 - 1 / 3) / (std7 + eps),
            (2 - 1) / (std3 + eps),
            (0 - 1 / 3) / (std7 + eps),
            (0 - 1 / 3) / (std7 + eps),
            (0 - 1) / (std3 + eps),
            0.0,  # a group of one has no spread to normalise by
        ]
    )
    torch.testing.assert_close(per_sequence(advantages), expected)


def test_rloo_subtracts_the_mean_of_the_other_rollouts():
    advantages, _ = run("rloo", GROUP_REWARDS, GROUP_MASK, group_ids=GROUP_IDS)
    expected = torch.tensor(
        [
            1 - (0 + 0) / 2,
            2 - 0 / 1,
            0 - (1 + 0) / 2,
            0 - (1 + 0) / 2,
            0 - 2 / 1,
            0.0,  # a group of one has no other rollout
        ]
    )
    torch.testing.assert_close(per_sequence(advantages), expected)


@pytest.mark.parametrize("seed", range(4))
def test_group_advantages_sum_to_zero_within_each_group(seed):
    gen = torch.Generator().manual_seed(seed)
    rewards = torch.randn(12, 4, generator=gen, dtype=torch.float64)
    mask = torch.ones(12, 4, dtype=torch.bool)
    group_ids = torch.arange(3).repeat_interleave(4)[torch.randperm(12, generator=gen)]
    for name in ("rloo", "group_norm"):
        advantages = run(name, rewards, mask, group_ids=group_ids)[0][:, 0]
        for group in range(3):
            assert abs(advantages[group_ids == group].sum().item()) < 1e-9, name
    normalised = run("group_norm", rewards, mask, group_ids=group_ids)[0][:, 0]
    for group in range(3):
        assert math.isclose(normalised[group_ids == group].std().item(), 1.0, rel_tol=1e-5)


def test_estimators_that_need_an_input_say_so():
    rewards, mask = torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="'gae' needs values"):
        run("gae", rewards, mask)
    for name in ("group_norm", "rloo"):
        with pytest.raises(ValueError, match=f"'{name}' needs group_ids"):
            run(name, rewards, mask)


def test_unknown_estimator_names_the_known_ones():
    with pytest.raises(ValueError, match=r"'grpo'.*batch_mean, gae, group_norm, none, rloo"):
        get_advantage_estimator("grpo")
