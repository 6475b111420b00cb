"""KL estimators and the KL-penalised per-token reward."""

from __future__ import annotations

import math

import pytest
import torch

from reftlab.rl.kl import get_kl_estimator, kl_k1, kl_k2, kl_k3, kl_penalized_rewards
from reftlab.rl.registry import KL_ESTIMATORS
from tests.rl.reference_impls import reft_code_mask_and_score

LOG_P = math.log(0.5)  # the policy's log-prob of the sampled token
LOG_Q = math.log(0.25)  # the reference's


def test_k1_k2_k3_on_known_numbers():
    logprobs, ref_logprobs = torch.tensor([LOG_P]), torch.tensor([LOG_Q])
    # log p - log q = log(0.5 / 0.25) = log 2
    assert math.isclose(kl_k1(logprobs, ref_logprobs).item(), math.log(2), rel_tol=1e-6)
    assert math.isclose(kl_k2(logprobs, ref_logprobs).item(), 0.5 * math.log(2) ** 2, rel_tol=1e-6)
    # q/p - log(q/p) - 1 = 0.5 - log 0.5 - 1
    assert math.isclose(kl_k3(logprobs, ref_logprobs).item(), 0.5 + math.log(2) - 1, rel_tol=1e-6)


def test_all_estimators_are_zero_when_the_policies_agree():
    logprobs = torch.log(torch.tensor([0.1, 0.6, 0.3]))
    for name in KL_ESTIMATORS:
        assert (get_kl_estimator(name)(logprobs, logprobs) == 0).all(), name


def test_k1_and_k3_are_unbiased_over_an_exact_expectation():
    p = torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64)
    q = torch.tensor([0.3, 0.3, 0.4], dtype=torch.float64)
    true_kl = (p * (p.log() - q.log())).sum()
    # the expectation over tokens sampled from the policy p, weighted exactly
    for estimator in (kl_k1, kl_k3):
        torch.testing.assert_close((p * estimator(p.log(), q.log())).sum(), true_kl)
    assert (kl_k2(p.log(), q.log()) >= 0).all() and (kl_k3(p.log(), q.log()) >= 0).all()


def test_kl_penalized_rewards_put_the_score_on_the_last_real_token():
    scores = torch.tensor([1.0, -0.5])
    logprobs = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, -0.5]])
    ref_logprobs = torch.tensor([[-1.5, -1.0, 9.0], [-1.0, -0.5, 0.0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    rewards, kl = kl_penalized_rewards(scores, logprobs, ref_logprobs, mask, kl_coef=0.1)
    # k1 = logprobs - ref_logprobs on real tokens, 0 on padding
    torch.testing.assert_close(kl, torch.tensor([[0.5, -1.0, 0.0], [0.5, 0.0, -0.5]]))
    expected = torch.tensor(
        [
            [-0.1 * 0.5, -0.1 * -1.0 + 1.0, 0.0],
            [-0.1 * 0.5, -0.1 * 0.0, -0.1 * -0.5 + -0.5],
        ]
    )
    torch.testing.assert_close(rewards, expected)


def test_kl_penalized_rewards_use_the_named_estimator_and_skip_empty_rows():
    scores = torch.tensor([2.0, 3.0])
    logprobs = torch.full((2, 2), LOG_P)
    ref_logprobs = torch.full((2, 2), LOG_Q)
    mask = torch.tensor([[True, True], [False, False]])
    rewards, kl = kl_penalized_rewards(scores, logprobs, ref_logprobs, mask, 0.2, estimator="k3")
    k3 = 0.5 + math.log(2) - 1
    torch.testing.assert_close(kl, torch.tensor([[k3, k3], [0.0, 0.0]]))
    torch.testing.assert_close(rewards, torch.tensor([[-0.2 * k3, -0.2 * k3 + 2.0], [0.0, 0.0]]))


def test_the_score_sits_on_the_action_that_emits_eos_as_in_the_reft_code():
    # Prompts of 2 tokens (7, 8); EOS = 2, padding = 1. Row 0 ends with EOS after two tokens,
    # row 1 runs to the length limit without one.
    eos, pad, prompt_len = 2, 1, 2
    input_ids = torch.tensor([[7, 8, 5, 6, eos, pad], [7, 8, 5, 6, 5, 6]])
    scores = torch.tensor([1.0, 0.1])
    reft_mask, reft_score = reft_code_mask_and_score(input_ids, prompt_len, eos, scores)
    # reftlab's response tokens are input_ids[:, prompt_len:], EOS included; response token k is
    # the action of the ReFT code's state prompt_len - 1 + k: the ReFT code's positions shifted
    # by one.
    response_mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    shifted = slice(prompt_len - 1, -1)
    assert torch.equal(reft_mask[:, shifted], response_mask)  # EOS's action is in the loss
    zeros = torch.zeros(response_mask.shape)
    rewards, _ = kl_penalized_rewards(scores, zeros, zeros, response_mask, kl_coef=0.0)
    torch.testing.assert_close(reft_score[:, shifted], rewards)
    # Row 0: the score on response token 2, the EOS; row 1: on its last token.
    torch.testing.assert_close(rewards, torch.tensor([[0, 0, 1.0, 0], [0, 0, 0, 0.1]]))


def test_unknown_estimator_names_the_known_ones():
    with pytest.raises(ValueError, match=r"'k4'.*k1, k2, k3"):
        get_kl_estimator("k4")
    with pytest.raises(ValueError, match="k1, k2, k3"):
        kl_penalized_rewards(
            torch.zeros(1), torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1, 1), 0.1, "kl"
        )
