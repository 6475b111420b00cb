"""Shards of a step add up to the step of the whole batch: the RL update of rollouts split into
shards (grad_accum, or processes) takes the gradient of one average over the minibatch (by token,
or per response with loss_agg=seq_mean), whitening uses the whole step's statistics, and a
zero-weight placeholder shard changes nothing. Also the shard and minibatch arithmetic."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from accelerate import Accelerator
from hypothesis import given
from hypothesis import strategies as st

from reftlab.methods.env import rl_settings
from reftlab.models.value import PolicyWithValue
from reftlab.runtime.distributed import shard_part
from reftlab.stages.batches import IGNORE_INDEX, collate, count_target_tokens
from reftlab.stages.rl import (
    Experience,
    ShardWork,
    make_experience,
    select_rows,
    update_policy,
    whiten_step_advantages,
)
from reftlab.stages.rollout import RolloutBatch, collate_rollouts
from reftlab.stages.shards import (
    SINGLE,
    ShardLayout,
    WeightedMeans,
    combine_metrics,
    shard_seed,
    split_minibatches,
)

PROMPTS = [
    "Question: Ann has 27 apples. She buys 3 more. How many apples does Ann have now?\nAnswer:",
    "Question: Tom has 5 books.\nAnswer:",
    "Question: Mia has 4 pens. She loses 1. How many pens does Mia have now?\nAnswer:",
]
# Different lengths, so that a per-shard token mean would weigh tokens differently.
RESPONSES = [
    " 27 + 3 = 30.\nThe answer is 30.",
    " The answer is 5.",
    " 4 - 1 = 2.\nThe answer is 2.",
]
SCORES = torch.tensor([1.0, 0.1, 0.0])


class GradCapture:
    """An optimizer stand-in that records the gradients of each step."""

    def __init__(self, params):
        self.params = list(params)
        self.steps: list[list[torch.Tensor]] = []

    def step(self):
        self.steps.append(
            [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in self.params]
        )

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            p.grad = None


def rollouts(tokenizer) -> RolloutBatch:
    queries = [tokenizer(p)["input_ids"] for p in PROMPTS]
    responses = [tokenizer(r)["input_ids"] + [tokenizer.eos_token_id] for r in RESPONSES]
    tensors = collate_rollouts(queries, responses, tokenizer.pad_token_id)
    return RolloutBatch(**tensors, texts=list(RESPONSES), group_ids=torch.arange(len(PROMPTS)))


def rows_of(exp: Experience, rows: list[int]) -> Experience:
    index = torch.tensor(rows)
    pick = lambda t: None if t is None else t[index]  # noqa: E731
    return Experience(
        select_rows(exp.batch, index),
        pick(exp.old_logprobs),
        pick(exp.old_values),
        pick(exp.ref_logprobs),
        pick(exp.advantages),
        pick(exp.returns),
        pick(exp.scores),
        pick(exp.kl),
    )


def step_gradient(policy, work, settings, layout=SINGLE, split=None) -> list[torch.Tensor]:
    optimizer = GradCapture(policy.parameters())
    update_policy(
        policy,
        optimizer,
        Accelerator(cpu=True),
        work,
        settings,
        generator=torch.Generator().manual_seed(0),
        layout=layout,
        split=split,
    )
    assert len(optimizer.steps) == 1  # one minibatch: the whole step
    return optimizer.steps[0]


def whitened(work: list[ShardWork], settings) -> list[ShardWork]:
    """The step's whitening, as `train_rl` applies it after every shard has rolled out."""
    return whiten_step_advantages(work) if settings.whiten_advantages else work


@pytest.mark.parametrize(
    "method,whiten,loss_agg",
    [
        ("bandit", False, "token_mean"),
        ("bandit", True, "seq_mean"),
        ("reft", False, "token_mean"),
        ("reft", True, "token_mean"),
        ("reft", True, "seq_mean"),  # ReFT's defaults
    ],
)
def test_two_shards_take_the_gradient_of_the_whole_batch(
    method, whiten, loss_agg, method_env, tokenizer, small_model
):
    env = method_env(
        f"method={method}",
        "method.batch_size=3",
        "method.mini_batch_size=3",
        f"method.whiten_advantages={whiten}",
        f"method.loss_agg={loss_agg}",
    )
    settings = rl_settings(env, 3)
    settings = dataclasses.replace(settings, max_grad_norm=1e9, ppo_epochs=1, kl_coef=0.0)
    policy = PolicyWithValue(small_model) if settings.uses_values else small_model
    exp = make_experience(policy, None, rollouts(tokenizer), SCORES, settings)
    (whole_work,) = whitened([ShardWork(exp, [], [], 1.0, torch.Generator())], settings)
    whole = step_gradient(policy, whole_work.exp, settings)

    # Questions 0-1 on one shard, question 2 on the other, accumulated in one process; each
    # shard's experience is made apart, as on two processes, and whitened together.
    shards = whitened(
        [
            ShardWork(rows_of(exp, [0, 1]), [], [], 1.0, torch.Generator().manual_seed(1)),
            ShardWork(rows_of(exp, [2]), [], [], 1.0, torch.Generator().manual_seed(2)),
        ],
        settings,
    )
    advantages = torch.cat([w.exp.advantages for w in shards])
    torch.testing.assert_close(advantages, whole_work.exp.advantages)
    sharded = step_gradient(policy, shards, settings, ShardLayout(n_shards=2, processes=1))
    # A per-shard average (the naive split) would not agree: response lengths differ, and shard
    # 1 holds two responses where shard 2 holds one.
    for g_whole, g_sharded in zip(whole, sharded, strict=True):
        torch.testing.assert_close(g_sharded, g_whole, rtol=1e-5, atol=1e-7)
    assert max(g.abs().max().item() for g in whole) > 0


