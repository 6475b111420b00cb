from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from reftlab.errors import ReftlabError
from reftlab.models import PolicyWithValue, disable_dropout
from reftlab.stages.rollout import (
    collate_rollouts,
    compute_logprobs,
    compute_logprobs_and_values,
    generate,
    left_pad,
    right_pad,
    truncate_at_eos,
)
from reftlab.stages.static_decoder import sample

DECODERS = ["hf", "static"]


# --- pure helpers ----------------------------------------------------------------------------


def test_left_and_right_pad():
    ids, mask = left_pad([[5, 6, 7], [8]], pad_value=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    ids, mask = right_pad([[5, 6, 7], [8]], pad_value=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert ids.dtype == torch.long
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    values, _ = right_pad([[-0.5], [-1.0, -2.0]], pad_value=0.0)
    assert values.tolist() == [[-0.5, 0.0], [-1.0, -2.0]]


def test_truncate_at_eos_keeps_the_first_eos():
    assert truncate_at_eos([4, 5, 2, 6, 2], eos_token_ids=[2]) == [4, 5, 2]
    assert truncate_at_eos([2, 4], eos_token_ids=[2]) == [2]
    assert truncate_at_eos([4, 5, 6], eos_token_ids=[2]) == [4, 5, 6]
    assert truncate_at_eos([4, 9, 5, 2], eos_token_ids=[2, 9]) == [4, 9]


def test_collate_layout():
    # pad=0, EOS=2: queries [7 8 9] and [7]; responses [3 4 2] and [5]
    batch = collate_rollouts([[7, 8, 9], [7]], [[3, 4, 2], [5]], pad_token_id=0)
    assert batch["query_ids"].tolist() == [[7, 8, 9], [0, 0, 7]]
    assert batch["response_ids"].tolist() == [[3, 4, 2], [5, 0, 0]]
    assert batch["input_ids"].tolist() == [[7, 8, 9, 3, 4, 2], [0, 0, 7, 5, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 0, 0]]
    assert batch["response_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


# --- generation with the trained fixture model -------------------------------------------------


def _prompts(trained_pairs):
    return [prompt for prompt, _ in trained_pairs]


@pytest.mark.parametrize("engine", DECODERS)
def test_greedy_is_deterministic_and_stops_at_eos(trained_model, tokenizer, trained_pairs, engine):
    prompts = _prompts(trained_pairs)
    batch = generate(trained_model, tokenizer, prompts, 12, do_sample=False, decoder=engine)
    again = generate(trained_model, tokenizer, prompts, 12, do_sample=False, decoder=engine)
    assert torch.equal(batch.response_ids, again.response_ids)
    assert batch.texts == [answer for _, answer in trained_pairs]
    eos = tokenizer.eos_token_id
    for row, mask, (_, answer) in zip(
        batch.response_ids, batch.response_mask, trained_pairs, strict=True
    ):
        length = len(tokenizer(answer)["input_ids"]) + 1  # answer digits, then EOS
        assert mask.tolist() == [1] * length + [0] * (len(mask) - length)
        assert row[length - 1] == eos
    # Stopped at the longest answer + EOS instead of running to max_new_tokens.
    longest = max(len(tokenizer(a)["input_ids"]) for _, a in trained_pairs) + 1
    assert batch.response_ids.shape[1] == longest < 12


def test_engines_agree_under_greedy(trained_model, tokenizer, trained_pairs):
    prompts = _prompts(trained_pairs) + ["Ann has 12 pens and", "Q: 3 + 3 = "]
    hf = generate(trained_model, tokenizer, prompts, 10, do_sample=False, decoder="hf")
    static = generate(trained_model, tokenizer, prompts, 10, do_sample=False, decoder="static")
    assert torch.equal(hf.input_ids, static.input_ids)
    assert torch.equal(hf.response_mask, static.response_mask)
    assert hf.texts == static.texts


@pytest.mark.parametrize("engine", DECODERS)
def test_left_padding_does_not_change_greedy_continuation(build_small, tokenizer, engine):
    model = build_small(seed=3)  # untrained: continuations are long and arbitrary
    short = "Tom has 3"
    longer = "Mia has 865 apples and buys 395 more. How many apples does Mia have now?"
    alone = generate(model, tokenizer, [short], 15, do_sample=False, decoder=engine)
    batched = generate(model, tokenizer, [longer, short], 15, do_sample=False, decoder=engine)
    assert batched.query_ids[1, 0] == tokenizer.pad_token_id  # the short prompt was padded
    assert batched.texts[1] == alone.texts[0]
    n = alone.response_mask.sum()
    assert torch.equal(batched.response_ids[1, :n], alone.response_ids[0, :n])


@pytest.mark.parametrize("engine", DECODERS)
def test_micro_batches_give_the_same_rollouts(trained_model, tokenizer, trained_pairs, engine):
    prompts = _prompts(trained_pairs) + ["Ann has 12 pens and"]
    whole = generate(trained_model, tokenizer, prompts, 8, do_sample=False, decoder=engine)
    chunked = generate(
        trained_model, tokenizer, prompts, 8, do_sample=False, decoder=engine, micro_batch_size=2
    )
    assert torch.equal(whole.input_ids, chunked.input_ids)
    assert torch.equal(whole.attention_mask, chunked.attention_mask)


@pytest.mark.parametrize("engine", DECODERS)
def test_masks_and_layout_of_sampled_batch(trained_model, tokenizer, trained_pairs, engine):
    prompts = _prompts(trained_pairs) + ["Ann has 12 pens and"]
    batch = generate(
        trained_model, tokenizer, prompts, 10, temperature=1.5, decoder=engine, seed=0,
        num_return_sequences=3,
    )  # fmt: skip
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    assert batch.group_ids.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    queries = batch.query_ids.view(5, 3, -1)
    assert torch.equal(queries, queries[:, :1].expand_as(queries))
    tq = batch.query_length
    assert torch.equal(batch.input_ids[:, :tq], batch.query_ids)
    assert torch.equal(batch.input_ids[:, tq:], batch.response_ids)
    assert torch.equal(batch.attention_mask[:, tq:], batch.response_mask)
    assert torch.equal(batch.attention_mask[:, :tq], (batch.query_ids != pad).long())
    saw_early_stop = False
    for row, mask in zip(batch.response_ids.tolist(), batch.response_mask.tolist(), strict=True):
        end = row.index(eos) + 1 if eos in row else len(row)
        assert mask == [1] * end + [0] * (len(row) - end)  # 1 through the first EOS, then 0
        assert row[end:] == [pad] * (len(row) - end)
        saw_early_stop |= end < len(row)
    assert saw_early_stop
    assert all("</s>" not in text and "<pad>" not in text for text in batch.texts)


@pytest.mark.parametrize("engine", DECODERS)
def test_seeded_sampling_is_reproducible(build_small, tokenizer, engine):
    model = build_small(seed=3)
    prompts = ["Tom has 3", "Ann has"]
    torch.manual_seed(5)
    expected_next = torch.rand(2)
    torch.manual_seed(5)
    first = generate(model, tokenizer, prompts, 12, decoder=engine, seed=11, num_return_sequences=2)
    assert torch.equal(torch.rand(2), expected_next)  # the caller's RNG stream is untouched
    second = generate(
        model, tokenizer, prompts, 12, decoder=engine, seed=11, num_return_sequences=2
    )
    other = generate(model, tokenizer, prompts, 12, decoder=engine, seed=12, num_return_sequences=2)
    assert torch.equal(first.input_ids, second.input_ids)
    assert not torch.equal(first.response_ids[:, :4], other.response_ids[:, :4])


def test_top_p_keeps_only_the_nucleus(build_small, tokenizer):
    # A tiny nucleus keeps only the most likely token: sampling becomes greedy decoding.
    model = build_small(seed=3)
    prompts = ["Tom has 3", "Ann has"]
    greedy = generate(model, tokenizer, prompts, 10, do_sample=False)
    for engine in DECODERS:
        nucleus = generate(model, tokenizer, prompts, 10, top_p=1e-6, seed=0, decoder=engine)
        assert torch.equal(nucleus.input_ids, greedy.input_ids), engine


# --- log-probs and values ----------------------------------------------------------------------


@pytest.mark.parametrize("engine", DECODERS)
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_compute_logprobs_matches_generation_scores(
    build_small, tokenizer, trained_pairs, engine, temperature
):
    model = build_small(seed=3)
    prompts = _prompts(trained_pairs) + ["Mia has 865 apples and buys 395 more."]
    batch = generate(
        model, tokenizer, prompts, 12, temperature=temperature, seed=1, decoder=engine,
        return_logprobs=True,
    )  # fmt: skip
    with torch.no_grad():
        logprobs = compute_logprobs(
            model, batch.input_ids, batch.attention_mask, batch.response_mask, temperature
        )
    assert logprobs.shape == batch.response_ids.shape
    torch.testing.assert_close(logprobs, batch.logprobs, atol=1e-4, rtol=0)
    assert torch.equal(logprobs == 0, batch.response_mask == 0)  # real tokens have p < 1
    # A different temperature is a different distribution: the check above can fail.
    with torch.no_grad():
        other = compute_logprobs(
            model, batch.input_ids, batch.attention_mask, batch.response_mask, temperature + 0.5
        )
    assert (other - batch.logprobs).abs().max() > 1e-2


def test_tokens_after_eos_do_not_change_logprobs(trained_model, tokenizer, trained_pairs):
    batch = generate(trained_model, tokenizer, _prompts(trained_pairs), 8, do_sample=False)
    padded = batch.response_mask == 0
    assert padded.any()
    scrambled = batch.input_ids.clone()
    scrambled[:, batch.query_length :][padded] = 77
    args = (batch.attention_mask, batch.response_mask)
    with torch.no_grad():
        torch.testing.assert_close(
            compute_logprobs(trained_model, scrambled, *args),
            compute_logprobs(trained_model, batch.input_ids, *args),
        )


@pytest.mark.parametrize("value_model", ["head", "separate"])
def test_logprobs_and_values_from_one_forward(build_small, tokenizer, value_model):
    policy_lm = build_small(seed=3)
    model = PolicyWithValue(policy_lm, value_model)
    with torch.no_grad():
        model.value_head.weight.normal_(generator=torch.Generator().manual_seed(0))
    batch = generate(model, tokenizer, ["Tom has 3", "Mia has 865 apples and"], 6, seed=0)
    args = (batch.input_ids, batch.attention_mask, batch.response_mask)
    logprobs, values = compute_logprobs_and_values(model, *args)
    assert logprobs.shape == values.shape == batch.response_ids.shape
    torch.testing.assert_close(logprobs, compute_logprobs(policy_lm, *args))
    # values[:, t] is the critic at the token before response token t.
    _, all_values = model(batch.input_ids, batch.attention_mask)
    tq, tr = batch.query_length, batch.response_ids.shape[1]
    torch.testing.assert_close(values, all_values[:, tq - 1 : tq + tr - 1] * batch.response_mask)
    assert values.abs().sum() > 0
    logprobs.sum().backward()
    assert model.policy.model.embed_tokens.weight.grad is not None


def test_values_need_a_policy_with_value(build_small, tokenizer):
    batch = generate(build_small(), tokenizer, ["Tom has 3"], 3, do_sample=False)
    with pytest.raises(TypeError, match="PolicyWithValue"):
        compute_logprobs_and_values(
            build_small(), batch.input_ids, batch.attention_mask, batch.response_mask
        )


def test_bad_arguments_fail_clearly(build_small, tokenizer):
    model = build_small()
    with pytest.raises(ValueError, match="known: hf, static"):
        generate(model, tokenizer, ["Tom"], 3, decoder="vllm")
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, tokenizer, ["Tom"], 0)
    with pytest.raises(ValueError, match="do_sample=False"):
        generate(model, tokenizer, ["Tom"], 3, temperature=0.0)
    with pytest.raises(ValueError, match="encode to no tokens"):
        generate(model, tokenizer, ["Tom", ""], 3)


def _gpt2(tokenizer):
    config = GPT2Config(
        vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=4, n_positions=128,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GPT2LMHeadModel(config)
    disable_dropout(model)  # GPT-2 has dropout; the sampling passes run without it
    return model


def test_absolute_position_model_sees_sampling_positions(tokenizer):
    engine = "hf"  # the static decoder runs the Llama layout only (refused below)
    # RoPE models ignore a constant position offset; GPT-2's learned positions do not, so this
    # checks that left-padded rows are scored at the positions they were sampled at.
    model = _gpt2(tokenizer)
    short, longer = "Tom has 3", "Mia has 865 apples and buys 395 more. How many apples?"
    alone = generate(model, tokenizer, [short], 8, do_sample=False, decoder=engine)
    batched = generate(model, tokenizer, [longer, short], 8, do_sample=False, decoder=engine)
    assert batched.texts[1] == alone.texts[0]
    sampled = generate(
        model, tokenizer, [longer, short], 8, seed=0, decoder=engine, return_logprobs=True
    )
    with torch.no_grad():
        logprobs = compute_logprobs(
            model, sampled.input_ids, sampled.attention_mask, sampled.response_mask
        )
    torch.testing.assert_close(logprobs, sampled.logprobs, atol=1e-4, rtol=0)


# --- the static decoder -------------------------------------------------------------------------


def test_static_decoder_refuses_other_layouts_in_one_line(tokenizer):
    with pytest.raises(ReftlabError, match="gpt2: use rollout.engine=hf or rollout.engine=vllm"):
        generate(_gpt2(tokenizer), tokenizer, ["Tom has 3"], 4, decoder="static")


def test_static_sampler_draws_each_token_at_its_probability():
    probs = torch.tensor([0.5, 0.0, 0.3, 0.2, 0.0])
    logits = probs.clamp_min(1e-30).log().expand(40_000, -1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        tokens = sample(logits, temperature=1.0, top_p=1.0, do_sample=True)
    frequency = torch.bincount(tokens, minlength=5).float() / len(tokens)
    torch.testing.assert_close(frequency, probs, atol=0.01, rtol=0)  # 5 sigma is 0.0125
    # Temperature 2 flattens: p_i ** (1/2), renormalised.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        tokens = sample(logits, temperature=2.0, top_p=1.0, do_sample=True)
    tempered = probs.sqrt() / probs.sqrt().sum()
    frequency = torch.bincount(tokens, minlength=5).float() / len(tokens)
    torch.testing.assert_close(frequency, tempered, atol=0.01, rtol=0)
    # The nucleus of 0.7 keeps 0.5 and 0.3 (the mass before 0.3 is 0.5 < 0.7), renormalised.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        tokens = sample(logits, temperature=1.0, top_p=0.7, do_sample=True)
    frequency = torch.bincount(tokens, minlength=5).float() / len(tokens)
    torch.testing.assert_close(frequency, torch.tensor([0.625, 0, 0.375, 0, 0]), atol=0.01, rtol=0)


def test_static_decoder_samples_the_weights_it_is_given(build_small, tokenizer):
    # No sync step: after the weights change, its greedy continuation is the new model's.
    model = build_small(seed=3)
    prompts = ["Tom has 3", "Mia has 865 apples and buys 395 more."]
    before = generate(model, tokenizer, prompts, 10, do_sample=False, decoder="static")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.2)
    after = generate(model, tokenizer, prompts, 10, do_sample=False, decoder="static")
    reference = generate(model, tokenizer, prompts, 10, do_sample=False, decoder="hf")
    assert torch.equal(after.input_ids, reference.input_ids)
    assert not torch.equal(
        after.response_ids, before.response_ids[:, : after.response_ids.shape[1]]
    )


def _layout(tokenizer, kind: str):
    """Small random models of the other Llama-family layouts: grouped-query attention with
    biases in every projection (Llama's `attention_bias`, `mlp_bias`), Qwen2 (q, k and v
    biases, its own rotary base) and Mistral."""
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        MistralConfig,
        MistralForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    common = dict(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4)
        if kind == "qwen2":
            model = Qwen2ForCausalLM(Qwen2Config(**common, rope_theta=1e6))
        elif kind == "mistral":
            model = MistralForCausalLM(MistralConfig(**common, sliding_window=None))
        else:
            model = LlamaForCausalLM(LlamaConfig(**common, attention_bias=True, mlp_bias=True))
        for parameter in model.parameters():  # biases start at 0; give them something to do
            parameter.data.normal_(0, 0.2)
    return model.eval()


@pytest.mark.parametrize("kind", ["llama_gqa_bias", "qwen2", "mistral"])
def test_static_decoder_runs_grouped_query_heads_and_biases_as_the_model_does(tokenizer, kind):
    model = _layout(tokenizer, kind)
    prompts = ["Tom has 3", "Mia has 865 apples and buys 395 more. How many apples?"]
    hf = generate(model, tokenizer, prompts, 12, do_sample=False, decoder="hf")
    static = generate(model, tokenizer, prompts, 12, do_sample=False, decoder="static")
    assert torch.equal(hf.input_ids, static.input_ids)
    sampled = generate(
        model, tokenizer, prompts, 12, seed=0, decoder="static", return_logprobs=True,
        num_return_sequences=2,
    )  # fmt: skip
    with torch.no_grad():
        logprobs = compute_logprobs(
            model, sampled.input_ids, sampled.attention_mask, sampled.response_mask
        )
    torch.testing.assert_close(logprobs, sampled.logprobs, atol=1e-4, rtol=0)


# --- rows that share a prompt share its forward pass ---------------------------------------------


def test_rows_sharing_a_prompt_give_the_plain_logprobs_and_gradients(build_small, tokenizer):
    model = build_small(seed=3)
    prompts = ["Tom has 3", "Mia has 865 apples and buys 395 more.", "Ann has"]
    batch = generate(model, tokenizer, prompts, 9, seed=0, num_return_sequences=3)
    assert batch.query_ids[0, 0] == tokenizer.pad_token_id  # left padding is in play
    weights = torch.randn(batch.response_ids.shape, generator=torch.Generator().manual_seed(0))
    results = []
    for share in (True, False):
        model.zero_grad()
        logprobs = compute_logprobs(
            model, batch.input_ids, batch.attention_mask, batch.response_mask,
            temperature=0.8, share_prompts=share,
        )  # fmt: skip
        (logprobs * weights).sum().backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters()])
        results.append((logprobs.detach(), grads))
    (shared, shared_grads), (plain, plain_grads) = results
    torch.testing.assert_close(shared, plain, atol=1e-5, rtol=0)
    torch.testing.assert_close(shared_grads, plain_grads, atol=1e-5, rtol=1e-4)
    assert plain_grads.abs().max() > 1e-3  # the comparison is of real gradients


def test_a_shared_prompt_pass_runs_each_distinct_prompt_once(build_small, tokenizer):
    model = build_small(seed=3)
    batch = generate(model, tokenizer, ["Tom has 3", "Ann has"], 6, seed=0, num_return_sequences=4)
    rows_seen = []
    hook = model.model.embed_tokens.register_forward_hook(
        lambda module, args, out: rows_seen.append(tuple(args[0].shape))
    )
    with torch.no_grad():
        compute_logprobs(model, batch.input_ids, batch.attention_mask, batch.response_mask)
    hook.remove()
    prompt_length, response_length = batch.query_length, batch.response_ids.shape[1]
    assert rows_seen == [(2, prompt_length), (8, response_length - 1)]
