"""The state a run carries across its stages: step counter, logger, checkpoints, resume.

A method runs its stages through `RunContext.stage(name, fn)`. A finished stage is recorded in
`progress.json` with its result; a resumed run (`resume=true` on the same run dir) skips it and
reuses the result, and a stage that was interrupted restarts from its last step checkpoint with
the step counter where the checkpoint left it. Metrics already in `metrics.jsonl` are never
rewritten: steps that a resumed stage re-runs up to what was already logged are not logged again.

`progress.json` exists from the moment a run starts (so a killed or cancelled run leaves a
readable partial run dir), and also names the running stage and its last step checkpoint. With
several processes only rank 0 writes files; step checkpoints are collective (DeepSpeed writes
one optimizer shard per rank).

On SLURM's warning signal (`runtime.preemption`), loops call `preempt_requested()` at each step
boundary and, if it is true, save a step checkpoint and call `requeue()`; stage boundaries check
it too.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reftlab.runtime import distributed, preemption
from reftlab.runtime.tracking import MetricsLogger, read_metrics, write_json_atomic

PROGRESS_FILE = "progress.json"


def capture_rng() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class StageCheckpoint:
    """A mid-stage checkpoint: where it is and the stage's step when it was written."""

    path: Path
    stage_step: int
    global_step: int


@dataclass
class RunContext:
    run_dir: Path
    logger: MetricsLogger
    is_main: bool = True
    global_step: int = 0
    save_every: int = 0
    completed: dict[str, Any] = field(default_factory=dict)
    # (stage, step) pairs already in metrics.jsonl from an earlier attempt: not logged again.
    _logged: set[tuple[str, int]] = field(default_factory=set)
    current_stage: str | None = None
    # The running stage's newest step checkpoint, for progress.json (informational only).
    _last_checkpoint: dict[str, Any] | None = None

    @classmethod
    def open(
        cls,
        run_dir: Path,
        logger: MetricsLogger,
        resume: bool,
        save_every: int,
        is_main: bool = True,
    ) -> RunContext:
        ctx = cls(run_dir=run_dir, logger=logger, is_main=is_main, save_every=save_every)
        progress = run_dir / PROGRESS_FILE
        if resume and progress.exists():
            state = json.loads(progress.read_text())
            ctx.completed = state["completed"]
            ctx.global_step = state["global_step"]
            ctx._logged = {(r["stage"], r["step"]) for r in read_metrics(run_dir) if "stage" in r}
        elif not resume and progress.exists():
            from reftlab.errors import ReftlabError

            raise ReftlabError(
                f"{run_dir} already holds a run; pass resume=true to continue it, or use a new "
                "hydra.run.dir"
            )
        # Every process has looked for an earlier run before rank 0 starts this one's record.
        distributed.barrier()
        if not ctx.completed:
            ctx._save_progress()
        return ctx

    # --- stages -------------------------------------------------------------------------

    def stage(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run `fn` as stage `name` unless an earlier attempt of this run finished it."""
        if name in self.completed:
            print(f"[{name}] finished in an earlier attempt; reusing its result", flush=True)
            return self.completed[name]["result"]
        self._requeue_if_requested()
        self.current_stage = name
        self._last_checkpoint = None
        self._save_progress()
        print(f"[{name}] starting at step {self.global_step}", flush=True)
        result = fn()
        self.completed[name] = {"result": result, "global_step": self.global_step}
        self.current_stage = None
        self._save_progress()
        # A finished stage is a checkpoint: hand over here rather than inside the next one.
        self._requeue_if_requested()
        return result

    def _save_progress(self) -> None:
        """Write progress.json: what `resume` reads (`completed`, `global_step`: the step at
        the last finished stage) and, for readers of a partial run, the running stage."""
        if not self.is_main:
            return
        state: dict[str, Any] = {"completed": self.completed, "global_step": self.global_step}
        if self.current_stage is not None:
            state["running"] = {"stage": self.current_stage, "checkpoint": self._last_checkpoint}
        write_json_atomic(self.run_dir / PROGRESS_FILE, state)

    # --- preemption ---------------------------------------------------------------------

    def preempt_requested(self) -> bool:
        """Whether SLURM's warning signal came (on any process): checkpoint now, then `requeue`.
        Call it at the same point on every process."""
        return preemption.requested()

    def requeue(self) -> None:
        """Hand the job back to SLURM after the checkpoint is written (does not return)."""
        preemption.requeue()

    def _requeue_if_requested(self) -> None:
        if self.preempt_requested():
            self.requeue()

    # --- metrics ------------------------------------------------------------------------

    def log(
        self, metrics: dict[str, Any], stage: str | None = None, step: int | None = None
    ) -> None:
        stage = stage or self.current_stage or "run"
        step = self.global_step if step is None else step
        if (stage, step) in self._logged:  # logged by the attempt this one resumes
            return
        if self.is_main:
            self.logger.log(metrics, step=step, stage=stage)

    # --- checkpoints --------------------------------------------------------------------

    def checkpoint_dir(self, stage: str) -> Path:
        return self.run_dir / "checkpoints" / stage

    def latest_checkpoint(self, stage: str) -> StageCheckpoint | None:
        """The newest complete mid-stage checkpoint of `stage`, if a previous attempt left one."""
        root = self.checkpoint_dir(stage)
        candidates = []
        for meta in root.glob("step-*/state.json"):
            info = json.loads(meta.read_text())
            candidates.append(StageCheckpoint(meta.parent, info["stage_step"], info["global_step"]))
        return max(candidates, key=lambda c: c.stage_step, default=None)

    def should_save(self, stage_step: int) -> bool:
        return self.save_every > 0 and stage_step % self.save_every == 0

    def save_step_checkpoint(
        self, stage: str, stage_step: int, save_fn: Callable[[Path], None]
    ) -> Path | None:
        """Write `step-N/` via a temporary folder and a rename; keep only the newest two.

        Collective: every process calls it, and `save_fn(folder)` runs on every process and
        writes what that process owns (rank 0 the weights; each rank its DeepSpeed shard).
        Returns the folder on rank 0, None elsewhere.
        """
        root = self.checkpoint_dir(stage)
        final = root / f"step-{stage_step}"
        tmp = root / f".tmp-step-{stage_step}"
        if self.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        distributed.barrier()
        save_fn(tmp)
        distributed.barrier()
        if not self.is_main:
            return None
        state = {"stage_step": stage_step, "global_step": self.global_step}
        torch.save(capture_rng(), tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps(state))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        older = sorted(root.glob("step-*"), key=lambda p: int(p.name.split("-")[1]))[:-2]
        for path in older:
            shutil.rmtree(path, ignore_errors=True)
        self._last_checkpoint = {"path": str(final), **state}
        self._save_progress()
        return final

    def step_boundary(
        self, stage: str, stage_step: int, total_steps: int, save_fn: Callable[[Path], None]
    ) -> None:
        """After step `stage_step` of `total_steps` (call it on every process): save a step
        checkpoint every `save_every` steps, and when SLURM's warning signal came, save one and
        requeue. After the last step nothing is saved here: the stage's end is the checkpoint."""
        if stage_step >= total_steps:
            return
        preempted = self.preempt_requested()
        if preempted or self.should_save(stage_step):
            self.save_step_checkpoint(stage, stage_step, save_fn)
        if preempted:
            print(f"[{stage}] checkpointed at step {stage_step} for the requeue", flush=True)
            self.requeue()

    def restore_step_checkpoint(self, checkpoint: StageCheckpoint) -> None:
        self.global_step = checkpoint.global_step
        restore_rng(torch.load(checkpoint.path / "rng.pt", weights_only=False))
