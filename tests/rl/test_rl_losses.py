"""Policy and value losses: clipping at ratios e and 1/e, REINFORCE gradients, aggregation."""

from __future__ import annotations

import math

import pytest
import torch

from reftlab.rl.advantages import get_advantage_estimator
from reftlab.rl.losses import (
    aggregate_loss,
    aggregation_count,
    explained_variance,
    get_policy_loss,
    policy_gradient_loss,
    ppo_policy_loss,
    truncated_importance_weights,
    value_loss,
)
from reftlab.rl.registry import POLICY_LOSSES

E = math.e
# log ratios 1, 1, -1, -1: ratios e, e, 1/e, 1/e against advantages +2, -2, +2, -2
OLD_LOGPROBS = torch.tensor([[-2.0, -2.0, -2.0, -2.0]], dtype=torch.float64)
LOG_RATIOS = torch.tensor([[1.0, 1.0, -1.0, -1.0]], dtype=torch.float64)
ADVANTAGES = torch.tensor([[2.0, -2.0, 2.0, -2.0]], dtype=torch.float64)
FULL = torch.ones(1, 4, dtype=torch.bool)


def test_ppo_clip_at_ratios_e_and_one_over_e():
    logprobs = (OLD_LOGPROBS + LOG_RATIOS).requires_grad_()
    loss, stats = ppo_policy_loss(logprobs, OLD_LOGPROBS, ADVANTAGES, FULL, clip_range=0.2)
    per_token = [
        max(-2 * E, -2 * 1.2),  # ratio e, A > 0: clipped at 1.2 -> -2.4
        max(2 * E, 2 * 1.2),  # ratio e, A < 0: the unclipped 2e is larger
        max(-2 / E, -2 * 0.8),  # ratio 1/e, A > 0: the unclipped -2/e is larger
        max(2 / E, 2 * 0.8),  # ratio 1/e, A < 0: clipped at 0.8 -> 1.6
    ]
    assert per_token == [-2.4, 2 * E, -2 / E, 1.6]
    assert math.isclose(loss.item(), sum(per_token) / 4, rel_tol=1e-12)
    assert stats["clipfrac"].item() == 2 / 4
    approx_kl = ((E - 1 - 1) + (E - 1 - 1) + (1 / E - 1 + 1) + (1 / E - 1 + 1)) / 4
    assert math.isclose(stats["approx_kl"].item(), approx_kl, rel_tol=1e-12)
    # d(-A * ratio)/d logprob = -A * ratio where unclipped; a clipped token gets no gradient
    (grad,) = torch.autograd.grad(loss, logprobs)
    expected_grad = torch.tensor([[0.0, 2 * E / 4, -2 / E / 4, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(grad, expected_grad)


def test_ppo_without_clip_range_is_the_importance_weighted_policy_gradient():
    logprobs = (OLD_LOGPROBS + LOG_RATIOS).requires_grad_()
    loss, stats = ppo_policy_loss(logprobs, OLD_LOGPROBS, ADVANTAGES, FULL, clip_range=None)
    assert math.isclose(loss.item(), (-2 * E + 2 * E - 2 / E + 2 / E) / 4, abs_tol=1e-12)
    assert stats["clipfrac"].item() == 0
    (grad,) = torch.autograd.grad(loss, logprobs)
    expected_grad = torch.tensor([[-2 * E, 2 * E, -2 / E, 2 / E]], dtype=torch.float64) / 4
    torch.testing.assert_close(grad, expected_grad)


def test_aggregation_by_token_and_by_sequence():
    losses = torch.tensor([[1.0, 2.0, 50.0], [4.0, 50.0, 50.0], [50.0, 50.0, 50.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=torch.bool)
    assert math.isclose(aggregate_loss(losses, mask).item(), (1.0 + 2.0 + 4.0) / 3, rel_tol=1e-6)
    # the empty third response is left out of the mean over responses
    seq_mean = aggregate_loss(losses, mask, "seq_mean").item()
    assert math.isclose(seq_mean, ((1.0 + 2.0) / 2 + 4.0 / 1) / 2, rel_tol=1e-6)
    with pytest.raises(ValueError, match=r"'sum'.*token_mean, seq_mean"):
        aggregate_loss(losses, mask, "sum")


# A tiny batch: two responses over a three-word vocabulary; the second has one padding token.
LOGITS = torch.tensor(
    [
        [[0.1, 0.2, -0.3], [1.0, 0.0, 0.5], [-1.0, 2.0, 0.0]],
        [[0.3, -0.1, 0.0], [0.0, 0.0, 0.0], [0.7, 0.7, -2.0]],
    ],
    dtype=torch.float64,
)
TOKENS = torch.tensor([[2, 0, 1], [1, 1, 0]])
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
SCORES = (1.0, -2.0)


def hand_reinforce_gradient(weights: list[list[float]]) -> torch.Tensor:
    """``-sum_t w_t * grad log softmax(z_t)[y_t]``, with ``grad = onehot(y_t) - softmax(z_t)``."""
    grad = torch.zeros_like(LOGITS)
    for b in range(2):
        for t in range(3):
            if MASK[b, t]:
                exp = [math.exp(z) for z in LOGITS[b, t].tolist()]
                softmax = torch.tensor([e / sum(exp) for e in exp], dtype=torch.float64)
                onehot = torch.zeros(3, dtype=torch.float64)
                onehot[TOKENS[b, t]] = 1.0
                grad[b, t] = -weights[b][t] * (onehot - softmax)
    return grad


def test_aggregation_counts_tokens_or_non_empty_responses():
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=torch.bool)
    assert aggregation_count(mask, "token_mean").item() == 2 + 1
    assert aggregation_count(mask, "seq_mean").item() == 2  # the empty response is not counted
    with pytest.raises(ValueError, match=r"'sum'.*token_mean, seq_mean"):
        aggregation_count(mask, "sum")


@pytest.mark.parametrize("loss_agg", ["token_mean", "seq_mean"])
def test_shards_weighted_by_their_counts_give_the_whole_batchs_aggregate(loss_agg):
    losses = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]])
    whole = aggregate_loss(losses, mask, loss_agg)
    shards = [slice(0, 2), slice(2, 5)]
    counts = [aggregation_count(mask[part], loss_agg) for part in shards]
    parts = [aggregate_loss(losses[part], mask[part], loss_agg) for part in shards]
    total = sum(counts)
    combined = sum(p * n / total for p, n in zip(parts, counts, strict=True))
    torch.testing.assert_close(combined, whole)


# Two responses of 3 and 1 real tokens (padding holds junk): log ratios 1, -1, 0 | 1.
RAGGED_MASK = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=torch.bool)
RAGGED_OLD = torch.full((2, 3), -2.0, dtype=torch.float64)
RAGGED_LOG_RATIOS = torch.tensor([[1.0, -1.0, 0.0], [1.0, 50.0, 50.0]], dtype=torch.float64)
RAGGED_ADVANTAGES = torch.tensor([[2.0, 2.0, -1.0], [-2.0, 50.0, 50.0]], dtype=torch.float64)


