"""Golden tests of one RL step's experience and minibatch loss (`reftlab.stages.rl`).

A tiny GPT-2 policy and a *different* tiny GPT-2 as the frozen reference score one fixed batch
of two rollouts (four response tokens, and three then padding; scores 1.0 and 0.1). Every
expected value is computed here from the models' raw logits (`tiny_rl.token_logprobs`) with the
arithmetic written out, so a flipped sign, a swapped argument, a dropped coefficient or a
skipped temperature in the engine changes a checked number.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from accelerate import Accelerator
from torch.testing import assert_close

from reftlab.models.value import PolicyWithValue
from reftlab.stages.rl import ShardWork, make_experience, minibatch_loss, whiten_step_advantages
from reftlab.stages.rollout import compute_logprobs
from tests.stages.tiny_rl import (
    SCORES,
    rollout_batch,
    settings,
    tiny_lm,
    tiny_policy_with_value,
    token_logprobs,
    token_values,
)

KL_COEF = 0.3
GAMMA, LAM = 0.9, 0.8
CLIP, VALUE_CLIP = 0.2, 0.1
VF_COEF = 0.5
TEMPERATURE = 0.7
ROWS = torch.tensor([1, 0])  # both rollouts, in an order that a misaligned index would notice
REAL = 7  # real response tokens in the batch: 4 + 3
# Padding positions get junk wherever a test writes a tensor by hand: it must not count.
JUNK = 100.0

# The per-token KL estimators of Schulman's "Approximating KL Divergence", by name.
ESTIMATORS = {
    "k1": lambda lp, ref_lp: lp - ref_lp,
    "k2": lambda lp, ref_lp: 0.5 * (lp - ref_lp) ** 2,
    "k3": lambda lp, ref_lp: torch.exp(ref_lp - lp) - (ref_lp - lp) - 1,
}


@pytest.fixture()
def batch():
    return rollout_batch()


@pytest.fixture()
def policy():
    return tiny_lm(seed=0)


@pytest.fixture()
def reference():
    return tiny_lm(seed=1)


@pytest.fixture(scope="module")
def accelerator():
    return Accelerator(cpu=True)


def assert_scalar(got, want) -> None:
    """A float32 result against a float64 hand computation."""
    assert math.isclose(float(got), float(want), rel_tol=1e-5, abs_tol=1e-6), (got, want)


def real_mean(x: torch.Tensor, batch) -> torch.Tensor:
    """The mean of x over the batch's real response tokens, by boolean indexing."""
    return x[batch.response_mask.bool()].mean()


def logprobs_of(policy, reference, batch, temperature=1.0):
    """The policy's and the reference's log-probs of the batch (detached), checked to differ
    enough on every real token that a swapped or sign-flipped KL changes the results."""
    with torch.no_grad():
        lp = token_logprobs(policy, batch, temperature)
        ref_lp = token_logprobs(reference, batch, temperature)
    assert (lp - ref_lp)[batch.response_mask.bool()].abs().min() > 0.05
    return lp, ref_lp


# --- the KL penalty -----------------------------------------------------------------------


def test_kl_in_the_reward_is_minus_kl_coef_times_logprob_minus_ref_logprob(batch, reference):
    # A fresh value head predicts 0, and gamma = lam = 1: each advantage is the reward to go,
    # so the advantages show every per-token reward.
    policy = PolicyWithValue(tiny_lm(seed=0))
    s = settings(advantage="gae", gamma=1.0, lam=1.0, kl_coef=KL_COEF, kl_penalty="reward")
    exp = make_experience(policy, reference, batch, SCORES, s)

    lp, ref_lp = logprobs_of(policy.policy, reference, batch)
    assert_close(exp.old_logprobs, lp)
    assert_close(exp.ref_logprobs, ref_lp)
    assert_close(exp.kl, lp - ref_lp)  # k1, 0 on padding
    r = (-KL_COEF * (lp - ref_lp)).tolist()
    r[0][3] += 1.0  # the score lands on the last real token
    r[1][2] += 0.1
    expected = torch.tensor(
        [
            [
                r[0][0] + r[0][1] + r[0][2] + r[0][3],
                r[0][1] + r[0][2] + r[0][3],
                r[0][2] + r[0][3],
                r[0][3],
            ],
            [r[1][0] + r[1][1] + r[1][2], r[1][1] + r[1][2], r[1][2], 0.0],
        ]
    )
    assert_close(exp.advantages, expected)
    assert_close(exp.returns, expected)  # returns = advantages + V, V = 0


