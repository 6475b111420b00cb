"""Supervised fine-tuning on (prompt, completion) pairs, loss on the completion tokens only.

Used by every method: the SFT baseline, the warm-up before RL, the second pass of offline
self-training. The prompt and the completion are tokenised apart and concatenated, exactly as
generation sees them (prompt alone, then the model's continuation), and the completion ends with
EOS so that the model learns to stop.

Several processes (and `grad_accum`): a step's rows are split into `processes x grad_accum`
contiguous shards (`runtime.distributed`). Each shard's loss is its summed token NLL divided by
the token count of the whole step's batch (times the process count, which DDP's gradient
averaging divides out), so the summed gradient is that of the token mean over the whole batch:
the same step as one process on the whole batch, up to float summation order.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from reftlab.runtime import distributed
from reftlab.runtime.context import RunContext
from reftlab.runtime.trainer_state import grad_norm_value, resume_training, save_trainer_state

IGNORE_INDEX = -100


@dataclass(frozen=True)
class SFTSettings:
    epochs: int
    lr: float
    batch_size: int
    max_length: int
    seed: int
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    warmup_fraction: float = 0.03
    grad_accum: int = 1


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


def shard_loss(
    model, batch, weight: float, n_tokens: int, processes: int, n_shards: int
) -> tuple[torch.Tensor, float]:
    """(loss to back-propagate, summed NLL to log) of one shard of a step's batch.

    The shard's summed token NLL over the step's `n_tokens`, times the process count that DDP
    divides by; with a single shard, the plain token mean (the same value, and the same
    floating-point operations as an unsharded step).
    """
    if n_shards == 1:
        mean = completion_nll(model, batch)
        return mean, mean.item() * n_tokens
    total = completion_nll(model, batch, reduction="sum") * weight
    return total * (processes / n_tokens), total.item()


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


def linear_schedule(optimizer, total_steps: int, warmup_fraction: float):
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_sft(
    model,
    tokenizer,
    prompts: Sequence[str],
    completions: Sequence[str],
    settings: SFTSettings,
    ctx: RunContext,
    accelerator,
    stage: str,
) -> dict[str, float]:
    """Train `model` in place for `settings.epochs` epochs; returns the last metrics.

    Checkpoints every `ctx.save_every` steps; if `ctx` holds a checkpoint of this stage from an
    interrupted attempt, training continues from it with the same step counter and data order.
    """
    encoded = encode_pairs(tokenizer, prompts, completions, settings.max_length)
    steps_per_epoch = math.ceil(len(encoded) / settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    if total_steps == 0:
        return {}
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    scheduler = linear_schedule(optimizer, total_steps, settings.warmup_fraction)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    start = resume_training(ctx, stage, accelerator, model, optimizer, scheduler)

    def save(folder: Path) -> None:
        save_trainer_state(folder, accelerator, model, optimizer, scheduler)

    world = distributed.current_world()
    n_shards = world.size * settings.grad_accum
    my_shards = distributed.local_shards(world, settings.grad_accum)

    model.train()
    metrics: dict[str, float] = {}
    bar = tqdm(
        total=total_steps,
        initial=start,
        desc=stage,
        unit="step",
        dynamic_ncols=True,
        disable=not ctx.is_main,
    )
    for step in range(start, total_steps):
        epoch, index = divmod(step, steps_per_epoch)
        order = epoch_order(len(encoded), settings.seed, epoch)
        rows = order[index * settings.batch_size : (index + 1) * settings.batch_size]
        n_tokens = max(1, count_target_tokens([encoded[i] for i in rows]))
        bounds = distributed.shard_bounds(len(rows), n_shards)
        nll_sum = 0.0
        for position, shard in enumerate(my_shards):
            shard_rows, weight = rows[slice(*bounds[shard])], 1.0
            if not shard_rows:  # fewer rows than shards: a zero-weight row keeps DDP in step
                shard_rows, weight = rows[:1], 0.0
            batch = collate([encoded[i] for i in shard_rows], tokenizer.pad_token_id)
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            # Gradients are all-reduced once, at the last shard of this process.
            last = position == len(my_shards) - 1
            with contextlib.nullcontext() if last else accelerator.no_sync(model):
                with accelerator.autocast():
                    loss, shard_nll = shard_loss(
                        model, batch, weight, n_tokens, world.size, n_shards
                    )
                accelerator.backward(loss)
            nll_sum += shard_nll
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        ctx.global_step += 1
        metrics = {
            "train/sft_loss": loss.item()
            if n_shards == 1
            else distributed.all_reduce_sum([nll_sum])[0] / n_tokens,
            "train/grad_norm": grad_norm_value(grad_norm),
            "train/lr": scheduler.get_last_lr()[0],
            "train/epoch": epoch + (index + 1) / steps_per_epoch,
        }
        ctx.log(metrics)
        bar.set_postfix(
            loss=f"{metrics['train/sft_loss']:.3f}", epoch=f"{metrics['train/epoch']:.2f}"
        )
        bar.update(1)
        ctx.step_boundary(stage, step + 1, total_steps, save)
    bar.close()
    model.eval()
    return metrics
