"""What the training loops feed their models: encoded (prompt, completion) pairs, collated
batches, the completion NLL, and which rows or questions each step takes.

Shared by SFT, online self-training, the reward model and the RL engine, which import it rather
than each other. A prompt and its completion are tokenised apart and concatenated, exactly as
generation sees them (prompt alone, then the model's continuation), and the completion ends with
EOS so that the model learns to stop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import torch

IGNORE_INDEX = -100

T = TypeVar("T")


def encode_pairs(
    tokenizer, prompts: Sequence[str], completions: Sequence[str], max_length: int
) -> list[tuple[list[int], int]]:
    """Token ids of prompt + completion + EOS and the prompt length, cut to `max_length`."""
    prompt_ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(list(completions), add_special_tokens=False)["input_ids"]
    encoded = []
    for p, c in zip(prompt_ids, completion_ids, strict=True):
        ids = (p + c + [tokenizer.eos_token_id])[:max_length]
        encoded.append((ids, min(len(p), len(ids))))
    return encoded


def collate(encoded: Sequence[tuple[list[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded `input_ids`, `attention_mask` and `labels` (prompt and padding ignored)."""
    width = max(len(ids) for ids, _ in encoded)
    input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, (ids, prompt_len) in enumerate(encoded):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
        labels[row, prompt_len : len(ids)] = torch.tensor(ids[prompt_len:])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def completion_nll(model, batch: dict[str, torch.Tensor], reduction: str = "mean") -> torch.Tensor:
    """Negative log-likelihood of the completion tokens (labels != IGNORE_INDEX): their mean,
    or their sum with `reduction="sum"`."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    shift_logits = logits[:, :-1].float()
    shift_labels = batch["labels"][:, 1:]
    return torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)),
        shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction=reduction,
    )


def count_target_tokens(encoded: Sequence[tuple[list[int], int]]) -> int:
    """How many tokens `completion_nll` scores in the collated `encoded` rows: the completion
    tokens after the first position (position 0 predicts nothing)."""
    return sum(len(ids) - max(prompt_len, 1) for ids, prompt_len in encoded)


# --- which rows a step takes ------------------------------------------------------------------


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """A permutation of range(n), fresh for every epoch (SFT and the reward model)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


def step_rows(n: int, step: int, batch_size: int, seed: int) -> list[int]:
    """The rows of step `step` of passes over `n` rows in batches of `batch_size` (the last
    batch of an epoch may be smaller), in `epoch_order`."""
    epoch, index = divmod(step, math.ceil(n / batch_size))
    return epoch_order(n, seed, epoch)[index * batch_size : (index + 1) * batch_size]


def epoch_position(step: int, steps_per_epoch: int) -> float:
    """Epochs done after step `step` (0-based): 1.0 at the end of the first epoch."""
    epoch, index = divmod(step, steps_per_epoch)
    return epoch + (index + 1) / steps_per_epoch


def question_batch(examples: Sequence[T], step: int, batch_size: int, seed: int) -> list[T]:
    """The questions of RL step `step`: a fresh permutation every pass over the data."""
    per_epoch = math.ceil(len(examples) / batch_size)
    epoch, index = divmod(step, per_epoch)
    generator = torch.Generator().manual_seed(seed * 7919 + epoch)
    order = torch.randperm(len(examples), generator=generator).tolist()
    return [examples[i] for i in order[index * batch_size : (index + 1) * batch_size]]


def step_seed(seed: int, step: int) -> int:
    """Sampling and shuffling seed of one step: reproducible, and the same after a resume."""
    return seed * 1_000_003 + step
