"""The vLLM rollout engine, colocated in the training process (``rollout.engine=vllm``).

    engine = VLLMEngine(settings)                            # nothing starts yet
    batch = engine.generate(policy, tokenizer, prompts, ...)  # starts vLLM from the policy, samples
    optimizer.step()                                         # the policy changes in place
    batch = engine.generate(policy, tokenizer, prompts, ...)  # loads the new weights, samples

**Start.** vLLM gets the policy's config (written to a temporary folder) with
``load_format="dummy"``, so it reads no weights from disk; the policy's weights then go in through
the same in-memory path that every update uses.

**Weight sync, in memory.** ``collective_rpc("reload_weights", weights_iterator=...)`` is vLLM's
in-place reload: it streams the policy's tensors into the engine's parameters and then runs the
post-processing its kernels need (the CPU backend repacks linear weights; a bare
``model.load_weights`` skips that and fails there). Nothing is written to disk.

**When.** Every in-place change of a tensor (an optimizer step, a checkpoint loaded into it) bumps
its ``_version`` counter. The engine remembers the identity and version of every parameter it last
loaded and reloads before it samples when any of them differs: after each optimizer step that
changed the policy the next sample sees the new weights, and PPO's several minibatch steps between
two rollouts cost one sync.

**Several processes.** Each rank runs its own engine on its own device (vLLM's
``external_launcher``, tensor parallel size 1) and samples its own shards of the step, from the
weights of its own replica, which data parallelism keeps equal on every rank.

**Log-probs.** vLLM returns the log-prob of each sampled token after temperature
(``logprobs_mode="processed_logprobs"``), the distribution the trainer's log-probs refer to; the RL
stage logs their gap to the trainer's and can correct it by truncated importance sampling.

**Seeds.** On a GPU each prompt's samples have their own seed, derived from the call's ``seed``
and the prompt's position. On a CPU the call seeds torch's generator instead: vLLM rewinds a
request's own generator when it discards a token sampled mid-prompt (a prompt prefilled over
several scheduler steps), which only CUDA generators can do ("CPU Generator does not use
offset"). Either way the same seed draws the same samples, run after run. Starting vLLM seeds the
process's random generators, and sampling draws from them too; the caller's generator states are
restored after both, so that training draws the same numbers whichever engine samples.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import random
import tempfile
import warnings
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from reftlab.errors import ReftlabError
from reftlab.models.value import unwrap_policy
from reftlab.stages.engines import INSTALL_VLLM, VLLMSettings
from reftlab.stages.rollout import (
    RolloutBatch,
    check_generation_args,
    collate_rollouts,
    encode_prompts,
    eos_token_ids,
    pad_token_id,
    right_pad,
    truncate_at_eos,
)

# The engine runs inside this process (it must: the weights reach it as tensors in memory).
os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
# vLLM's start-up chatter would bury the run's own progress lines; VLLM_LOGGING_LEVEL=INFO shows it.
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

WeightsVersion = tuple[tuple[int, int, int], ...]


def weights_version(lm: nn.Module) -> WeightsVersion:
    """What changes whenever ``lm``'s weights change in place: each parameter's identity,
    storage and version counter."""
    return tuple((id(p), p.data_ptr(), p._version) for p in lm.parameters())


def request_seed(seed: int, prompt_index: int) -> int:
    """The seed of one prompt's samples: distinct per prompt, a pure function of both."""
    return (seed * 1_000_003 + prompt_index) % (2**31 - 1)


def quiet_vllm() -> None:
    """vLLM's own loggers at VLLM_LOGGING_LEVEL (ERROR unless set) also under Hydra, which
    routes every logger to the run's log; and no deprecation notices from inside vLLM."""
    logging.getLogger("vllm").setLevel(os.environ["VLLM_LOGGING_LEVEL"].upper())
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"vllm\.")


def check_head_size(lm: PreTrainedModel) -> None:
    """On a CPU, the attention head sizes vLLM's kernels have (the tiny models of tests can be
    narrower); vLLM itself would fail only at the first sample, deep inside a kernel."""
    if lm.device.type != "cpu":
        return
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    config = lm.config
    head_size = getattr(config, "head_dim", None) or (
        config.hidden_size // config.num_attention_heads
    )
    supported = CPUAttentionBackend.get_supported_head_sizes()
    if head_size not in supported:
        raise ReftlabError(
            f"rollout.engine=vllm: the model's attention head size {head_size} is not one that "
            f"vLLM's CPU kernels run ({', '.join(map(str, supported))}); use rollout.engine=hf"
        )


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Restore Python's, NumPy's and torch's global random states after the block."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


