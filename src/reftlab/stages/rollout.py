"""Rollouts: sample completions for a batch of prompts, and score sampled tokens in one forward.

Layout of a rollout batch (B rows, prompts left-padded, responses right-padded)::

    input_ids       = [ pad pad q q q | r r r EOS pad ]
    attention_mask  = [  0   0  1 1 1 | 1 1 1  1   0  ]
    response_mask   =                 [ 1 1 1  1   0  ]

A response ends at its first EOS, which is part of the response (the policy chose to stop, and
that choice gets a logprob and a reward like any other token).

Temperature: the policy is the model's distribution at the sampling temperature,
``softmax(logits / temperature)``. Log-probs for PPO (``compute_logprobs``) divide by the same
``temperature`` that sampling used, so that old and new log-probs and the importance ratio refer
to the distribution the tokens were drawn from (the practice of TRL and verl). Nucleus
truncation (``top_p < 1``) is not folded into the log-probs. Greedy decoding ignores the
temperature for choosing tokens, but log-probs still use it.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from reftlab.models.value import PolicyWithValue, positions_from_mask, unwrap_policy
from reftlab.stages import static_decoder

DECODERS = ("hf", "static")


@dataclass
class RolloutBatch:
    """Sampled completions, ``B = len(prompts) * num_return_sequences`` rows.

    Rows of one prompt are adjacent (prompt 0's samples first) and share a ``group_ids`` value,
    the prompt's index in the ``prompts`` list given to :func:`generate`.
    """

    query_ids: torch.Tensor  # (B, Tq) left-padded prompt tokens
    response_ids: torch.Tensor  # (B, Tr) right-padded response tokens, EOS included
    input_ids: torch.Tensor  # (B, Tq + Tr) query_ids then response_ids
    attention_mask: torch.Tensor  # (B, Tq + Tr) 1 on real prompt and response tokens
    response_mask: torch.Tensor  # (B, Tr) 1 on response tokens up to and including the EOS
    texts: list[str]  # decoded responses, without prompt and special tokens
    group_ids: torch.Tensor  # (B,) index of each row's prompt
    logprobs: torch.Tensor | None = None  # (B, Tr) sampling log-probs, when asked for; 0 on pads

    @property
    def query_length(self) -> int:
        return self.query_ids.shape[1]


@dataclass(frozen=True)
class _Sampling:
    max_new_tokens: int
    temperature: float
    top_p: float
    do_sample: bool
    num_return_sequences: int
    pad_token_id: int
    eos_token_ids: tuple[int, ...]
    return_logprobs: bool


def generate(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    do_sample: bool = True,
    num_return_sequences: int = 1,
    seed: int | None = None,
    micro_batch_size: int = 64,
    decoder: str = "hf",
    return_logprobs: bool = False,
) -> RolloutBatch:
    """Sample ``num_return_sequences`` completions per prompt with the KV cache.

    ``model`` is a causal LM or a :class:`PolicyWithValue` (its LM generates). Prompts are
    encoded with the tokenizer's own special-token rule and left-padded here, whatever the
    tokenizer's ``padding_side``. Generation runs in chunks of at most ``micro_batch_size`` rows
    (so ``micro_batch_size // num_return_sequences`` prompts) to bound memory, in eval mode (no
    dropout), under ``torch.no_grad``. ``seed`` makes sampling reproducible without touching the
    global RNG. ``decoder``: ``hf`` (transformers' ``generate``) or ``static`` (reftlab's own,
    :mod:`reftlab.stages.static_decoder`).
    ``return_logprobs`` also returns the sampling log-probs (for checks; PPO should use
    :func:`compute_logprobs`, which sees the same numerics as the update).
    """
    check_generation_args(max_new_tokens, do_sample, temperature, decoder)
    lm = unwrap_policy(model)
    sampling = _Sampling(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        do_sample=do_sample,
        num_return_sequences=num_return_sequences,
        pad_token_id=pad_token_id(tokenizer),
        eos_token_ids=eos_token_ids(lm, tokenizer),
        return_logprobs=return_logprobs,
    )
    query_rows = encode_prompts(tokenizer, prompts)
    prompts_per_chunk = max(1, micro_batch_size // num_return_sequences)
    generate_chunk = _generate_hf if decoder == "hf" else _generate_static
    was_training = lm.training
    lm.eval()
    try:
        with _seeded(seed, lm.device):
            responses, logprobs = _generate_in_chunks(
                lm, query_rows, prompts_per_chunk, sampling, generate_chunk
            )
    finally:
        lm.train(was_training)

    repeated_queries = [row for row in query_rows for _ in range(num_return_sequences)]
    batch = collate_rollouts(repeated_queries, responses, sampling.pad_token_id)
    group_ids = torch.arange(len(prompts)).repeat_interleave(num_return_sequences)
    return RolloutBatch(
        **{name: tensor.to(lm.device) for name, tensor in batch.items()},
        texts=tokenizer.batch_decode(responses, skip_special_tokens=True),
        group_ids=group_ids.to(lm.device),
        logprobs=right_pad(logprobs, 0.0)[0].to(lm.device) if return_logprobs else None,
    )


def check_generation_args(
    max_new_tokens: int, do_sample: bool, temperature: float, decoder: str = "hf"
) -> None:
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder {decoder!r}; known: {', '.join(DECODERS)}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if do_sample and temperature <= 0:
        raise ValueError(
            f"temperature must be > 0 for sampling, got {temperature}; "
            "use do_sample=False for greedy decoding"
        )


def _generate_in_chunks(
    lm: PreTrainedModel,
    query_rows: Sequence[Sequence[int]],
    prompts_per_chunk: int,
    sampling: _Sampling,
    generate_chunk,
) -> tuple[list[list[int]], list[list[float]]]:
    """Response token ids (and sampling log-probs) of every prompt, `prompts_per_chunk` at a time."""
    responses: list[list[int]] = []
    logprobs: list[list[float]] = []
    for start in range(0, len(query_rows), prompts_per_chunk):
        chunk = query_rows[start : start + prompts_per_chunk]
        query_ids, query_mask = left_pad(chunk, sampling.pad_token_id)
        chunk_responses, chunk_logprobs = generate_chunk(
            lm, query_ids.to(lm.device), query_mask.to(lm.device), sampling
        )
        responses += chunk_responses
        logprobs += chunk_logprobs
    return responses, logprobs


def compute_logprobs(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    response_mask: torch.Tensor,
    temperature: float = 1.0,
    share_prompts: bool = True,
) -> torch.Tensor:
    """Log-probs ``(B, Tr)`` of the response tokens (the last ``Tr`` columns of ``input_ids``).

    One forward pass over ``(B, T)`` left-padded sequences, with the positions ``generate`` used;
    rows that share a prompt share its pass (``share_prompts``: the same numbers, less compute).
    Logits are divided by ``temperature`` (the sampling temperature; see the module docstring).
    Entries where ``response_mask`` is 0 are 0. Gradients flow unless the caller disables them.
    """
    logits, _ = _forward_response(
        model, input_ids, attention_mask, response_mask.shape[1], share_prompts
    )
    return _gather_logprobs(logits, input_ids, response_mask, temperature)


def compute_logprobs_and_values(
    model: PolicyWithValue,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    response_mask: torch.Tensor,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs and values ``(B, Tr)`` of the response tokens from one forward pass.

    ``values[:, t]`` is the critic's estimate at the state that chose response token ``t``
    (the hidden state of the token before it), aligned with ``logprobs[:, t]`` as GAE expects.
    Both are 0 where ``response_mask`` is 0.
    """
    if not isinstance(model, PolicyWithValue):
        raise TypeError(f"values need a PolicyWithValue, got {type(model).__name__}")
    logits, values = _forward_response(model, input_ids, attention_mask, response_mask.shape[1])
    logprobs = _gather_logprobs(logits, input_ids, response_mask, temperature)
    return logprobs, values * response_mask


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str]) -> list[list[int]]:
    """Token ids of each prompt, unpadded."""
    if len(prompts) == 0:
        raise ValueError("no prompts to generate from")
    rows = tokenizer(list(prompts))["input_ids"]
    empty = [i for i, row in enumerate(rows) if len(row) == 0]
    if empty:
        raise ValueError(f"prompts {empty} encode to no tokens; a prompt needs some text")
    return rows