def test_ppo_clip_averaged_per_response_then_over_responses():
    logprobs = (RAGGED_OLD + RAGGED_LOG_RATIOS).requires_grad_()
    loss, _ = ppo_policy_loss(
        logprobs, RAGGED_OLD, RAGGED_ADVANTAGES, RAGGED_MASK, clip_range=0.2, loss_agg="seq_mean"
    )
    row0 = [
        max(-2 * E, -2 * 1.2),  # ratio e, A > 0: clipped at 1.2 -> -2.4
        max(-2 / E, -2 * 0.8),  # ratio 1/e, A > 0: the unclipped -2/e is larger
        max(1.0 * 1, 1.0 * 1),  # ratio 1, A = -1: 1
    ]
    row1 = [max(2 * E, 2 * 1.2)]  # ratio e, A < 0: the unclipped 2e is larger
    assert row0 == [-2.4, -2 / E, 1.0] and row1 == [2 * E]
    # Each response's token sum over its length, then the mean over the two responses.
    expected = (sum(row0) / 3 + sum(row1) / 1) / 2
    assert math.isclose(loss.item(), expected, rel_tol=1e-12)
    token_mean = (sum(row0) + sum(row1)) / 4  # what seq_mean must not be
    assert not math.isclose(expected, token_mean, rel_tol=1e-3)
    # d(-A * ratio)/d logprob = -A * ratio unclipped, times the token's weight 1 / (2 * length).
    (grad,) = torch.autograd.grad(loss, logprobs)
    expected_grad = [[0.0, -2 / E / (2 * 3), 1.0 / (2 * 3)], [2 * E / (2 * 1), 0.0, 0.0]]
    torch.testing.assert_close(grad, torch.tensor(expected_grad, dtype=torch.float64))


