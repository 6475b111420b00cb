"""RunContext: a run dir is readable from its start, and a preemption request at a step or
stage boundary writes the checkpoint before the job is handed back to SLURM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reftlab.runtime import preemption
from reftlab.runtime.context import RunContext
from reftlab.runtime.loop import Periodic
from reftlab.runtime.tracking import MetricsLogger


class Requeued(Exception):
    """Stands in for submitit's exit after `scontrol requeue`."""


@pytest.fixture()
def signalled(monkeypatch):
    """A run on which SLURM's warning signal has arrived."""
    monkeypatch.setattr(preemption, "requested", lambda: True)

    def requeue():
        raise Requeued

    monkeypatch.setattr(preemption, "requeue", requeue)


def open_run(run_dir: Path, save_every: int = 0, resume: bool = False) -> RunContext:
    run_dir.mkdir(exist_ok=True)
    return RunContext.open(run_dir, MetricsLogger(run_dir), resume=resume, save_every=save_every)


def progress(run_dir: Path) -> dict:
    return json.loads((run_dir / "progress.json").read_text())


def write_marker(folder: Path) -> None:
    (folder / "trainer.pt").write_text("weights")


def test_progress_json_exists_from_the_start_and_names_the_running_stage(tmp_path):
    ctx = open_run(tmp_path / "run")
    start = progress(ctx.run_dir)
    assert {k: start[k] for k in ("completed", "global_step")} == {
        "completed": {},
        "global_step": 0,
    }
    assert [a["mode"] for a in start["attempts"]] == ["fresh"]

    def stage():
        assert progress(ctx.run_dir)["running"] == {"stage": "sft", "checkpoint": None}
        ctx.global_step = 3
        ctx.save_step_checkpoint("sft", 3, write_marker)
        assert progress(ctx.run_dir)["running"]["checkpoint"]["stage_step"] == 3
        return {"ok": True}

    ctx.stage("sft", stage)
    end = progress(ctx.run_dir)
    assert {k: end[k] for k in ("completed", "global_step")} == {
        "completed": {"sft": {"result": {"ok": True}, "global_step": 3}},
        "global_step": 3,
    }


def test_a_started_run_needs_resume(tmp_path):
    open_run(tmp_path / "run")
    with pytest.raises(Exception, match="resume=true"):
        open_run(tmp_path / "run")
    assert open_run(tmp_path / "run", resume=True).completed == {}


def test_step_boundary_checkpoints_then_requeues_when_signalled(tmp_path, signalled):
    ctx = open_run(tmp_path / "run", save_every=0)  # no periodic checkpoints at all
    ctx.global_step = 7
    with pytest.raises(Requeued):
        ctx.step_boundary("ppo", 7, total_steps=10, save_fn=write_marker)
    checkpoint = ctx.latest_checkpoint("ppo")
    assert (checkpoint.stage_step, checkpoint.global_step) == (7, 7)
    assert (checkpoint.path / "trainer.pt").read_text() == "weights"
    # After the last step the stage's end is the checkpoint: nothing is saved or requeued here.
    ctx.step_boundary("ppo", 10, total_steps=10, save_fn=write_marker)
    assert ctx.latest_checkpoint("ppo").stage_step == 7


def test_step_boundary_saves_every_save_every_steps(tmp_path):
    ctx = open_run(tmp_path / "run", save_every=4)
    for step in range(1, 10):
        ctx.global_step = step
        ctx.step_boundary("sft", step, total_steps=9, save_fn=write_marker)
    # step-4 and step-8 were written; the newest two are kept.
    assert sorted(p.name for p in ctx.checkpoint_dir("sft").glob("step-*")) == [
        "step-4",
        "step-8",
    ]


def test_a_finished_stage_is_recorded_before_the_requeue(tmp_path, signalled, monkeypatch):
    ctx = open_run(tmp_path / "run")
    calls = iter([False, True])  # no signal when the stage starts, one when it ends
    monkeypatch.setattr(preemption, "requested", lambda: next(calls))
    with pytest.raises(Requeued):
        ctx.stage("evaluate", lambda: {"eval/accuracy": 0.5})
    assert progress(ctx.run_dir)["completed"]["evaluate"]["result"] == {"eval/accuracy": 0.5}
    # The requeued job skips it.
    resumed = open_run(ctx.run_dir, resume=True)
    assert resumed.stage("evaluate", lambda: pytest.fail("ran twice")) == {"eval/accuracy": 0.5}


@pytest.mark.parametrize(
    ("every", "total", "due"),
    [(3, 7, [3, 6]), (3, 6, [3]), (1, 4, [1, 2, 3]), (0, 5, []), (10, 5, [])],
)
def test_periodic_work_comes_every_n_steps_but_not_after_the_last(every, total, due):
    periodic = Periodic(every, lambda model, step: {})
    assert [s for s in range(1, total + 1) if periodic.due(s, total)] == due