def test_kl_in_the_loss_leaves_the_reward_alone_and_adds_kl_coef_times_its_mean(
    batch, policy, reference, accelerator
):
    s = settings(kl_coef=KL_COEF, kl_penalty="loss", kl_estimator="k1")
    exp = make_experience(policy, reference, batch, SCORES, s)
    lp, ref_lp = logprobs_of(policy, reference, batch)
    # advantage=none: A = R = the score alone, on every real token.
    assert_close(exp.advantages, torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.1, 0.1, 0.1, 0.0]]))
    assert_close(exp.kl, lp - ref_lp)  # still logged

    loss, stats = minibatch_loss(policy, exp, ROWS, s, accelerator)
    # Nothing changed since the experience: ratio 1, the surrogate is -mean(A).
    policy_loss = -(4 * 1.0 + 3 * 0.1) / REAL
    kl_mean = real_mean(lp - ref_lp, batch).item()
    assert_scalar(loss.item(), policy_loss + KL_COEF * kl_mean)
    assert_scalar(stats["policy_loss"], policy_loss)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
@pytest.mark.parametrize("penalty", ["reward", "loss"])
def test_the_kl_estimator_is_the_one_named(name, penalty, batch, policy, reference, accelerator):
    s = settings(kl_coef=KL_COEF, kl_estimator=name, kl_penalty=penalty)
    exp = make_experience(policy, reference, batch, SCORES, s)
    lp, ref_lp = logprobs_of(policy, reference, batch)
    kl = ESTIMATORS[name](lp, ref_lp) * batch.response_mask
    assert_close(exp.kl, kl)
    loss, _ = minibatch_loss(policy, exp, ROWS, s, accelerator)
    if penalty == "reward":
        # advantage=none: A = R = score - kl_coef * sum_t kl_t; ratio 1, so loss = -mean(A).
        a0 = 1.0 - KL_COEF * kl[0].sum().item()
        a1 = 0.1 - KL_COEF * kl[1].sum().item()
        assert_close(exp.advantages, torch.tensor([[a0, a0, a0, a0], [a1, a1, a1, 0.0]]))
        assert_scalar(loss.item(), -(4 * a0 + 3 * a1) / REAL)
    else:
        expected = -(4 * 1.0 + 3 * 0.1) / REAL + KL_COEF * real_mean(kl, batch).item()
        assert_scalar(loss.item(), expected)


def test_a_reference_without_kl_coef_is_not_used(batch, policy, reference):
    exp = make_experience(policy, reference, batch, SCORES, settings(ppo_epochs=2))
    assert exp.ref_logprobs is None
    assert_close(exp.kl, torch.zeros(2, 4))
    assert_close(exp.advantages, torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.1, 0.1, 0.1, 0.0]]))


def test_a_kl_coef_without_a_reference_is_an_error_not_a_silent_no_op(batch, policy):
    with pytest.raises(ValueError, match="needs a reference model"):
        make_experience(policy, None, batch, SCORES, settings(kl_coef=0.1, ppo_epochs=2))


# --- advantages ---------------------------------------------------------------------------


def test_gae_uses_the_value_heads_old_values(batch, reference):
    policy = tiny_policy_with_value(seed=0)
    s = settings(advantage="gae", gamma=GAMMA, lam=LAM, kl_coef=KL_COEF, kl_penalty="reward")
    exp = make_experience(policy, reference, batch, SCORES, s)

    lp, ref_lp = logprobs_of(policy.policy, reference, batch)
    with torch.no_grad():
        values = token_values(policy, batch)
    assert values[batch.response_mask.bool()].abs().min() > 0.05  # a critic that says something
    assert_close(exp.old_values, values)
    assert_close(exp.old_logprobs, lp)
    r = (-KL_COEF * (lp - ref_lp)).tolist()
    r[0][3] += 1.0
    r[1][2] += 0.1
    v = values.tolist()
    # Row 0, four steps; after the last token V = 0 (the episode ends with the response).
    a03 = r[0][3] - v[0][3]
    a02 = r[0][2] + GAMMA * v[0][3] - v[0][2] + GAMMA * LAM * a03
    a01 = r[0][1] + GAMMA * v[0][2] - v[0][1] + GAMMA * LAM * a02
    a00 = r[0][0] + GAMMA * v[0][1] - v[0][0] + GAMMA * LAM * a01
    # Row 1, three steps, then padding.
    a12 = r[1][2] - v[1][2]
    a11 = r[1][1] + GAMMA * v[1][2] - v[1][1] + GAMMA * LAM * a12
    a10 = r[1][0] + GAMMA * v[1][1] - v[1][0] + GAMMA * LAM * a11
    assert_close(exp.advantages, torch.tensor([[a00, a01, a02, a03], [a10, a11, a12, 0.0]]))
    returns = [[a00 + v[0][0], a01 + v[0][1], a02 + v[0][2], a03 + v[0][3]]]
    returns += [[a10 + v[1][0], a11 + v[1][1], a12 + v[1][2], 0.0]]
    assert_close(exp.returns, torch.tensor(returns))


