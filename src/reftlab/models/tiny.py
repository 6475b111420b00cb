"""The embedded tiny model: a small Llama-style decoder built from a config with random weights."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase


def build_tiny_model(
    tokenizer: PreTrainedTokenizerBase,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    intermediate_size: int,
    max_position_embeddings: int,
    seed: int,
    tie_word_embeddings: bool = True,
) -> LlamaForCausalLM:
    """A randomly initialised ``LlamaForCausalLM`` sized for ``tokenizer``, reproducible by ``seed``.

    Input and output embeddings are tied by default: with a vocabulary of a few hundred tokens
    an untied head would add parameters that learn nothing the embedding does not. The global
    torch RNG is left as it was. Parameter count: see :func:`count_tiny_parameters`.
    """
    if hidden_size % num_heads != 0:
        raise ValueError(
            f"hidden_size={hidden_size} is not divisible by num_heads={num_heads}; "
            "pick model.num_heads that divides model.hidden_size"
        )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def count_tiny_parameters(
    vocab_size: int,
    hidden_size: int,
    num_layers: int,
    intermediate_size: int,
    tie_word_embeddings: bool = True,
) -> int:
    """Parameters of :func:`build_tiny_model`, for sizing a run before building it.

    Per layer: q, k, v, o projections (4 h^2), gate/up/down MLP (3 h i), two RMSNorm weights
    (2 h); plus the embedding (V h), the final norm (h) and, if untied, the output head (V h).
    """
    per_layer = 4 * hidden_size**2 + 3 * hidden_size * intermediate_size + 2 * hidden_size
    embeddings = vocab_size * hidden_size * (1 if tie_word_embeddings else 2)
    return num_layers * per_layer + embeddings + hidden_size
