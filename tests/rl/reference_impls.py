"""Reference implementations that tests check the package's RL math against.

``gae_vectorized`` computes GAE in closed form, with no loop over time, to check
``reftlab.rl.advantages.gae_loop`` (the one the ``gae`` estimator uses).
"""

from __future__ import annotations

import torch
from torch import Tensor

from reftlab.rl.masked import zero_masked


def gae_vectorized(
    rewards: Tensor, values: Tensor, response_mask: Tensor, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """GAE as ``gae_loop`` computes it, without a Python loop over time.

    Real tokens are first packed to the left of each row (a stable sort, so their order is
    kept); then ``A = delta @ D^T`` with the discount matrix ``D[t, k] = (gamma * lam)^(k - t)``
    for ``k >= t`` and 0 otherwise, and the result is scattered back. Memory is O(T^2). All
    tensors (B, T); both outputs are 0 at masked positions.
    """
    mask = response_mask.bool()
    length = mask.shape[-1]
    order = torch.argsort((~mask).to(torch.int8), dim=-1, stable=True)
    packed_rewards = rewards.gather(-1, order)
    packed_values = values.gather(-1, order)
    positions = torch.arange(length, device=mask.device)
    packed_mask = positions < mask.sum(dim=-1, keepdim=True)

    packed_values = zero_masked(packed_values, packed_mask)
    next_values = torch.nn.functional.pad(packed_values[:, 1:], (0, 1))
    deltas = zero_masked(packed_rewards + gamma * next_values - packed_values, packed_mask)

    steps_ahead = positions.unsqueeze(0) - positions.unsqueeze(1)  # [t, k] = k - t
    powers = (gamma * lam) ** steps_ahead.clamp(min=0).to(rewards.dtype)
    discount = torch.where(steps_ahead >= 0, powers, 0.0)
    packed_advantages = deltas @ discount.T

    advantages = torch.zeros_like(rewards).scatter(-1, order, packed_advantages)
    advantages = zero_masked(advantages, mask)
    returns = zero_masked(advantages + values, mask)
    return advantages, returns


def reft_code_mask_and_score(
    input_ids: Tensor, prompt_len: int, eos_token_id: int, scores: Tensor
) -> tuple[Tensor, Tensor]:
    """The loss mask and the score reward of the ReFT code (mwp_ReFT, `train_rl_reft.py`,
    `rollout`), as it builds them over the whole sequence of prompt + response.

    Position ``t`` of both is the state after token ``t``, whose action is token ``t + 1`` (the
    log-probs are ``logits[:, :-1]`` against ``input_ids[:, 1:]``). The mask starts at the last
    prompt token and stops before the EOS position ``e``; the score goes to position ``e - 1``,
    the state whose action is the EOS token (to ``-2`` when there is no EOS: the action that
    emits the last token). ``input_ids``: (B, L) with left-padded prompts of ``prompt_len``
    tokens; returns two (B, L) tensors.
    """
    mask = torch.zeros_like(input_ids, dtype=torch.bool)
    mask[:, prompt_len - 1 : -1] = True
    score_rew = torch.zeros(input_ids.shape, dtype=scores.dtype)
    score_rew[:, -2] = scores
    for b, t in (input_ids == eos_token_id).nonzero().tolist():
        mask[b, t:] = False
        score_rew[b, t:] = 0
        score_rew[b, t - 1] = scores[b]
    return mask, score_rew
