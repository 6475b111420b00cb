"""PrefixRL's parts: token cuts, the pool, traces, scoring prefix + completion, reward split,
and that prefix tokens carry no loss (they are prompt)."""

from __future__ import annotations

import random

import pytest
import torch
from accelerate import Accelerator
from torch import nn

from reftlab.data import DataError, format_prompt
from reftlab.data.prompts import NATURAL_TEMPLATE
from reftlab.data.traces import parse_trace_lines, read_trace_file, write_trace_file
from reftlab.methods.env import rl_settings
from reftlab.rewards.scorer import Scorer
from reftlab.rl.prefix import cut_point, cut_trace, draw_fraction, draw_pool
from reftlab.stages.prefix import (
    PrefixScorer,
    RewardSplit,
    build_pool,
    prompt_with_prefix,
    traces_from_file,
)
from reftlab.stages.rl import make_experience, update_policy
from reftlab.stages.rollout import RolloutBatch, collate_rollouts


def make_prompt(example):
    return format_prompt(NATURAL_TEMPLATE, example)


def scorer() -> Scorer:
    return Scorer("natural", 0.0, ["the answer is", "####"], "none", 2.0)


# --- cuts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n,fraction,expected",
    [
        (10, 0.3, 3),  # 0.3 * 10 = 2.9999999999999996 in floats: still 3
        (7, 0.5, 3),  # floor(3.5)
        (7, 0.4, 2),  # floor(2.8)
        (7, 0.0, 0),
        (7, 1.0, 7),
        (0, 0.6, 0),
    ],
)
def test_cut_point_is_the_floor_of_the_fraction_of_tokens(n, fraction, expected):
    assert cut_point(n, fraction) == expected


def test_cut_trace_splits_without_losing_tokens():
    ids = [11, 12, 13, 14, 15, 16, 17, 18]
    assert cut_trace(ids, 0.5) == ([11, 12, 13, 14], [15, 16, 17, 18])
    for fraction in (0.0, 0.13, 0.5, 0.99, 1.0):
        prefix, rest = cut_trace(ids, fraction)
        assert prefix + rest == ids


def test_fractions_outside_the_unit_interval_are_rejected():
    with pytest.raises(ValueError):
        cut_point(5, 1.5)
    with pytest.raises(ValueError):
        draw_fraction(random.Random(0), 0.8, 0.4)


def test_drawn_fractions_stay_in_range():
    rng = random.Random(1)
    draws = [draw_fraction(rng, 0.4, 0.8) for _ in range(500)]
    assert all(0.4 <= f <= 0.8 for f in draws)
    assert min(draws) < 0.45 and max(draws) > 0.75  # the whole range is used


# --- pool -------------------------------------------------------------------------------------


def test_pool_mixes_prefixed_and_plain_in_the_asked_share():
    problems = [f"p{i}" for i in range(10)]
    pool = draw_pool(
        problems, ["p1", "p4", "p7"], size=10, plain_fraction=0.3, rng=random.Random(0)
    )
    prefixed = [i for i, is_prefixed in pool if is_prefixed]
    plain = [i for i, is_prefixed in pool if not is_prefixed]
    assert len(pool) == 10 and len(prefixed) == round(0.7 * 10) == 7
    # 7 prefixed entries over 3 hard problems: each 2 or 3 times, nothing else.
    assert sorted({prefixed.count(i) for i in set(prefixed)}) == [2, 3]
    assert set(prefixed) == {"p1", "p4", "p7"}
    assert len(plain) == 3 and len(set(plain)) == 3


def test_pool_is_all_plain_without_hard_problems_or_at_plain_fraction_one():
    problems = ["a", "b", "c"]
    for hard, fraction in (([], 0.0), (["a"], 1.0)):
        pool = draw_pool(problems, hard, size=6, plain_fraction=fraction, rng=random.Random(0))
        assert [p for _, p in pool] == [False] * 6
        assert sorted(i for i, _ in pool) == ["a", "a", "b", "b", "c", "c"]


def test_build_pool_cuts_traces_at_the_drawn_token_fraction(examples, tokenizer):
    hard = examples[:3]
    traces = {e.id: [" " + e.cot] for e in hard}
    pool = build_pool(
        examples,
        traces,
        tokenizer,
        size=40,
        plain_fraction=0.25,
        min_frac=0.3,
        max_frac=0.6,
        seed=0,
    )
    assert len(pool.items) == 40 and len(pool.prefixes) == 30
    for item in pool.items:
        if item.id not in pool.prefixes:
            assert item in examples
            continue
        source_id, _ = item.id.split("#prefix")
        trace = traces[source_id][0]
        prefix = pool.prefixes[item.id]
        n = len(tokenizer(trace, add_special_tokens=False)["input_ids"])
        k = len(tokenizer(prefix, add_special_tokens=False)["input_ids"])
        assert trace.startswith(prefix)
        assert cut_point(n, 0.3) <= k <= cut_point(n, 0.6)
        assert item.answer == next(e for e in examples if e.id == source_id).answer


# --- scoring and metrics ----------------------------------------------------------------------


def test_the_reward_judges_prefix_plus_completion(examples):
    example = examples[0]
    prefixes = {"x#prefix0": f" The answer is {example.answer}"}
    item = type(example)(id="x#prefix0", question=example.question, answer=example.answer)
    # The completion alone has no answer; with its prefix it is the right one.
    assert not scorer().score(["."], [item])[0].correct
    assert PrefixScorer(scorer(), prefixes).score(["."], [item])[0].correct
    plain = PrefixScorer(scorer(), prefixes).score([f" The answer is {example.answer}."], [example])
    assert plain[0].correct


