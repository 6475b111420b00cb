"""A training loop's resumable state inside a step checkpoint: weights, optimizer, scheduler.

With one process or plain data parallelism every rank holds the same weights and optimizer
state, so rank 0 alone writes `trainer.pt`. With DeepSpeed ZeRO the optimizer state is
partitioned across the ranks, so every rank writes (and reads) its part through the engine's
own checkpoint, under `deepspeed/`.
"""

from __future__ import annotations

import math
import pickle
import zipfile
from pathlib import Path

import torch

from reftlab.errors import ReftlabError

TRAINER_FILE = "trainer.pt"
DEEPSPEED_FOLDER = "deepspeed"
# What loading a damaged checkpoint file raises (torch.load of a truncated or garbled file).
LOAD_ERRORS = (
    OSError,
    EOFError,
    RuntimeError,
    ValueError,
    KeyError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
)


def uses_deepspeed(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.DEEPSPEED


def save_trainer_state(folder: Path, accelerator, model, optimizer, scheduler=None) -> None:
    """Write the state of a prepared model/optimizer/scheduler; call it on every process."""
    if uses_deepspeed(accelerator):
        model.save_checkpoint(str(Path(folder) / DEEPSPEED_FOLDER), tag="state")
        return
    if not accelerator.is_main_process:
        return
    state = {
        "model": accelerator.unwrap_model(model).state_dict(),
        "optimizer": optimizer.state_dict(),
    }
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    torch.save(state, Path(folder) / TRAINER_FILE)


def load_trainer_state(folder: Path, accelerator, model, optimizer, scheduler=None) -> None:
    """Restore what `save_trainer_state` wrote into the prepared objects, on every process."""
    if uses_deepspeed(accelerator):
        model.load_checkpoint(str(Path(folder) / DEEPSPEED_FOLDER), tag="state")
        return
    state = torch.load(Path(folder) / TRAINER_FILE, weights_only=False, map_location="cpu")
    accelerator.unwrap_model(model).load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])


def resume_training(ctx, stage: str, accelerator, model, optimizer, scheduler=None):
    """Restore the newest intact step checkpoint an interrupted attempt of `stage` left in the
    run dir, with the step counter and RNG; return it (None when there is none).

    A checkpoint that cannot be loaded (a damaged trainer.pt or rng.pt) is skipped with a
    warning for the next older one; when every one is damaged, one line says so.
    """
    checkpoints = ctx.step_checkpoints(stage)
    for checkpoint in checkpoints:
        try:
            load_trainer_state(checkpoint.path, accelerator, model, optimizer, scheduler)
            ctx.restore_step_checkpoint(checkpoint)
        except LOAD_ERRORS as exc:
            print(
                f"[{stage}] warning: checkpoint {checkpoint.path.name} is unreadable "
                f"({exc.__class__.__name__}); trying an older one",
                flush=True,
            )
            continue
        print(f"[{stage}] resumed from {checkpoint.path.name} (global step {ctx.global_step})")
        return checkpoint
    if checkpoints:
        raise ReftlabError(
            f"every step checkpoint of stage {stage} in {ctx.checkpoint_dir(stage)} is "
            "unreadable; the run cannot resume that stage"
        )
    return None


def grad_norm_value(norm) -> float:
    """The gradient norm `clip_grad_norm_` returned as a float (DeepSpeed may return None)."""
    return math.nan if norm is None else float(norm)
