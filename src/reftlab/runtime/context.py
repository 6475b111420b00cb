"""The state a run carries across its stages: step counter, logger, checkpoints, resume.

A method runs its stages through `RunContext.stage(name, fn)`. A finished stage is recorded in
`progress.json` with its result; a resumed run (`resume=true` on the same run dir) skips it and
reuses the result, and a stage that was interrupted restarts from its last step checkpoint with
the step counter where the checkpoint left it. Metrics already in `metrics.jsonl` are never
rewritten: records that a resumed stage logs again (same stage, step and metric names) are not
logged twice, and a last line that a kill tore is cut off before anything is appended. A damaged
step checkpoint is skipped for the next older one (`trainer_state.resume_training`).

`progress.json` exists from the moment a run starts (so a killed or cancelled run leaves a
readable partial run dir), and also names the running stage and its last step checkpoint. With
several processes only rank 0 writes files; step checkpoints are collective (DeepSpeed writes
one optimizer shard per rank).

On SLURM's warning signal or SIGTERM (`runtime.preemption`), loops call `preempt_requested()` at each step
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

from reftlab.errors import ReftlabError
from reftlab.runtime import attempts, distributed, preemption
from reftlab.runtime.tracking import (
    MetricsLogger,
    read_metrics,
    repair_torn_tail,
    write_json_atomic,
)

PROGRESS_FILE = "progress.json"
# Fields every metrics.jsonl record has besides its metrics.
RECORD_FIELDS = ("step", "stage", "time")
# A record's identity across attempts: its stage, its step, and the names of its metrics, so
# that a stage's evaluation logged at the step of its last training row is a record of its own.
RecordKey = tuple[str, int, tuple[str, ...]]


def record_key(record: dict[str, Any]) -> RecordKey:
    names = tuple(sorted(k for k in record if k not in RECORD_FIELDS))
    return (record["stage"], record["step"], names)


def read_progress(path: Path) -> dict[str, Any]:
    """progress.json, or one line saying that it cannot be read (it is written by a rename, so
    only damage from outside tears it)."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        state["completed"], state["global_step"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ReftlabError(
            f"{path} is unreadable ({exc.__class__.__name__}: {exc}); the run cannot be resumed"
        ) from None
    return state


def check_outputs_exist(stage: str, result: Any) -> None:
    """A finished stage's model must still be where its result says (a warm-up reused from the
    cache lives outside the run dir); one line naming it when it is gone."""
    model_dir = result.get("model_dir") if isinstance(result, dict) else None
    if model_dir and not Path(model_dir).is_dir():
        raise ReftlabError(
            f"resume: the {stage} stage finished in an earlier attempt, but its model {model_dir} "
            "is gone (deleted from the cache?); restore that folder, or start the run again in a "
            "new run dir"
        )


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