def test_reward_split_reports_prefixed_and_plain_rows_apart(examples):
    a, b = examples[:2]
    prefixed = type(a)(id="a#prefix0", question=a.question, answer=a.answer)
    split = RewardSplit({"a#prefix0": " 1"})
    step = split([prefixed, prefixed, b, b], torch.tensor([1.0, 0.0, 0.0, 0.0]))
    assert step == {"train/reward_prefixed": 0.5, "train/reward_plain": 0.0}
    assert split([b], torch.tensor([1.0])) == {"train/reward_plain": 1.0}  # no nan key
    # Over the stage: prefixed (1 + 0) / 2, plain (0 + 0 + 1) / 3.
    assert split.means() == {"train_reward_prefixed": 0.5, "train_reward_plain": 1 / 3}


# --- trace files ------------------------------------------------------------------------------


def test_trace_files_round_trip_and_keep_several_traces_per_id(tmp_path):
    traces = {"q1": [" a. The answer is 1.", " b. The answer is 1."], "q2": [" The answer is 2."]}
    write_trace_file(tmp_path / "t.jsonl", traces)
    assert read_trace_file(tmp_path / "t.jsonl") == traces


@pytest.mark.parametrize(
    "line,message",
    [
        ("not json", "line 2: not JSON"),
        ('{"id": "q"}', 'line 2: a trace needs "id"'),
        ('["q", "x"]', "line 2: expected an object"),
    ],
)
def test_malformed_trace_lines_name_file_and_line(line, message):
    with pytest.raises(DataError, match=message):
        parse_trace_lines(['{"id": "q1", "completion": "x"}', line], "t.jsonl")


def test_file_traces_keep_training_ids_and_get_the_leading_space(examples, tmp_path):
    path = tmp_path / "t.jsonl"
    write_trace_file(path, {examples[0].id: [examples[0].cot], "elsewhere": ["x"]})
    traces, counts = traces_from_file(str(path), examples, lead=" ")
    assert traces == {examples[0].id: [" " + examples[0].cot]}
    assert counts == {"samples_drawn": 0, "problems_solved": 1, "hard_problems": 1}
    write_trace_file(path, {"elsewhere": ["x"]})
    with pytest.raises(DataError, match="none of its 1 ids"):
        traces_from_file(str(path), examples, lead=" ")


# --- no gradient through the prefix -----------------------------------------------------------


class FullLogits(nn.Module):
    """The LM computing logits at every position (no logits_to_keep), keeping their gradient."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm
        self.logits: torch.Tensor | None = None

    def forward(self, input_ids, attention_mask, position_ids=None, use_cache=False):
        out = self.lm(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=False,
        )
        if out.logits.requires_grad:
            out.logits.retain_grad()
        self.logits = out.logits
        return out


def test_prefix_tokens_are_prompt_and_get_no_gradient(method_env, examples, tokenizer, small_model):
    example = examples[0]
    trace = " " + example.cot
    pool = build_pool(
        [example],
        {example.id: [trace]},
        tokenizer,
        size=1,
        plain_fraction=0.0,
        min_frac=0.5,
        max_frac=0.5,
        seed=0,
    )
    (item,) = pool.items
    prefix = pool.prefixes[item.id]
    prompt = prompt_with_prefix(make_prompt, pool.prefixes)(item)
    assert prompt == make_prompt(example) + prefix
    trace_ids = tokenizer(trace, add_special_tokens=False)["input_ids"]
    query = tokenizer(prompt)["input_ids"]
    # The prefix is half the trace's tokens, and it survives tokenising the joined prompt.
    assert len(query) - len(tokenizer(make_prompt(example))["input_ids"]) == len(trace_ids) // 2

    # Two rollouts of the prefixed prompt with different rewards (a group-normalised advantage
    # needs a difference): the true continuation and a wrong one.
    continuations = [trace[len(prefix) :], " 1.\nThe answer is 1."]
    responses = [tokenizer(c)["input_ids"] + [tokenizer.eos_token_id] for c in continuations]
    tensors = collate_rollouts([query, query], responses, tokenizer.pad_token_id)
    batch = RolloutBatch(**tensors, texts=continuations, group_ids=torch.zeros(2, dtype=torch.long))
    assert batch.response_mask.sum(dim=1).tolist() == [len(r) for r in responses]

    settings = rl_settings(
        method_env(
            "method=prefixrl",
            "method.rollouts_per_query=2",
            "method.mini_batch_size=2",
            "method.batch_size=1",
        ),
        1,
    )
    policy = FullLogits(small_model)
    exp = make_experience(policy, None, batch, torch.tensor([1.0, 0.0]), settings)
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.0)
    update_policy(
        policy, optimizer, Accelerator(cpu=True), exp, settings, torch.Generator().manual_seed(0)
    )
    grad = policy.logits.grad  # (B, T, V); position p predicts token p + 1
    tq = batch.query_length
    # Every position that predicts a prompt token, the prefix included, gets no gradient ...
    assert grad[:, : tq - 1].abs().max().item() == 0.0
    # ... and every position that predicts a sampled token does.
    for row, response in enumerate(responses):
        per_position = grad[row, tq - 1 : tq - 1 + len(response)].abs().sum(dim=-1)
        assert (per_position > 0).all()