def test_whitened_advantages_have_zero_mean_and_unit_variance_over_real_tokens(batch, policy):
    exp = make_experience(policy, None, batch, SCORES, settings(whiten_advantages=True))
    assert_close(exp.advantages, torch.tensor([[1.0] * 4, [0.1] * 3 + [0.0]]))  # raw: A = R
    (work,) = whiten_step_advantages([ShardWork(exp, [], [], 1.0, torch.Generator())])
    exp = work.exp
    # A = R: 1.0 on four tokens, 0.1 on three; mean 4.3 / 7, unbiased variance over 7 tokens.
    mean = (4 * 1.0 + 3 * 0.1) / 7
    std = math.sqrt((4 * (1.0 - mean) ** 2 + 3 * (0.1 - mean) ** 2) / 6)
    high, low = (1.0 - mean) / std, (0.1 - mean) / std
    assert_close(exp.advantages, torch.tensor([[high] * 4, [low] * 3 + [0.0]]))


# --- old log-probs: reused only when exact -------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "single"),
    [
        ({}, True),  # one epoch, one minibatch of both rollouts, no critic, no KL
        ({"mini_batch_size": 3}, True),  # a minibatch larger than the step is still the step
        ({"ppo_epochs": 2}, False),
        ({"mini_batch_size": 1}, False),
        ({"rollouts_per_query": 2}, False),  # 4 rollouts, minibatches of 2
        ({"advantage": "gae"}, False),
        ({"kl_coef": 0.01}, False),
    ],
)
def test_single_on_policy_update_only_when_nothing_needs_the_old_logprobs(overrides, single):
    assert settings(**overrides).single_on_policy_update is single


def test_the_single_update_has_ratio_one_and_the_plain_policy_gradient(batch, policy, accelerator):
    s = settings(policy_loss="ppo_clip", clip_range=CLIP)
    assert s.single_on_policy_update
    exp = make_experience(policy, None, batch, SCORES, s)
    assert exp.old_logprobs is None  # no separate forward pass

    loss, stats = minibatch_loss(policy, exp, ROWS, s, accelerator)
    assert_scalar(loss.item(), -(4 * 1.0 + 3 * 0.1) / REAL)  # ratio 1: -mean(A)
    assert stats["approx_kl"] == 0.0 and stats["clipfrac"] == 0.0
    # Its gradient is REINFORCE's: -sum_t A_t * grad log pi(y_t) / 7.
    params = [p for p in policy.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params)
    reinforce = -(exp.advantages * token_logprobs(policy, batch)).sum() / REAL
    for got, want in zip(grads, torch.autograd.grad(reinforce, params), strict=True):
        assert_close(got, want, rtol=1e-4, atol=1e-6)
    assert max(g.abs().max().item() for g in grads) > 1e-3


@pytest.mark.parametrize(
    "overrides",
    [
        {"ppo_epochs": 2},
        {"mini_batch_size": 1},
        {"advantage": "gae", "gamma": GAMMA, "lam": LAM},
        {"kl_coef": KL_COEF},
    ],
)
def test_otherwise_the_old_logprobs_are_a_separate_forward_pass(
    overrides, batch, reference, accelerator
):
    s = settings(**overrides)
    policy = tiny_policy_with_value(seed=0) if s.uses_values else tiny_lm(seed=0)
    lm = policy.policy if s.uses_values else policy
    exp = make_experience(policy, reference, batch, SCORES, s)
    with torch.no_grad():
        before = token_logprobs(lm, batch)
    assert_close(exp.old_logprobs, before)
    assert not exp.old_logprobs.requires_grad
    # The policy moves; the loss's ratio is then new over the *stored* old log-probs.
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        for p in lm.parameters():
            p.add_(0.05 * torch.randn_like(p))
        after = token_logprobs(lm, batch)
    _, stats = minibatch_loss(policy, exp, ROWS, s, accelerator)
    log_ratio = after - before
    assert real_mean(log_ratio.abs(), batch) > 0.01
    approx_kl = real_mean(torch.expm1(log_ratio) - log_ratio, batch)
    assert_scalar(stats["approx_kl"], approx_kl.item())


