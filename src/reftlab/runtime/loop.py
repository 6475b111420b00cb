"""The training-loop scaffold that every loop of reftlab runs on (SFT, RL, online self-training,
the reward model), and the learning-rate schedule they share.

    loop = TrainingLoop(stage, ctx, accelerator, model, optimizer, scheduler)  # prepares them
    def step(index: int) -> dict[str, float]: ...   # one step's work on loop.model/optimizer
    metrics = loop.run(total_steps, step, show=[Shown("loss", "train/sft_loss")])

`run` first resumes from the newest step checkpoint that an interrupted attempt of the stage
left in the run dir (weights, optimizer, scheduler, step counter, RNG and the loop's `state`), so
that the resumed run takes the same steps on the same data as an uninterrupted one. Then, after
every step, it counts it (`ctx.global_step`), logs its metrics, moves the progress bar (rank 0
only) and crosses the step boundary: a checkpoint every `save_every` steps, and on SLURM's
warning signal a checkpoint and the requeue (`RunContext.step_boundary`). A step whose loss or
weights are not finite stops the run before it is logged or saved (`runtime.finite`). A `Periodic` given to
`run` (the test evaluation of `budget.eval_every`) runs every so many steps, before the last,
and its metrics join that step's record (one with `at_start` also runs before a fresh stage's
first step, logged at the step the stage starts from). A loop whose result
needs running totals over its steps (the reward model's last-epoch summary) keeps them in
`state`, which travels inside each checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from reftlab.runtime.context import RunContext
from reftlab.runtime.finite import check_step_finite
from reftlab.runtime.progress import progress_bar
from reftlab.runtime.trainer_state import resume_training, save_trainer_state

# The loop's `state` inside a step checkpoint, beside trainer.pt and rng.pt.
LOOP_STATE_FILE = "loop_state.json"

Step = Callable[[int], dict[str, Any]]


@dataclass(frozen=True)
class Periodic:
    """Work done on the loop's model every `every` steps (not after the last step: the stage's
    own closing evaluation covers that), and with `at_start` also before the first step;
    `call(model, stage_step)` returns metrics that are logged with that step's."""

    every: int
    call: Callable[[Any, int], dict[str, Any]]
    at_start: bool = False

    def due(self, stage_step: int, total_steps: int) -> bool:
        return self.every > 0 and stage_step % self.every == 0 and stage_step < total_steps


@dataclass(frozen=True)
class Shown:
    """A metric in the progress bar: `label=value`, the value of `key` formatted by `fmt`."""

    label: str
    key: str
    fmt: str = ".3f"


def linear_schedule(optimizer, total_steps: int, warmup_fraction: float):
    """Linear warm-up over the first `warmup_fraction` of the steps, then linear decay to 0."""
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class TrainingLoop:
    """One stage's training loop: the prepared model, optimizer and scheduler, and `run`.

    `model`, `optimizer` and `scheduler` are what `accelerator.prepare` returned; a loop's step
    works on these.
    """

    def __init__(
        self, stage: str, ctx: RunContext, accelerator, model, optimizer, scheduler=None
    ) -> None:
        self.stage, self.ctx, self.accelerator = stage, ctx, accelerator
        if scheduler is None:
            model, optimizer = accelerator.prepare(model, optimizer)
        else:
            model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler

    def run(
        self,
        total_steps: int,
        step: Step,
        show: Sequence[Shown] = (),
        state: dict[str, Any] | None = None,
        periodic: Periodic | None = None,
    ) -> dict[str, Any]:
        """Run `step(index)` for the steps `total_steps` has left after a resume; return the
        last step's metrics ({} when none ran), with the model in eval mode.

        `state` (JSON-able, updated by `step` in place) is saved with every step checkpoint and
        restored into the same dict on resume. Every process calls `run` with the same
        arguments; a step checkpoint is collective.
        """
        ctx = self.ctx
        start = self._resume(state)
        if periodic is not None and periodic.at_start and periodic.every > 0 and start == 0:
            ctx.log(periodic.call(self.model, 0))
            self.model.train()

        def save(folder: Path) -> None:
            self._save(folder, state)

        bar = progress_bar(total_steps, self.stage, initial=start, disable=not ctx.is_main)
        metrics: dict[str, Any] = {}
        for index in range(start, total_steps):
            metrics = step(index)
            check_step_finite(self.stage, index + 1, metrics, self.model)
            if periodic is not None and periodic.due(index + 1, total_steps):
                metrics = {**metrics, **periodic.call(self.model, index + 1)}
                self.model.train()
            ctx.global_step += 1
            ctx.log(metrics)
            bar.set_postfix({s.label: format(metrics[s.key], s.fmt) for s in show})
            bar.update(1)
            ctx.step_boundary(self.stage, index + 1, total_steps, save)
        bar.close()
        self.model.eval()
        return metrics

    def _resume(self, state: dict[str, Any] | None) -> int:
        """Restore the newest intact step checkpoint of this stage, if any; the step to start
        from."""
        checkpoint = resume_training(
            self.ctx, self.stage, self.accelerator, self.model, self.optimizer, self.scheduler
        )
        if checkpoint is None:
            return 0
        if state is not None:
            state.clear()
            state.update(json.loads((checkpoint.path / LOOP_STATE_FILE).read_text()))
        return checkpoint.stage_step

    def _save(self, folder: Path, state: dict[str, Any] | None) -> None:
        save_trainer_state(folder, self.accelerator, self.model, self.optimizer, self.scheduler)
        if state is not None and self.accelerator.is_main_process:
            (Path(folder) / LOOP_STATE_FILE).write_text(json.dumps(state))