def test_value_loss_averaged_per_response_then_over_responses():
    values = torch.tensor([[1.0, 0.0, 0.5], [2.0, 9.0, 9.0]], dtype=torch.float64)
    values.requires_grad_()
    old_values = torch.tensor([[0.5, 0.0, 0.5], [1.0, 9.0, 9.0]], dtype=torch.float64)
    returns = torch.tensor([[0.0, 1.0, 0.5], [3.0, 9.0, 9.0]], dtype=torch.float64)
    loss, _ = value_loss(values, old_values, returns, RAGGED_MASK, 0.2, loss_agg="seq_mean")
    row0 = [
        max((1.0 - 0.0) ** 2, (0.5 + 0.2 - 0.0) ** 2),  # V moved 0.5, clipped to 0.2: 1 vs 0.49
        max((0.0 - 1.0) ** 2, (0.0 + 0.0 - 1.0) ** 2),  # V did not move: 1
        (0.5 - 0.5) ** 2,  # no error
    ]
    row1 = [max((2.0 - 3.0) ** 2, (1.0 + 0.2 - 3.0) ** 2)]  # moved 1, clipped: 1 vs 3.24
    expected = 0.5 * (sum(row0) / 3 + sum(row1) / 1) / 2
    assert math.isclose(loss.item(), expected, rel_tol=1e-12)
    token_mean = 0.5 * (sum(row0) + sum(row1)) / 4
    assert not math.isclose(expected, token_mean, rel_tol=1e-3)
    # d 0.5 (V - G)^2 / dV = V - G, weighted 1 / (2 * length); row 1's clipped error is the
    # larger and does not depend on V, so it gets no gradient.
    (grad,) = torch.autograd.grad(loss, values)
    expected_grad = [[(1.0 - 0.0) / (2 * 3), (0.0 - 1.0) / (2 * 3), 0.0], [0.0, 0.0, 0.0]]
    torch.testing.assert_close(grad, torch.tensor(expected_grad, dtype=torch.float64))


@pytest.mark.parametrize("loss_agg", ["token_mean", "seq_mean"])
def test_none_advantage_and_pg_loss_give_the_reinforce_gradient(loss_agg):
    logits = LOGITS.clone().requires_grad_()
    logprobs = torch.log_softmax(logits, dim=-1).gather(-1, TOKENS.unsqueeze(-1)).squeeze(-1)
    # the score sits on each response's last real token, as kl_penalized_rewards puts it
    rewards = torch.tensor([[0.0, 0.0, SCORES[0]], [0.0, SCORES[1], 0.0]], dtype=torch.float64)
    advantages, _ = get_advantage_estimator("none")(rewards, None, MASK, None, 1.0, 1.0)
    loss, _ = get_policy_loss("pg")(logprobs, logprobs.detach(), advantages, MASK, None, loss_agg)
    (grad,) = torch.autograd.grad(loss, logits)
    if loss_agg == "token_mean":  # every one of the 3 + 2 real tokens weighs 1/5
        weights = [[SCORES[0] / 5] * 3, [SCORES[1] / 5] * 3]
    else:  # each response weighs 1/2, spread over its own 3 or 2 tokens
        weights = [[SCORES[0] / 2 / 3] * 3, [SCORES[1] / 2 / 2] * 3]
    torch.testing.assert_close(grad, hand_reinforce_gradient(weights))


def test_ppo_clip_on_policy_has_the_policy_gradient():
    gen = torch.Generator().manual_seed(0)
    logprobs = torch.randn(3, 5, generator=gen, dtype=torch.float64).requires_grad_()
    advantages = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    mask = torch.rand(3, 5, generator=gen) > 0.3
    ppo, stats = ppo_policy_loss(logprobs, logprobs.detach(), advantages, mask, 0.2)
    pg = policy_gradient_loss(logprobs, advantages, mask)
    torch.testing.assert_close(
        torch.autograd.grad(ppo, logprobs)[0], torch.autograd.grad(pg, logprobs)[0]
    )
    assert stats["approx_kl"].item() == 0 and stats["clipfrac"].item() == 0