# --- the minibatch loss -------------------------------------------------------------------


def averaged(tokens: list[float], loss_agg: str) -> float:
    """Per-token losses, row 0's four real tokens then row 1's three, averaged as `loss_agg`
    does: every token weighs 1/7, or each response 1/2 and its tokens share that equally."""
    if loss_agg == "token_mean":
        return sum(tokens) / REAL
    return (sum(tokens[:4]) / 4 + sum(tokens[4:]) / 3) / 2


@pytest.mark.parametrize("loss_agg", ["token_mean", "seq_mean"])
def test_loss_is_clipped_surrogate_plus_vf_coef_value_loss_plus_kl(
    loss_agg, batch, reference, accelerator
):
    policy = tiny_policy_with_value(seed=0)
    s = settings(
        loss_agg=loss_agg,
        advantage="gae",
        policy_loss="ppo_clip",
        clip_range=CLIP,
        value_clip_range=VALUE_CLIP,
        vf_coef=VF_COEF,
        kl_coef=KL_COEF,
        kl_penalty="loss",
        kl_estimator="k3",
    )
    exp = make_experience(policy, reference, batch, SCORES, s)
    lp, ref_lp = logprobs_of(policy.policy, reference, batch)
    with torch.no_grad():
        values = token_values(policy, batch)
    mask = batch.response_mask.bool()
    # Old log-probs and values set so that the ratio is e^offset and V - V_old is a chosen step.
    offsets = torch.tensor([[0.5, -0.5, 0.1, -0.1], [0.5, -0.5, 0.0, JUNK]])
    value_steps = torch.tensor([[0.3, -0.3, 0.05, 0.0], [0.2, -0.05, 0.0, JUNK]])
    errors = torch.tensor([[0.5, -0.5, 0.4, -0.2], [-0.3, 0.1, 1.0, JUNK]])  # G - V
    exp = dataclasses.replace(
        exp,
        old_logprobs=torch.where(mask, lp - offsets, JUNK),
        advantages=torch.tensor([[1.0, -1.0, 2.0, -0.5], [-1.0, 1.0, 0.5, JUNK]]),
        old_values=torch.where(mask, values - value_steps, JUNK),
        returns=torch.where(mask, values + errors, JUNK),
    )

    loss, stats = minibatch_loss(policy, exp, ROWS, s, accelerator)
    e = math.exp
    pg_tokens = [
        -1.0 * (1 + CLIP),  # A > 0, ratio e^0.5 above 1 + eps: clipped
        +1.0 * (1 - CLIP),  # A < 0, ratio e^-0.5 below 1 - eps: clipped
        -2.0 * e(0.1),  # inside the clip range
        +0.5 * e(-0.1),
        +1.0 * e(0.5),  # A < 0, ratio above 1 + eps: the unclipped term is the larger
        -1.0 * e(-0.5),  # A > 0, ratio below 1 - eps: likewise
        -0.5 * 1.0,
    ]
    policy_loss = averaged(pg_tokens, loss_agg)
    v_tokens = [
        (-0.3 + VALUE_CLIP - 0.5) ** 2,  # V moved 0.3 from V_old, clipped to 0.1: larger error
        (0.3 - VALUE_CLIP + 0.5) ** 2,
        0.4**2,  # V moved 0.05, inside the clip
        0.2**2,
        0.3**2,  # V moved 0.2: the clipped error (0.2 - 0.1 - 0.3)^2 is the smaller one
        0.1**2,
        1.0**2,
    ]
    value_loss = 0.5 * averaged(v_tokens, loss_agg)
    kl = (torch.exp(ref_lp - lp) - (ref_lp - lp) - 1).tolist()  # k3
    kl_loss = averaged(kl[0][:4] + kl[1][:3], loss_agg)
    # The diagnostics stay token means whatever the loss's averaging.
    assert_scalar(stats["policy_loss"], policy_loss)
    assert_scalar(stats["clipfrac"], 2 / REAL)
    assert_scalar(stats["value_loss"], value_loss)
    assert_scalar(stats["value_clipfrac"], 2 / REAL)
    approx_kl = sum(e(x) - 1 - x for x in [0.5, -0.5, 0.1, -0.1, 0.5, -0.5, 0.0]) / REAL
    assert_scalar(stats["approx_kl"], approx_kl)
    expected = policy_loss + VF_COEF * value_loss + KL_COEF * kl_loss
    assert_scalar(loss.item(), expected)