class Interrupted(Exception):
    """Ctrl-C stopped the run at `step`, in `stage` (None between stages)."""

    def __init__(self, step: int, stage: str | None) -> None:
        super().__init__(f"interrupted at step {step}" + (f" in {stage}" if stage else ""))
        self.step, self.stage = step, stage


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
    # Records already in metrics.jsonl from an earlier attempt (`record_key`): not logged again.
    _logged: set[RecordKey] = field(default_factory=set)
    # This run's attempts (`runtime.attempts`), the current one last.
    attempts: list[dict[str, Any]] = field(default_factory=list)
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
        attempt: dict[str, Any] | None = None,
    ) -> RunContext:
        """The run's context: a fresh one, or with `resume` the state an earlier attempt left
        in progress.json. `attempt` (from `runtime.attempts.start_attempt`) is recorded."""
        ctx = cls(run_dir=run_dir, logger=logger, is_main=is_main, save_every=save_every)
        progress = run_dir / PROGRESS_FILE
        if resume and progress.exists():
            ctx._load_progress(read_progress(progress))
        elif not resume and progress.exists():
            raise ReftlabError(
                f"{run_dir} already holds a run; pass resume=true to continue it, or use a new "
                "hydra.run.dir"
            )
        # Every process has looked for an earlier run before rank 0 starts this one's record.
        distributed.barrier()
        ctx.attempts.append(attempt or attempts.start_attempt("resume" if resume else "fresh"))
        ctx._save_progress()
        return ctx

    def _load_progress(self, state: dict[str, Any]) -> None:
        """Take over an earlier attempt's state, and repair what its kill may have torn."""
        self.completed = state["completed"]
        self.global_step = state["global_step"]
        self.attempts = list(state.get("attempts", []))
        attempts.close_killed(self.attempts, attempts.last_write_time(self.run_dir))
        if self.is_main:
            cut = repair_torn_tail(self.logger.path)
            if cut:
                print(
                    f"[run] metrics.jsonl ended in a torn line ({cut} bytes, a kill in the "
                    "middle of a write); cut it off",
                    flush=True,
                )
        self._logged = {record_key(r) for r in read_metrics(self.run_dir) if "stage" in r}

    # --- attempts -----------------------------------------------------------------------

    def end_attempt(self) -> None:
        """Record that this attempt ended now (finished, or stopped by a signal or an error)."""
        if self.attempts:
            attempts.end_attempt(self.attempts[-1])
            self._save_progress()

    def wall_time_s(self) -> float:
        """Seconds this run has taken over all its attempts."""
        return round(attempts.total_wall_time(self.attempts), 1)

    # --- stages -------------------------------------------------------------------------

    def stage(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run `fn` as stage `name` unless an earlier attempt of this run finished it."""
        if name in self.completed:
            result = self.completed[name]["result"]
            check_outputs_exist(name, result)
            print(f"[{name}] finished in an earlier attempt; reusing its result", flush=True)
            return result
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
        state["attempts"] = self.attempts
        if self.current_stage is not None:
            state["running"] = {"stage": self.current_stage, "checkpoint": self._last_checkpoint}
        write_json_atomic(self.run_dir / PROGRESS_FILE, state)

    # --- preemption ---------------------------------------------------------------------

    def preempt_requested(self) -> bool:
        """Whether SLURM's warning signal came (on any process): checkpoint now, then `requeue`.
        Call it at the same point on every process."""
        return preemption.requested()

    def requeue(self) -> None:
        """After the checkpoint is written: hand the job back to SLURM, or after SIGTERM exit
        (does not return)."""
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
        if (stage, step, tuple(sorted(metrics))) in self._logged:  # logged by an earlier attempt
            return
        if self.is_main:
            self.logger.log(metrics, step=step, stage=stage)

    # --- checkpoints --------------------------------------------------------------------

    def checkpoint_dir(self, stage: str) -> Path:
        return self.run_dir / "checkpoints" / stage

    def latest_checkpoint(self, stage: str) -> StageCheckpoint | None:
        """The newest complete mid-stage checkpoint of `stage`, if a previous attempt left one."""
        return next(iter(self.step_checkpoints(stage)), None)

    def step_checkpoints(self, stage: str) -> list[StageCheckpoint]:
        """The complete mid-stage checkpoints of `stage`, newest first; one whose state.json
        cannot be read is left out with a warning."""
        candidates = []
        for meta in self.checkpoint_dir(stage).glob("step-*/state.json"):
            try:
                info = json.loads(meta.read_text())
                candidates.append(
                    StageCheckpoint(meta.parent, int(info["stage_step"]), int(info["global_step"]))
                )
            except (ValueError, KeyError, TypeError) as exc:
                print(
                    f"[{stage}] warning: {meta} is unreadable ({exc.__class__.__name__}); "
                    "skipping that checkpoint",
                    flush=True,
                )
        return sorted(candidates, key=lambda c: c.stage_step, reverse=True)

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
            print(f"[{stage}] checkpointed at step {stage_step}", flush=True)
            self.requeue()

    def restore_step_checkpoint(self, checkpoint: StageCheckpoint) -> None:
        self.global_step = checkpoint.global_step
        restore_rng(torch.load(checkpoint.path / "rng.pt", weights_only=False))
