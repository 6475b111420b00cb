"""The bandit update is REINFORCE: with advantage=none and one rollout per question, the step
train_rl takes follows exactly ``-grad sum_i r_i * log pi(y_i | x_i) / N`` (N: response tokens
in the batch), computed here independently, one unpadded sequence at a time."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from accelerate import Accelerator

from reftlab.methods.env import rl_settings
from reftlab.stages.rl import make_experience, update_policy
from reftlab.stages.rollout import RolloutBatch, collate_rollouts

PROMPTS = [
    "Question: Ann has 27 apples. She buys 3 more. How many apples does Ann have now?\nAnswer:",
    "Question: Tom has 5 books.\nAnswer:",
    "Question: Mia has 4 pens. She loses 1. How many pens does Mia have now?\nAnswer:",
]
RESPONSES = [
    " 27 + 3 = 30.\nThe answer is 30.",
    " The answer is 5.",
    " 4 - 1 = 2.\nThe answer is 2.",
]
# Raw outcome rewards (partial credit 0.1 for the wrong but well-formed third answer).
REWARDS = [1.0, 1.0, 0.1]


class GradCapture:
    """An optimizer stand-in that records the gradients it is asked to step on."""

    def __init__(self, params):
        self.params = list(params)
        self.steps: list[list[torch.Tensor]] = []

    def step(self):
        self.steps.append([p.grad.clone() for p in self.params])

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            p.grad = None


def hand_made_batch(tokenizer) -> tuple[RolloutBatch, list[list[int]], list[list[int]]]:
    queries = [tokenizer(p)["input_ids"] for p in PROMPTS]
    responses = [tokenizer(r)["input_ids"] + [tokenizer.eos_token_id] for r in RESPONSES]
    tensors = collate_rollouts(queries, responses, tokenizer.pad_token_id)
    batch = RolloutBatch(**tensors, texts=list(RESPONSES), group_ids=torch.arange(len(PROMPTS)))
    return batch, queries, responses


def sequence_logprob(model, query: list[int], response: list[int]) -> torch.Tensor:
    """log pi(response | query) from one unpadded forward pass: sum over response tokens."""
    ids = torch.tensor([query + response])
    logprobs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    targets = ids[0, 1:]
    per_token = logprobs.gather(-1, targets[:, None]).squeeze(-1)
    return per_token[len(query) - 1 :].sum()  # the positions that predict response tokens


def hand_gradient(model, queries, responses, normaliser) -> list[torch.Tensor]:
    terms = [
        r * sequence_logprob(model, q, y)
        for r, q, y in zip(REWARDS, queries, responses, strict=True)
    ]
    loss = -sum(terms) / normaliser
    return list(torch.autograd.grad(loss, list(model.parameters())))


def test_shipped_bandit_settings_are_plain_reinforce(method_env):
    s = rl_settings(method_env("method=bandit"), 32)
    assert (s.advantage, s.policy_loss, s.kl_coef, s.clip_range) == ("none", "pg", 0.0, None)
    assert (s.rollouts_per_query, s.ppo_epochs, s.uses_values) == (1, 1, False)


def test_bandit_step_is_exactly_the_reinforce_gradient(method_env, tokenizer, small_model):
    settings = rl_settings(method_env("method=bandit", "method.mini_batch_size=32"), 32)
    # No gradient clipping, so that the captured gradient is the raw one.
    settings = dataclasses.replace(settings, max_grad_norm=1e9)
    batch, queries, responses = hand_made_batch(tokenizer)
    scores = torch.tensor(REWARDS)

    exp = make_experience(small_model, None, batch, scores, settings)
    # advantage=none: every response token carries its sequence's raw reward, padding 0.
    mask = batch.response_mask
    assert torch.equal(exp.advantages, scores[:, None] * mask)

    optimizer = GradCapture(small_model.parameters())
    update_policy(
        small_model,
        optimizer,
        Accelerator(cpu=True),
        exp,
        settings,
        torch.Generator().manual_seed(0),
    )
    assert len(optimizer.steps) == 1  # one gradient step per batch: no reuse of samples

    n_tokens = sum(len(y) for y in responses)  # token mean over the batch (rl.losses)
    assert int(mask.sum()) == n_tokens  # EOS included, padding not
    expected = hand_gradient(small_model, queries, responses, n_tokens)
    for got, want in zip(optimizer.steps[0], expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)

    # The check can fail: normalising per sequence instead gives a different gradient.
    per_sequence = [
        r * sequence_logprob(small_model, q, y) / len(y)
        for r, q, y in zip(REWARDS, queries, responses, strict=True)
    ]
    wrong = torch.autograd.grad(-sum(per_sequence) / len(REWARDS), list(small_model.parameters()))
    with pytest.raises(AssertionError):
        for got, want in zip(optimizer.steps[0], wrong, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)
