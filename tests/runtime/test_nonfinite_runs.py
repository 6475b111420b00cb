"""A real run whose training blows up stops at that step with one line naming the stage, the
step and the quantity, exits nonzero, and leaves the last good checkpoint as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch


@pytest.mark.slow
def test_an_enormous_learning_rate_stops_the_run_at_the_step_that_blew_up(tmp_path):
    run_dir = tmp_path / "run"
    # lr 1e30 (finite, so the config allows it): step 1 sends the weights to ~1e30, step 2 to inf.
    overrides = ["method=sft", "budget=smoke", "method.sft_lr=1e30", "method.sft_batch_size=8"]
    result = subprocess.run(
        [sys.executable, "-m", "reftlab", f"hydra.run.dir={run_dir}", *overrides, "save_every=1"],
        capture_output=True,
        text=True,
        env={**os.environ, "REFTLAB_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    # (The progress bar's last refresh may share the error's line in a captured stderr.)
    errors = [line.partition("reftlab: error: ")[2] for line in result.stderr.splitlines()]
    errors = [error for error in errors if error]
    assert len(errors) == 1, result.stderr[-3000:]
    assert errors[0].startswith("sft step 2 produced non-finite model weights"), errors
    assert not (run_dir / "summary.json").exists()

    # Step 1's checkpoint is the newest, intact and finite; step 2 was neither saved nor logged.
    folders = sorted(p.name for p in (run_dir / "checkpoints" / "sft").iterdir())
    assert folders == ["step-1"]
    state = torch.load(run_dir / "checkpoints/sft/step-1/trainer.pt", weights_only=False)
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    steps = [
        json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [1]
