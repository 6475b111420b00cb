from __future__ import annotations

import pytest
import torch

from reftlab.models import build_tiny_model, count_tiny_parameters


def _build(tokenizer, seed=0, tie=True, hidden=32, heads=4):
    return build_tiny_model(
        tokenizer,
        hidden_size=hidden,
        num_layers=2,
        num_heads=heads,
        intermediate_size=64,
        max_position_embeddings=128,
        seed=seed,
        tie_word_embeddings=tie,
    )


def _num_params(model) -> int:
    # parameters() lists a tied weight once.
    return sum(p.numel() for p in model.parameters())


def test_parameter_count_formula(tokenizer):
    vocab = len(tokenizer)
    h, i, layers = 32, 64, 2
    per_layer = 4 * h * h + 3 * h * i + 2 * h  # q,k,v,o + gate,up,down + two RMSNorms
    assert per_layer == 4096 + 6144 + 64
    assert _num_params(_build(tokenizer)) == layers * per_layer + vocab * h + h
    assert _num_params(_build(tokenizer, tie=False)) == layers * per_layer + 2 * vocab * h + h
    assert count_tiny_parameters(vocab, h, layers, i) == layers * per_layer + vocab * h + h


def test_reference_sizes():
    # hidden 256 x 4 layers, MLP 1024, vocab 400: 4 * (4*256^2 + 3*256*1024 + 2*256) + 400*256 + 256
    assert count_tiny_parameters(400, 256, 4, 1024) == 4 * (262144 + 786432 + 512) + 102400 + 256
    assert count_tiny_parameters(400, 256, 4, 1024) == 4_299_008  # the "4.3M" model
    # hidden 128 x 2 layers, MLP 512, vocab 512 (conf/model/tiny.yaml)
    assert count_tiny_parameters(512, 128, 2, 512) == 2 * (65536 + 196608 + 256) + 65536 + 128


def test_config_matches_tokenizer(tokenizer):
    model = _build(tokenizer)
    assert model.config.vocab_size == len(tokenizer)
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    assert model.lm_head.weight is model.model.embed_tokens.weight


def test_seed_reproducible_and_global_rng_untouched(tokenizer):
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = _build(tokenizer, seed=7)
    assert torch.equal(torch.rand(3), expected_next)
    second = _build(tokenizer, seed=7)
    other = _build(tokenizer, seed=8)
    for (name, a), b in zip(first.named_parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b), name
    embed = "model.embed_tokens.weight"
    assert not torch.equal(first.get_parameter(embed), other.get_parameter(embed))


def test_heads_must_divide_hidden(tokenizer):
    with pytest.raises(ValueError, match="not divisible by num_heads=3"):
        _build(tokenizer, hidden=32, heads=3)