class VLLMEngine:
    """A colocated vLLM engine that follows the weights of the model it samples from."""

    name = "vllm"

    def __init__(self, s: VLLMSettings) -> None:
        self.s = s
        self.llm = None
        self._config_json: str | None = None
        # The model whose weights the engine holds (a weak reference: a freed model's ids and
        # storage can be reused by the next one), and their version when they were loaded.
        self._source: weakref.ref | None = None
        self._loaded: WeightsVersion | None = None
        self._folder: tempfile.TemporaryDirectory | None = None
        self.syncs = 0  # weight loads so far, the first one included

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
        """Like :func:`reftlab.stages.rollout.generate`, from vLLM, with the sampling log-probs
        in ``logprobs`` (sampled rows) and responses cut at the first EOS, EOS included."""
        check_generation_args(max_new_tokens, do_sample, temperature)
        lm = unwrap_policy(model)
        self._follow(lm)
        eos = eos_token_ids(lm, tokenizer)
        pad = pad_token_id(tokenizer)
        query_rows = encode_prompts(tokenizer, prompts)
        per_request = lm.device.type == "cuda"  # see "Seeds" in the module docstring
        params = [
            self._sampling_params(
                max_new_tokens, temperature, top_p, do_sample, num_return_sequences, eos, s
            )
            for s in self._seeds(seed if per_request else None, len(query_rows))
        ]
        # vLLM draws from the global generators (for unseeded requests all their randomness).
        with preserved_rng():
            if seed is not None and not per_request:
                torch.manual_seed(seed)
            outputs = self.llm.generate(
                [{"prompt_token_ids": row} for row in query_rows], params, use_tqdm=False
            )
        responses, logprobs = [], []
        for output in outputs:
            for completion in output.outputs:
                tokens = truncate_at_eos(list(completion.token_ids), eos)
                responses.append(tokens)
                if do_sample:
                    steps = completion.logprobs[: len(tokens)]
                    logprobs.append(
                        [step[t].logprob for step, t in zip(steps, tokens, strict=True)]
                    )
        repeated = [row for row in query_rows for _ in range(num_return_sequences)]
        batch = collate_rollouts(repeated, responses, pad)
        group_ids = torch.arange(len(prompts)).repeat_interleave(num_return_sequences)
        device = lm.device
        return RolloutBatch(
            **{name: tensor.to(device) for name, tensor in batch.items()},
            texts=tokenizer.batch_decode(responses, skip_special_tokens=True),
            group_ids=group_ids.to(device),
            logprobs=right_pad(logprobs, 0.0)[0].to(device) if do_sample else None,
        )

    def close(self) -> None:
        """Drop the engine (a later ``generate`` starts a new one)."""
        self.llm, self._source, self._loaded, self._config_json = None, None, None, None
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None
        gc.collect()

    # --- weights ---

    def _follow(self, lm: PreTrainedModel) -> None:
        """Start the engine for ``lm``'s architecture, then load ``lm``'s weights if they are
        not the ones it holds."""
        config_json = lm.config.to_json_string()
        if self.llm is None or config_json != self._config_json:
            self.close()
            self._start(lm)
            self._config_json = config_json
        version = weights_version(lm)
        same_model = self._source is not None and self._source() is lm
        if not same_model or version != self._loaded:
            self._load_weights(lm)
            self._source, self._loaded = weakref.ref(lm), version

    def _load_weights(self, lm: PreTrainedModel) -> None:
        tensors = [(name, tensor.detach()) for name, tensor in lm.state_dict().items()]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(tensors)})
        self.syncs += 1

    def _start(self, lm: PreTrainedModel) -> None:
        quiet_vllm()
        try:
            from vllm import LLM
        except ImportError as exc:
            raise ReftlabError(
                f"rollout.engine=vllm cannot import vLLM ({exc}); {INSTALL_VLLM}"
            ) from None
        check_head_size(lm)
        self._folder = tempfile.TemporaryDirectory(prefix="reftlab-vllm-")
        folder = Path(self._folder.name)
        lm.config.save_pretrained(folder)
        lm.generation_config.save_pretrained(folder)
        try:
            with preserved_rng():
                self.llm = LLM(model=str(folder), **self._engine_args(lm))
        except Exception as exc:  # vLLM raises many types; the user needs its message and a fix
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ReftlabError(
                f"rollout.engine=vllm could not start: {first}; check rollout.vllm (dtype, "
                "cpu_kv_cache_gb or gpu_memory_utilization, max_num_seqs) or use "
                "rollout.engine=hf"
            ) from exc

    def _engine_args(self, lm: PreTrainedModel) -> dict:
        s = self.s
        dtype = s.dtype if s.dtype != "auto" else str(next(lm.parameters()).dtype).split(".")[-1]
        args = {
            "skip_tokenizer_init": True,  # prompts go in as token ids, responses come out as ids
            "load_format": "dummy",  # the weights come from the policy, in memory
            "dtype": dtype,
            "seed": s.seed,
            "enforce_eager": s.enforce_eager,
            "max_model_len": lm.config.max_position_embeddings,
            "max_num_seqs": s.max_num_seqs,
            "logprobs_mode": "processed_logprobs",
        }
        if lm.device.type == "cuda":
            args["gpu_memory_utilization"] = s.gpu_memory_utilization
        else:
            args["kv_cache_memory_bytes"] = int(s.cpu_kv_cache_gb * 2**30)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            if torch.distributed.get_world_size() > 1:
                args["distributed_executor_backend"] = "external_launcher"
        return args

    # --- sampling ---

    @staticmethod
    def _seeds(seed: int | None, n_prompts: int) -> list[int | None]:
        return [None if seed is None else request_seed(seed, i) for i in range(n_prompts)]

    @staticmethod
    def _sampling_params(
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        do_sample: bool,
        n: int,
        eos: Sequence[int],
        seed: int | None,
    ):
        from vllm import SamplingParams

        # Every knob explicit, as in the hf engine: the plain tempered distribution (no top-k,
        # no penalties), stopping at any EOS, token ids only.
        return SamplingParams(
            n=n,
            temperature=temperature if do_sample else 0.0,
            top_p=top_p if do_sample else 1.0,
            top_k=0,
            repetition_penalty=1.0,
            max_tokens=max_new_tokens,
            stop_token_ids=list(eos),
            seed=seed,
            logprobs=0 if do_sample else None,
            detokenize=False,
        )