@pytest.mark.parametrize("name", sorted(POLICY_LOSSES))
@pytest.mark.parametrize("loss_agg", ["token_mean", "seq_mean"])
def test_masked_positions_change_neither_policy_loss_nor_gradient(name, loss_agg):
    gen = torch.Generator().manual_seed(1)
    logprobs = -torch.rand(4, 6, generator=gen, dtype=torch.float64)
    old_logprobs = logprobs + 0.3 * torch.randn(4, 6, generator=gen, dtype=torch.float64)
    advantages = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    mask = torch.rand(4, 6, generator=gen) > 0.4
    junk = torch.full_like(logprobs, float("inf"))

    def loss_and_grad(lp, old, adv):
        lp = lp.clone().requires_grad_()
        loss, stats = get_policy_loss(name)(lp, old, adv, mask, 0.2, loss_agg)
        return loss, stats, torch.autograd.grad(loss, lp)[0]

    clean = loss_and_grad(logprobs, old_logprobs, advantages)
    dirty = loss_and_grad(
        torch.where(mask, logprobs, junk),
        torch.where(mask, old_logprobs, -junk),
        torch.where(mask, advantages, junk),
    )
    torch.testing.assert_close(dirty[0], clean[0])
    torch.testing.assert_close(dirty[1], clean[1])
    torch.testing.assert_close(dirty[2], clean[2])
    assert (clean[2][~mask] == 0).all()


def test_value_loss_clips_like_ppo():
    values = torch.tensor([[1.0, 1.0, 0.1]], dtype=torch.float64)
    old_values = torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64)
    returns = torch.tensor([[2.0, 0.0, 1.0]], dtype=torch.float64)
    mask = torch.ones(1, 3, dtype=torch.bool)
    loss, stats = value_loss(values, old_values, returns, mask, clip_range=0.2)
    per_token = [
        max((1.0 - 2.0) ** 2, (0.5 + 0.2 - 2.0) ** 2),  # clipped error 1.69 is larger
        max((1.0 - 0.0) ** 2, (0.5 + 0.2 - 0.0) ** 2),  # unclipped error 1 is larger
        max((0.1 - 1.0) ** 2, (0.0 + 0.1 - 1.0) ** 2),  # inside the clip range: equal
    ]
    assert math.isclose(loss.item(), 0.5 * sum(per_token) / 3, rel_tol=1e-12)
    assert math.isclose(stats["clipfrac"].item(), 1 / 3, rel_tol=1e-12)
    unclipped, _ = value_loss(values, old_values, returns, mask, clip_range=None)
    assert math.isclose(unclipped.item(), 0.5 * (1.0 + 1.0 + 0.81) / 3, rel_tol=1e-12)


def test_masked_positions_change_neither_value_loss_nor_gradient():
    gen = torch.Generator().manual_seed(2)
    values, old_values, returns = torch.randn(3, 3, 5, generator=gen, dtype=torch.float64)
    mask = torch.rand(3, 5, generator=gen) > 0.4
    inf = torch.tensor(float("inf"), dtype=torch.float64)

    def loss_and_grad(v, old, g):
        v = v.clone().requires_grad_()
        loss, _ = value_loss(v, old, g, mask, clip_range=0.2)
        return loss, torch.autograd.grad(loss, v)[0]

    clean = loss_and_grad(values, old_values, returns)
    dirty = loss_and_grad(
        torch.where(mask, values, inf),
        torch.where(mask, old_values, -inf),
        torch.where(mask, returns, inf),
    )
    torch.testing.assert_close(dirty, clean)
    assert (clean[1][~mask] == 0).all()


def test_explained_variance():
    returns = torch.tensor([[1.0, 2.0, 3.0, 99.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0]], dtype=torch.bool)
    # residuals 0, 0, 1: unbiased variance ((1/3)^2 * 2 + (2/3)^2) / 2 = 1/3; Var[G] = 1
    values = torch.tensor([[1.0, 2.0, 2.0, -5.0]], dtype=torch.float64)
    assert math.isclose(explained_variance(values, returns, mask).item(), 1 - (1 / 3) / 1)
    assert explained_variance(returns, returns, mask).item() == 1.0
    assert explained_variance(torch.zeros_like(returns), returns, mask).item() == 0.0
    assert math.isnan(explained_variance(values, torch.ones_like(returns), mask).item())


def test_unknown_policy_loss_names_the_known_ones():
    with pytest.raises(ValueError, match=r"'grpo'.*pg, ppo_clip"):
        get_policy_loss("grpo")


def test_truncated_importance_weights_golden():
    """Trainer log-probs over engine log-probs: ratios e^0.5, e^-1, e^2 (capped at 2), masked 0."""
    trainer = torch.tensor([[-1.0, -2.0, -0.5, -3.0]], dtype=torch.float64)
    engine = torch.tensor([[-1.5, -1.0, -2.5, -0.1]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0]], dtype=torch.bool)
    weights = truncated_importance_weights(trainer.requires_grad_(), engine, mask, cap=2.0)
    expected = torch.tensor([[math.exp(0.5), math.exp(-1.0), 2.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(weights, expected)
    assert not weights.requires_grad  # a weight, never a path for gradients
