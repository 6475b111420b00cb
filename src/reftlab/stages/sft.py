"""Supervised fine-tuning on (prompt, completion) pairs, loss on the completion tokens only.

Used by every method: the SFT baseline, the warm-up before RL, the second pass of offline
self-training. The prompt and the completion are tokenised apart and concatenated, exactly as
generation sees them (prompt alone, then the model's continuation), and the completion ends with
EOS so that the model learns to stop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from reftlab.runtime.context import RunContext

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


def completion_nll(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean negative log-likelihood of the completion tokens (labels != IGNORE_INDEX)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    shift_logits = logits[:, :-1].float()
    shift_labels = batch["labels"][:, 1:]
    return torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)),
        shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
    )


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

    start = 0
    checkpoint = ctx.latest_checkpoint(stage)
    if checkpoint is not None:
        state = torch.load(checkpoint.path / "trainer.pt", weights_only=False)
        accelerator.unwrap_model(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        ctx.restore_step_checkpoint(checkpoint)
        start = checkpoint.stage_step
        print(f"[{stage}] resumed from {checkpoint.path.name} (global step {ctx.global_step})")

    def save(folder: Path) -> None:
        torch.save(
            {
                "model": accelerator.unwrap_model(model).state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
            },
            folder / "trainer.pt",
        )

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
        batch = collate([encoded[i] for i in rows], tokenizer.pad_token_id)
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        with accelerator.autocast():
            loss = completion_nll(model, batch)
        accelerator.backward(loss)
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        ctx.global_step += 1
        metrics = {
            "train/sft_loss": loss.item(),
            "train/grad_norm": float(grad_norm),
            "train/lr": scheduler.get_last_lr()[0],
            "train/epoch": epoch + (index + 1) / steps_per_epoch,
        }
        ctx.log(metrics)
        bar.set_postfix(
            loss=f"{metrics['train/sft_loss']:.3f}", epoch=f"{metrics['train/epoch']:.2f}"
        )
        bar.update(1)
        if ctx.should_save(step + 1) and step + 1 < total_steps:
            ctx.save_step_checkpoint(stage, step + 1, save)
    bar.close()
    model.eval()
    return metrics
