"""Supervised fine-tuning on (prompt, completion) pairs, loss on the completion tokens only.

Used by every method: the SFT baseline, the warm-up before RL, the second pass of offline
self-training. Pairs are encoded as generation sees them (`stages.batches`), and the loop runs on
the shared scaffold (`runtime.loop`: resume, step checkpoints, progress, logging).

Several processes (and `grad_accum`): a step's rows are split into `processes x grad_accum`
contiguous shards (`runtime.distributed`). Each shard's loss is its summed token NLL divided by
the token count of the whole step's batch (times the process count, which DDP's gradient
averaging divides out), so the summed gradient is that of the token mean over the whole batch:
the same step as one process on the whole batch, up to float summation order. A shard left
without rows joins with a zero-weight row (`distributed.shard_part`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from reftlab.runtime import distributed
from reftlab.runtime.context import RunContext
from reftlab.runtime.loop import Periodic, Shown, TrainingLoop, linear_schedule
from reftlab.runtime.trainer_state import grad_norm_value
from reftlab.stages.batches import (
    collate,
    completion_nll,
    count_target_tokens,
    encode_pairs,
    epoch_position,
    step_rows,
)


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


def backward_shards(
    model, accelerator, encoded, rows: list[int], n_tokens: int, pad_id: int, grad_accum: int
) -> tuple[torch.Tensor, float]:
    """Forward and backward of this process's shards of the step's `rows`, gradients added up;
    returns the last shard's loss and the summed NLL of this process's shards."""
    world = distributed.current_world()
    n_shards = world.size * grad_accum
    my_shards = distributed.local_shards(world, grad_accum)
    nll_sum = 0.0
    for position, shard in enumerate(my_shards):
        part, weight = distributed.shard_part(len(rows), shard, n_shards)
        batch = collate([encoded[i] for i in rows[part]], pad_id)
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        # Gradients are all-reduced once, at the last shard of this process.
        last = position == len(my_shards) - 1
        with contextlib.nullcontext() if last else accelerator.no_sync(model):
            with accelerator.autocast():
                loss, shard_nll = shard_loss(model, batch, weight, n_tokens, world.size, n_shards)
            accelerator.backward(loss)
        nll_sum += shard_nll
    return loss, nll_sum


def train_sft(
    model,
    tokenizer,
    prompts: Sequence[str],
    completions: Sequence[str],
    settings: SFTSettings,
    ctx: RunContext,
    accelerator,
    stage: str,
    periodic: Periodic | None = None,
) -> dict[str, float]:
    """Train `model` in place for `settings.epochs` epochs; returns the last metrics.
    `periodic` (the test evaluation of `budget.eval_every`) runs between steps.

    Checkpoints every `ctx.save_every` steps; if `ctx` holds a checkpoint of this stage from an
    interrupted attempt, training continues from it with the same step counter and data order.
    """
    s = settings
    encoded = encode_pairs(tokenizer, prompts, completions, s.max_length)
    steps_per_epoch = math.ceil(len(encoded) / s.batch_size)
    total_steps = steps_per_epoch * s.epochs
    if total_steps == 0:
        return {}
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    scheduler = linear_schedule(optimizer, total_steps, s.warmup_fraction)
    loop = TrainingLoop(stage, ctx, accelerator, model, optimizer, scheduler)
    single = distributed.current_world().size * s.grad_accum == 1

    def step(index: int) -> dict[str, float]:
        rows = step_rows(len(encoded), index, s.batch_size, s.seed)
        n_tokens = max(1, count_target_tokens([encoded[i] for i in rows]))
        loss, nll_sum = backward_shards(
            loop.model, accelerator, encoded, rows, n_tokens, tokenizer.pad_token_id, s.grad_accum
        )
        grad_norm = accelerator.clip_grad_norm_(loop.model.parameters(), s.max_grad_norm)
        loop.optimizer.step()
        loop.scheduler.step()
        loop.optimizer.zero_grad(set_to_none=True)
        mean_nll = loss.item() if single else distributed.all_reduce_sum([nll_sum])[0] / n_tokens
        return {
            "train/sft_loss": mean_nll,
            "train/grad_norm": grad_norm_value(grad_norm),
            "train/lr": loop.scheduler.get_last_lr()[0],
            "train/epoch": epoch_position(index, steps_per_epoch),
        }

    loop.model.train()
    return loop.run(
        total_steps,
        step,
        show=[Shown("loss", "train/sft_loss"), Shown("epoch", "train/epoch", ".2f")],
        periodic=periodic,
    )
