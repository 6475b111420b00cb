"""The training-loop scaffold: a loop interrupted by SLURM's signal and resumed takes the same
steps as one that ran through (weights, optimizer, schedule, RNG, running totals, metrics)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator

from reftlab.errors import ReftlabError
from reftlab.runtime import preemption
from reftlab.runtime.context import RunContext
from reftlab.runtime.loop import LOOP_STATE_FILE, TrainingLoop, linear_schedule
from reftlab.runtime.tracking import MetricsLogger, read_metrics

STEPS = 7


class Requeued(Exception):
    """Stands in for submitit's exit after `scontrol requeue`."""


def signal_once_at(monkeypatch, ctx: RunContext, global_step: int) -> None:
    """SLURM's warning signal arrives once, during step `global_step` of the run `ctx`."""
    signals = iter([True])
    monkeypatch.setattr(
        preemption, "requested", lambda: ctx.global_step == global_step and next(signals, False)
    )

    def requeue():
        raise Requeued

    monkeypatch.setattr(preemption, "requeue", requeue)


def open_run(run_dir: Path, resume: bool = False, save_every: int = 0) -> RunContext:
    run_dir.mkdir(exist_ok=True)
    return RunContext.open(run_dir, MetricsLogger(run_dir), resume=resume, save_every=save_every)


