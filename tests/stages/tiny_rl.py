"""Tiny models and a fixed rollout batch for tests of the RL engine (`reftlab.stages.rl`).

The policy and the frozen reference are two small GPT-2s with different weights, so that every
KL term is far from 0 and a swapped or sign-flipped one changes a checked number. The batch's
prompts all have the same length (no left padding), so a plain forward pass with default
positions scores it exactly as the engine does, and `token_logprobs` / `token_values` compute
the expected values from raw logits without any reftlab code.
"""

from __future__ import annotations

import dataclasses

import torch
from accelerate import Accelerator
from transformers import GPT2Config, GPT2LMHeadModel

from reftlab.models.value import PolicyWithValue
from reftlab.stages.rl import RLSettings, make_experience, make_optimizer, update_policy
from reftlab.stages.rollout import RolloutBatch, collate_rollouts

VOCAB, PAD, EOS = 16, 0, 2
# Two rollouts: four response tokens, and three then one padded position.
QUERIES = [[3, 5, 7], [4, 6, 8]]
RESPONSES = [[9, 10, 11, EOS], [12, 13, EOS]]
SCORES = torch.tensor([1.0, 0.1])


def tiny_lm(seed: int) -> GPT2LMHeadModel:
    """A one-layer GPT-2 with 16 tokens; the wide init gives peaked, seed-specific predictions."""
    config = GPT2Config(
        vocab_size=VOCAB,
        n_positions=16,
        n_embd=8,
        n_layer=1,
        n_head=2,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        initializer_range=0.5,
        bos_token_id=EOS,
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GPT2LMHeadModel(config)


def tiny_policy_with_value(seed: int) -> PolicyWithValue:
    """`tiny_lm(seed)` with a value head whose weights are random (a fresh head is all 0)."""
    policy = PolicyWithValue(tiny_lm(seed))
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed + 100)
        policy.value_head.weight.normal_(0.0, 0.5)
        policy.value_head.bias.fill_(0.2)
    return policy


def rollout_batch(
    queries=QUERIES, responses=RESPONSES, group_ids: list[int] | None = None
) -> RolloutBatch:
    """The rollouts of `queries` (all the same length) answered by `responses`."""
    assert len({len(q) for q in queries}) == 1, "token_logprobs assumes no left padding"
    tensors = collate_rollouts(queries, responses, PAD)
    groups = list(range(len(queries))) if group_ids is None else group_ids
    texts = [" ".join(map(str, r)) for r in responses]
    return RolloutBatch(**tensors, texts=texts, group_ids=torch.tensor(groups))


def token_logprobs(lm, batch: RolloutBatch, temperature: float = 1.0) -> torch.Tensor:
    """``log softmax(logits / T)`` of each response token, (B, Tr), 0 on padding; by hand.

    Response token t is chosen by the logits at position ``Tq + t - 1``.
    """
    logits = lm(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    choosing = logits[:, batch.query_length - 1 : -1] / temperature
    logprobs = torch.log_softmax(choosing, dim=-1)
    chosen = logprobs.gather(-1, batch.response_ids.unsqueeze(-1)).squeeze(-1)
    return chosen * batch.response_mask


def token_values(policy: PolicyWithValue, batch: RolloutBatch) -> torch.Tensor:
    """The value head's estimate at the state that chose each response token, (B, Tr)."""
    _, values = policy(batch.input_ids, batch.attention_mask)
    return values[:, batch.query_length - 1 : -1] * batch.response_mask


# One step of two rollouts, taken whole: one update on the sampling policy, no critic, no KL.
BASE = RLSettings(
    steps=1,
    batch_size=2,
    mini_batch_size=2,
    rollouts_per_query=1,
    ppo_epochs=1,
    lr=1e-2,
    advantage="none",
    policy_loss="ppo_clip",
    kl_coef=0.0,
    kl_estimator="k1",
    kl_penalty="reward",
    gamma=1.0,
    lam=1.0,
    clip_range=0.2,
    value_clip_range=None,
    vf_coef=1.0,
    whiten_advantages=False,
    temperature=1.0,
    top_p=1.0,
    max_new_tokens=4,
    seed=0,
    max_grad_norm=1e9,
)


def settings(**overrides) -> RLSettings:
    return dataclasses.replace(BASE, **overrides)


def response_logprobs(lm, batch: RolloutBatch) -> torch.Tensor:
    """``log pi(response | prompt)`` of each rollout, (B,): its tokens' log-probs summed."""
    with torch.no_grad():
        return token_logprobs(lm, batch).sum(dim=-1)


def kl_to_reference(lm, reference, batch: RolloutBatch) -> float:
    """``sum_t KL(pi(. | s_t) || ref(. | s_t))`` over the batch's response positions, exact over
    the vocabulary (not a sample estimate)."""
    with torch.no_grad():
        choosing = slice(batch.query_length - 1, -1)
        inputs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        logp = torch.log_softmax(lm(**inputs).logits[:, choosing], dim=-1)
        logq = torch.log_softmax(reference(**inputs).logits[:, choosing], dim=-1)
        per_position = (logp.exp() * (logp - logq)).sum(dim=-1)
        return (per_position * batch.response_mask).sum().item()


def train_on_batch(policy, reference, batch: RolloutBatch, scores, s: RLSettings, steps: int):
    """`steps` RL steps that all roll out `batch` (scored `scores`): each makes the experience
    with the current policy and updates on it, as `train_rl` does with fresh rollouts."""
    accelerator = Accelerator(cpu=True)
    optimizer = make_optimizer(policy, s)
    for step in range(steps):
        exp = make_experience(policy, reference, batch, scores, s)
        generator = torch.Generator().manual_seed(step)
        update_policy(policy, optimizer, accelerator, exp, s, generator=generator)