def left_pad(rows: Sequence[Sequence[int]], pad_value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack rows right-aligned: ids ``(B, T)`` and mask ``(B, T)``, ``T`` the longest row."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row) :] = torch.as_tensor(row, dtype=torch.long)
            mask[i, width - len(row) :] = 1
    return ids, mask


def right_pad(
    rows: Sequence[Sequence[float]], pad_value: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack rows left-aligned: values ``(B, T)`` and mask ``(B, T)``; ints stay ``long``."""
    width = max(len(row) for row in rows)
    dtype = torch.long if isinstance(pad_value, int) else torch.float32
    values = torch.full((len(rows), width), pad_value, dtype=dtype)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        values[i, : len(row)] = torch.as_tensor(list(row), dtype=dtype)
        mask[i, : len(row)] = 1
    return values, mask


def truncate_at_eos(tokens: Sequence[int], eos_token_ids: Sequence[int]) -> list[int]:
    """``tokens`` up to and including the first EOS (all of them if there is none)."""
    eos = set(eos_token_ids)
    for i, token in enumerate(tokens):
        if token in eos:
            return list(tokens[: i + 1])
    return list(tokens)


def collate_rollouts(
    query_rows: Sequence[Sequence[int]],
    response_rows: Sequence[Sequence[int]],
    pad_token_id: int,
) -> dict[str, torch.Tensor]:
    """The tensors of a :class:`RolloutBatch` from unpadded prompt and response rows."""
    query_ids, query_mask = left_pad(query_rows, pad_token_id)
    response_ids, response_mask = right_pad(response_rows, pad_token_id)
    return {
        "query_ids": query_ids,
        "response_ids": response_ids,
        "input_ids": torch.cat([query_ids, response_ids], dim=1),
        "attention_mask": torch.cat([query_mask, response_mask], dim=1),
        "response_mask": response_mask,
    }


def _generate_hf(
    lm: PreTrainedModel, query_ids: torch.Tensor, query_mask: torch.Tensor, s: _Sampling
) -> tuple[list[list[int]], list[list[float]]]:
    """One chunk through transformers' ``generate``; responses cut at EOS."""
    # Explicit values for every knob a model's own generation_config may set (top_k=50 is
    # transformers' default, repetition penalties come with some checkpoints): sampling must
    # be the plain tempered distribution the log-probs assume.
    knobs = {"temperature": s.temperature, "top_p": s.top_p, "top_k": 0} if s.do_sample else {}
    output = lm.generate(
        input_ids=query_ids,
        attention_mask=query_mask,
        max_new_tokens=s.max_new_tokens,
        do_sample=s.do_sample,
        repetition_penalty=1.0,
        num_return_sequences=s.num_return_sequences,
        pad_token_id=s.pad_token_id,
        eos_token_id=list(s.eos_token_ids),
        return_dict_in_generate=True,
        output_logits=s.return_logprobs,
        **knobs,
    )
    new_tokens = output.sequences[:, query_ids.shape[1] :].tolist()
    responses = [truncate_at_eos(row, s.eos_token_ids) for row in new_tokens]
    if not s.return_logprobs:
        return responses, []
    logits = torch.stack(output.logits, dim=1).float() / s.temperature  # (B, steps, V)
    chosen = output.sequences[:, query_ids.shape[1] :, None]
    logprobs = (logits.gather(-1, chosen).squeeze(-1) - logits.logsumexp(-1)).tolist()
    return responses, [lp[: len(r)] for lp, r in zip(logprobs, responses, strict=True)]


def _generate_static(
    lm: PreTrainedModel, query_ids: torch.Tensor, query_mask: torch.Tensor, s: _Sampling
) -> tuple[list[list[int]], list[list[float]]]:
    """One chunk through reftlab's static decoder; responses cut at EOS."""
    tokens, logprobs = static_decoder.decode(lm, query_ids, query_mask, s)
    responses = [truncate_at_eos(row, s.eos_token_ids) for row in tokens.tolist()]
    if logprobs is None:
        return responses, []
    rows = logprobs.tolist()
    return responses, [lp[: len(r)] for lp, r in zip(rows, responses, strict=True)]


def _forward_response(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    response_length: int,
    share_prompts: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits ``(B, Tr, V)`` (and values ``(B, Tr)``) at the states that chose each response token.

    Token ``t`` of the response is predicted from position ``Tq + t - 1``: the slice
    ``[-Tr - 1 : -1]`` of the full sequence. A transformers causal LM on one process (not
    wrapped for data parallelism, whose gradient sync expects one forward call) runs each
    distinct prompt once when rows share prompts (``share_prompts``; see
    :func:`_forward_sharing_prompts`).
    """
    positions = positions_from_mask(attention_mask)
    keep = response_length + 1
    # A data-parallel wrapper (DDP, DeepSpeed) is called as it is, so that it syncs gradients,
    # but what it wraps decides the call.
    inner = getattr(model, "module", model)
    if isinstance(inner, PolicyWithValue):
        logits, values = model(input_ids, attention_mask, positions, logits_to_keep=keep)
        return logits[:, -keep:-1], values[:, -keep:-1]
    if isinstance(model, PreTrainedModel) and share_prompts and response_length > 1:
        logits = _forward_sharing_prompts(model, input_ids, attention_mask, positions, keep - 1)
        if logits is not None:
            return logits, None
    extra = {"logits_to_keep": keep} if _takes_logits_to_keep(inner) else {}
    logits = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=positions,
        use_cache=False,
        **extra,
    ).logits
    return logits[:, -keep:-1], None


def _forward_sharing_prompts(
    lm: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    positions: torch.Tensor,
    response_length: int,
) -> torch.Tensor | None:
    """The logits of :func:`_forward_response`, with each distinct prompt's forward pass run
    once: the rows that share a prompt (a question's rollouts) share its keys and values, and
    its last position's logits predict each row's first response token. Gradients flow back
    through the shared keys and values into the one prompt pass, as they would through the
    copies. ``None`` when no two rows share a prompt, or the model returns no cache to share.
    """
    prompt_length = input_ids.shape[1] - response_length
    prompt_rows = torch.cat([input_ids[:, :prompt_length], attention_mask[:, :prompt_length]], 1)
    prompts, prompt_of_row = torch.unique(prompt_rows, dim=0, return_inverse=True)
    if len(prompts) == len(input_ids):
        return None
    prompt_mask = prompts[:, prompt_length:]
    extra = {"logits_to_keep": 1} if _takes_logits_to_keep(lm) else {}
    prompt_pass = lm(
        input_ids=prompts[:, :prompt_length],
        attention_mask=prompt_mask,
        position_ids=positions_from_mask(prompt_mask),
        use_cache=True,
        **extra,
    )
    cache = prompt_pass.past_key_values
    if not hasattr(cache, "batch_select_indices"):  # a model that returns no reusable cache
        return None
    cache.batch_select_indices(prompt_of_row)  # one view of the prompt's K/V per row
    first = prompt_pass.logits[:, -1:][prompt_of_row]
    rest = lm(
        input_ids=input_ids[:, prompt_length:-1],
        attention_mask=attention_mask[:, :-1],
        position_ids=positions[:, prompt_length:-1],
        past_key_values=cache,
        use_cache=True,
    ).logits
    return torch.cat([first, rest], dim=1)


def _gather_logprobs(
    logits: torch.Tensor, input_ids: torch.Tensor, response_mask: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``log softmax(logits / temperature)`` at the response tokens, ``(B, Tr)``, 0 where masked."""
    response_ids = input_ids[:, -response_mask.shape[1] :]
    scaled = logits.float() / temperature
    # logsumexp instead of log_softmax: no second vocabulary-sized tensor.
    logprobs = scaled.gather(-1, response_ids[..., None]).squeeze(-1) - scaled.logsumexp(-1)
    return logprobs * response_mask


def _takes_logits_to_keep(lm: nn.Module) -> bool:
    return "logits_to_keep" in inspect.signature(lm.forward).parameters


def pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    if tokenizer.pad_token_id is not None:
        return tokenizer.pad_token_id
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has neither a pad nor an EOS token; set one")
    return tokenizer.eos_token_id


def eos_token_ids(lm: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> tuple[int, ...]:
    """The tokenizer's EOS plus any the model's generation config lists (chat models add one)."""
    ids = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    configured = lm.generation_config.eos_token_id
    if configured is not None:
        ids += configured if isinstance(configured, list) else [configured]
    if not ids:
        raise ValueError("neither the tokenizer nor the model defines an EOS token")
    return tuple(dict.fromkeys(ids))


@contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Seed torch's RNG for the block, then restore the caller's RNG state (no-op for None)."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        yield