def test_a_shard_whitened_alone_would_differ_from_the_step(method_env, tokenizer, small_model):
    settings = rl_settings(method_env("method=bandit", "method.whiten_advantages=true"), 3)
    exp = make_experience(small_model, None, rollouts(tokenizer), SCORES, settings)
    (whole,) = whiten_step_advantages([ShardWork(exp, [], [], 1.0, torch.Generator())])
    first, second = whiten_step_advantages(
        [
            ShardWork(rows_of(exp, [0, 1]), [], [], 1.0, torch.Generator()),
            ShardWork(rows_of(exp, [2]), [], [], 1.0, torch.Generator()),
        ]
    )
    (alone,) = whiten_step_advantages([ShardWork(rows_of(exp, [0, 1]), [], [], 1.0, None)])
    torch.testing.assert_close(first.exp.advantages, whole.exp.advantages[:2])
    assert not torch.allclose(alone.exp.advantages, first.exp.advantages)
    # A placeholder shard (weight 0) adds nothing to the step's statistics.
    padded = whiten_step_advantages(
        [ShardWork(exp, [], [], 1.0, None), ShardWork(rows_of(exp, [0]), [], [], 0.0, None)]
    )
    torch.testing.assert_close(padded[0].exp.advantages, whole.exp.advantages)


def test_a_placeholder_shard_adds_nothing(method_env, tokenizer, small_model):
    settings = rl_settings(
        method_env("method=bandit", "method.batch_size=3", "method.mini_batch_size=3"), 3
    )
    settings = dataclasses.replace(settings, max_grad_norm=1e9)
    exp = make_experience(small_model, None, rollouts(tokenizer), SCORES, settings)
    whole = step_gradient(small_model, exp, settings)
    shards = [
        ShardWork(exp, [], [], 1.0, torch.Generator().manual_seed(0)),
        ShardWork(rows_of(exp, [0]), [], [], 0.0, torch.Generator().manual_seed(1)),
    ]
    # The split counts real rollouts only (3), as train_rl's does.
    split = split_minibatches(3, 3, settings.mini_batch_size, n_shards=2)
    padded = step_gradient(small_model, shards, settings, ShardLayout(2, 1), split)
    for g_whole, g_padded in zip(whole, padded, strict=True):
        torch.testing.assert_close(g_padded, g_whole, rtol=1e-6, atol=1e-8)


def test_shard_parts_and_seeds():
    assert shard_part(5, 0, 2) == (slice(0, 3), 1.0)
    assert shard_part(5, 1, 2) == (slice(3, 5), 1.0)
    # A step with fewer questions than shards: the empty shard samples question 0, weight 0.
    assert shard_part(1, 1, 2) == (slice(0, 1), 0.0)
    assert shard_seed(1234, 0) == 1234  # one shard samples exactly as before sharding
    assert len({shard_seed(1234, i) for i in range(8)}) == 8


def test_minibatch_split_golden():
    # One shard: mini_batch_size rows per minibatch, as the unsharded loop takes them.
    split = split_minibatches(64, 64, 24, 1)
    assert (split.count, split.rows_per_shard) == (3, 24)
    # 9 rollouts over 2 shards (5 and 4), minibatches of 8: two minibatches, 4 rows a shard.
    split = split_minibatches(9, 5, 8, 2)
    assert (split.count, split.rows_per_shard) == (2, 4)


@given(st.integers(1, 200), st.integers(1, 64), st.integers(1, 8))
def test_minibatch_split_covers_every_row(rows, mini_batch_size, n_shards):
    largest = math.ceil(rows / n_shards)
    split = split_minibatches(rows, largest, mini_batch_size, n_shards)
    assert split.count == math.ceil(rows / mini_batch_size)
    assert split.count * split.rows_per_shard >= largest
    if n_shards == 1:
        assert split.rows_per_shard == mini_batch_size or split.count == 1


def test_metrics_combine_weighted_and_pass_through_one_shard():
    assert combine_metrics([({"a": 0.1}, 3.0)], ShardLayout()) == {"a": 0.1}
    combined = combine_metrics([({"a": 1.0}, 1.0), ({"a": 4.0}, 3.0)], ShardLayout(2, 1))
    assert combined == {"a": (1.0 * 1 + 4.0 * 3) / 4}
    means = WeightedMeans()
    means.add({"loss": 2.0}, 1.0)
    means.add({"loss": 5.0, "norm": 1.0}, 2.0)
    assert means.means(ShardLayout()) == {"loss": (2.0 + 10.0) / 3, "norm": 1.0}


@given(st.lists(st.tuples(st.integers(1, 12), st.integers(0, 14)), min_size=1, max_size=6))
def test_target_token_count_matches_the_collated_labels(rows):
    encoded = [(list(range(3, 3 + length)), min(prompt, length)) for length, prompt in rows]
    labels = collate(encoded, pad_id=0)["labels"][:, 1:]
    assert count_target_tokens(encoded) == int((labels != IGNORE_INDEX).sum())
