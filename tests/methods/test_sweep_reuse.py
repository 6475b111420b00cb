"""A sweep (`reftlab -m`, Hydra's basic launcher) whose points share their SFT warm-up trains
it once: the other points reuse the cached checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_kl_sweep_trains_the_shared_warmup_once(tmp_path):
    sweep_dir, cache = tmp_path / "sweep", tmp_path / "cache"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "reftlab",
            "-m",
            "method=reft",
            "budget=smoke",
            "method.kl_coef=0.01,0.05",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**os.environ, "REFTLAB_CACHE": str(cache)},
    )
    assert result.returncode == 0, result.stderr[-3000:]

    runs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name[0].isdigit())
    assert [p.name for p in runs] == [
        "0_budget=smoke,method.kl_coef=0.01,method=reft",
        "1_budget=smoke,method.kl_coef=0.05,method=reft",
    ]
    first, second = (metrics(p) for p in runs)
    # The first point trains the warm-up; the second logs no SFT step and says it reused it.
    assert any("train/sft_loss" in r for r in first)
    assert not any("train/sft_loss" in r for r in second)
    assert [r["reused"] for r in first if "reused" in r] == [0]
    assert [r["reused"] for r in second if "reused" in r] == [1]
    assert result.stdout.count("reusing the warm-up trained by an earlier run") == 1
    assert len(list((cache / "stages").glob("sft-*"))) == 1
    # Both start RL from the same weights and evaluate the same warm-up.
    summaries = [json.loads((p / "summary.json").read_text()) for p in runs]
    assert summaries[0]["warmup_test_accuracy"] == summaries[1]["warmup_test_accuracy"]
    assert [s["config"]["method"]["kl_coef"] for s in summaries] == [0.01, 0.05]
    # The reusing run still has the warm-up's per-problem results, copied from the cache.
    warmup_predictions = [(p / "predictions" / "sft_warmup.jsonl").read_text() for p in runs]
    assert warmup_predictions[0] and warmup_predictions[0] == warmup_predictions[1]
    # The step counter continues past the reused warm-up, as if it had been trained here.
    assert min(r["step"] for r in second if r["stage"] == "ppo") == min(
        r["step"] for r in first if r["stage"] == "ppo"
    )