def test_pg_loss_is_minus_advantage_times_logprob(batch, policy, accelerator):
    s = settings(policy_loss="pg", ppo_epochs=2)
    exp = make_experience(policy, None, batch, SCORES, s)
    loss, stats = minibatch_loss(policy, exp, ROWS, s, accelerator)
    with torch.no_grad():
        lp = token_logprobs(policy, batch).tolist()
    expected = -(1.0 * sum(lp[0]) + 0.1 * sum(lp[1][:3])) / REAL
    assert_scalar(loss.item(), expected)
    assert stats["clipfrac"] == 0.0 and "value_loss" not in stats


# --- temperature --------------------------------------------------------------------------


def test_logprobs_are_taken_at_the_sampling_temperature(batch, policy, reference, accelerator):
    def at_temperature(lm, temperature):
        """log_softmax(logits / T) at the sampled tokens, written out once more."""
        with torch.no_grad():
            logits = lm(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        choosing = logits[:, 2:-1]  # prompts are 3 tokens; position 2 chooses response token 0
        logprobs = torch.log_softmax(choosing / temperature, dim=-1)
        return logprobs.gather(-1, batch.response_ids[..., None]).squeeze(-1) * batch.response_mask

    lp, ref_lp = at_temperature(policy, TEMPERATURE), at_temperature(reference, TEMPERATURE)
    assert (lp - at_temperature(policy, 1.0)).abs().max() > 0.05
    args = (batch.input_ids, batch.attention_mask, batch.response_mask, TEMPERATURE)
    with torch.no_grad():
        assert_close(compute_logprobs(policy, *args), lp)

    s = settings(temperature=TEMPERATURE, policy_loss="pg", kl_coef=KL_COEF, kl_penalty="loss")
    exp = make_experience(policy, reference, batch, SCORES, s)
    assert_close(exp.old_logprobs, lp)
    assert_close(exp.ref_logprobs, ref_lp)
    loss, _ = minibatch_loss(policy, exp, ROWS, s, accelerator)
    pg = -(1.0 * lp[0].sum() + 0.1 * lp[1].sum()) / REAL
    kl = real_mean(lp - ref_lp, batch)
    assert_scalar(loss.item(), (pg + KL_COEF * kl).item())


# --- the engine's sampling log-probs -------------------------------------------------------

# Engine log-prob minus trainer log-prob on each real token (rows of 4 and 3 tokens).
ENGINE_OFFSETS = torch.tensor([[0.3, -0.2, 0.5, -1.0], [0.1, -0.6, 0.0, JUNK]])


@pytest.mark.parametrize("tis_cap", [None, 1.5])
def test_engine_logprob_gap_is_logged_and_tis_weights_each_tokens_advantage(
    batch, policy, accelerator, tis_cap
):
    """With vLLM's sampling log-probs in the batch: the mean |trainer - engine| gap is logged;
    with `tis_cap`, each token's advantage is weighted by min(pi_trainer / pi_engine, cap)."""
    with torch.no_grad():
        lp = token_logprobs(policy, batch)
    sampled = dataclasses.replace(batch, logprobs=(lp + ENGINE_OFFSETS) * batch.response_mask)
    s = settings(policy_loss="pg", ppo_epochs=2, tis_cap=tis_cap)
    exp = make_experience(policy, None, sampled, SCORES, s)
    loss, stats = minibatch_loss(policy, exp, ROWS, s, accelerator)

    offsets = [[0.3, -0.2, 0.5, -1.0], [0.1, -0.6, 0.0]]
    assert_scalar(stats["engine_logprob_gap"], (0.3 + 0.2 + 0.5 + 1.0 + 0.1 + 0.6 + 0.0) / REAL)
    lp = lp.tolist()
    if tis_cap is None:  # the plain policy gradient, unweighted
        weights = [[1.0] * 4, [1.0] * 3]
    else:  # ratios exp(-offset); e^1 (row 0) and e^0.6 (row 1) are capped at 1.5
        weights = [[min(math.exp(-d), tis_cap) for d in row] for row in offsets]
        assert stats["tis_capped_frac"] == pytest.approx(2 / REAL)
    expected = (
        -(
            sum(1.0 * w * x for w, x in zip(weights[0], lp[0], strict=True))
            + sum(0.1 * w * x for w, x in zip(weights[1], lp[1][:3], strict=True))
        )
        / REAL
    )
    assert_scalar(loss.item(), expected)
