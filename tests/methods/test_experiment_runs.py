"""Each paper preset (`reftlab -m +experiment=NAME`) runs end to end on the tiny model under the
smoke budget, and `reftlab report` on its sweep folder writes the experiment's own section and
plots (slow). Where a preset sweeps many runs, the command line narrows it, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.methods.test_method_runs import SIGNAL, SMOKE

pytestmark = pytest.mark.slow

# preset -> (narrowing overrides, runs expected, plots the report must draw)
PRESETS = {
    "reft_table": ([], 4, ["curves.png"]),
    "kl_warmup": (
        ["method.kl_coef=0.0,0.2", "method.warmup_epochs=1,2"],
        4,
        ["accuracy_heatmap.png"],
    ),
    "prefixrl": (
        ["method.batch_size=8", "method.rollouts_per_query=4", "method.mini_batch_size=32"],
        3,
        ["reward_vs_samples.png"],
    ),
    "bandit_ablations": (["+bandit_ablation=minimal,rloo"], 4, ["ablations.png"]),
}


def run_reftlab(cwd: Path, cache: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "reftlab", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "REFTLAB_CACHE": str(cache)},
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_runs_and_reports_in_its_papers_shape(tmp_path, name):
    narrowing, n_runs, plots = PRESETS[name]
    sweep = tmp_path / "sweep"
    run_reftlab(
        tmp_path,
        tmp_path / "cache",
        "-m",
        f"+experiment={name}",
        *SMOKE,
        *SIGNAL,
        *narrowing,
        f"hydra.sweep.dir={sweep}",
    )
    run_dirs = sorted(p for p in sweep.iterdir() if (p / "summary.json").is_file())
    assert len(run_dirs) == n_runs
    for run_dir in run_dirs:
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["config"]["experiment"] == name

    report = run_reftlab(tmp_path, tmp_path / "cache", "report", str(sweep))
    markdown = (sweep / "report.md").read_text()
    assert f"## Experiment `{name}`" in markdown
    assert f"experiment {name}:" in report.stdout
    for plot in plots:
        assert (sweep / plot).stat().st_size > 0 and f"({plot})" in markdown
