"""Model loading: the embedded tiny model and its tokenizer, real pretrained models, value heads."""

from __future__ import annotations

from reftlab.models.pretrained import (
    find_packaged_gguf,
    load_packaged_gguf,
    load_pretrained,
    prepare_tokenizer_for_generation,
    resolve_dtype,
)
from reftlab.models.tiny import build_tiny_model, count_tiny_parameters
from reftlab.models.tokenizer import build_tokenizer, get_or_build_tokenizer
from reftlab.models.value import (
    VALUE_MODELS,
    PolicyWithValue,
    disable_dropout,
    make_reference,
    positions_from_mask,
    unwrap_policy,
)

__all__ = [
    "VALUE_MODELS",
    "PolicyWithValue",
    "build_tiny_model",
    "build_tokenizer",
    "count_tiny_parameters",
    "disable_dropout",
    "find_packaged_gguf",
    "get_or_build_tokenizer",
    "load_packaged_gguf",
    "load_pretrained",
    "make_reference",
    "positions_from_mask",
    "prepare_tokenizer_for_generation",
    "resolve_dtype",
    "unwrap_policy",
]