def regression(ctx: RunContext) -> tuple[torch.nn.Module, dict]:
    """A noisy linear regression on the scaffold: each step draws its batch from the global RNG
    and keeps a running total in the loop state. Returns the model and the state."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = linear_schedule(optimizer, STEPS, warmup_fraction=0.3)
    loop = TrainingLoop("fit", ctx, Accelerator(cpu=True), model, optimizer, scheduler)
    state = {"losses": []}

    def step(index: int) -> dict[str, float]:
        x = torch.randn(8, 3)
        loss = ((loop.model(x).squeeze(-1) - x.sum(dim=1)) ** 2).mean()
        loss.backward()
        loop.optimizer.step()
        loop.scheduler.step()
        loop.optimizer.zero_grad()
        state["losses"].append(loss.item())
        return {"train/loss": loss.item(), "train/lr": loop.scheduler.get_last_lr()[0]}

    torch.manual_seed(1)  # the data's RNG, restored from the checkpoint on resume
    ctx.stage("fit", lambda: loop.run(STEPS, step, state=state))
    return loop.model, state


def records(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time"} for r in read_metrics(run_dir)]


@pytest.mark.parametrize("interrupted_at", [1, 4, 6])
def test_interrupted_and_resumed_loop_takes_the_same_steps(tmp_path, monkeypatch, interrupted_at):
    through, through_state = regression(open_run(tmp_path / "through"))

    ctx = open_run(tmp_path / "run")
    signal_once_at(monkeypatch, ctx, interrupted_at)
    with pytest.raises(Requeued):
        regression(ctx)
    checkpoint = ctx.latest_checkpoint("fit")
    assert checkpoint.stage_step == interrupted_at
    saved = json.loads((checkpoint.path / LOOP_STATE_FILE).read_text())
    assert len(saved["losses"]) == interrupted_at

    resumed_ctx = open_run(tmp_path / "run", resume=True)  # the requeued job
    resumed, resumed_state = regression(resumed_ctx)
    assert resumed_ctx.global_step == STEPS
    assert resumed_state == through_state  # the running totals came back with the checkpoint
    for a, b in zip(resumed.parameters(), through.parameters(), strict=True):
        assert torch.equal(a, b)
    assert records(tmp_path / "run") == records(tmp_path / "through")
    assert [r["step"] for r in records(tmp_path / "run")] == list(range(1, STEPS + 1))


def test_save_every_writes_the_loop_state(tmp_path):
    ctx = open_run(tmp_path / "run", save_every=3)
    regression(ctx)
    # Steps 3 and 6 were saved (none after the last step: the stage's end is its checkpoint).
    folders = sorted(p.name for p in ctx.checkpoint_dir("fit").glob("step-*"))
    assert folders == ["step-3", "step-6"]
    state = json.loads((ctx.checkpoint_dir("fit") / "step-6" / LOOP_STATE_FILE).read_text())
    assert len(state["losses"]) == 6


def test_linear_schedule_golden():
    # 10 steps, warm-up int(10 * 0.2) = 2 steps: (0 + 1) / 2, (1 + 1) / 2, then (10 - s) / 8.
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = linear_schedule(optimizer, 10, warmup_fraction=0.2)
    lrs = []
    for _ in range(10):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx(
        [1 / 2, 2 / 2, 8 / 8, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8]
    )


def diverging_loop(ctx: RunContext, blow_up_at: int, weights: bool) -> None:
    """The regression loop whose step `blow_up_at` (1-based) makes a nan loss, or nan weights."""
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loop = TrainingLoop("fit", ctx, Accelerator(cpu=True), model, optimizer)

    def step(index: int) -> dict[str, float]:
        loss = loop.model(torch.ones(2, 3)).pow(2).mean()
        if index + 1 == blow_up_at and not weights:
            loss = loss * float("nan")
        loss.backward()
        loop.optimizer.step()
        loop.optimizer.zero_grad()
        if index + 1 == blow_up_at and weights:
            with torch.no_grad():
                loop.model.weight[0, 1] = float("inf")
        return {"train/loss": loss.item()}

    ctx.stage("fit", lambda: loop.run(STEPS, step))


@pytest.mark.parametrize("weights", [False, True])
def test_a_non_finite_step_stops_before_it_is_logged_or_saved(tmp_path, weights):
    from reftlab.runtime.finite import NonFiniteError

    ctx = open_run(tmp_path, save_every=1)
    quantity = "model weights" if weights else r"train/loss \(nan\)"
    with pytest.raises(NonFiniteError, match=f"fit step 4 produced non-finite {quantity}"):
        diverging_loop(ctx, blow_up_at=4, weights=weights)
    assert [r["step"] for r in records(tmp_path)] == [1, 2, 3]
    checkpoint = ctx.latest_checkpoint("fit")
    assert checkpoint.stage_step == 3
    state = torch.load(checkpoint.path / "trainer.pt", weights_only=False)
    assert all(torch.isfinite(v).all() for v in state["model"].values())


@pytest.mark.parametrize("damage", ["trainer.pt", "rng.pt", "state.json"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_older_one(tmp_path, capsys, damage):
    """A kill (or a full disk) that tore the newest step checkpoint: the resumed loop warns,
    starts from the one before, and still ends where an uninterrupted loop does."""
    through, _ = regression(open_run(tmp_path / "through"))
    ctx = open_run(tmp_path / "run", save_every=2)
    ctx.stage = lambda name, fn: fn()  # the "killed" attempt records no finished stage
    regression(ctx)
    newest = tmp_path / "run" / "checkpoints" / "fit" / "step-6"
    (newest / damage).write_bytes((newest / damage).read_bytes()[:20])
    resumed_ctx = open_run(tmp_path / "run", resume=True)
    resumed, _ = regression(resumed_ctx)
    out = capsys.readouterr().out
    assert "step-6" in out and "unreadable" in out and "resumed from step-4" in out
    for a, b in zip(resumed.parameters(), through.parameters(), strict=True):
        assert torch.equal(a, b)


def test_every_checkpoint_damaged_is_one_clear_error(tmp_path):
    ctx = open_run(tmp_path / "run", save_every=2)
    ctx.stage = lambda name, fn: fn()
    regression(ctx)
    for folder in (tmp_path / "run" / "checkpoints" / "fit").glob("step-*"):
        (folder / "trainer.pt").write_bytes(b"garbage")
    with pytest.raises(ReftlabError, match="every step checkpoint of stage fit .* is unreadable"):
        regression(open_run(tmp_path / "run", resume=True))
