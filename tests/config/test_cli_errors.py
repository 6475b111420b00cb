"""Wrong input on the command line ends in one line on stderr and exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reftlab", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


@pytest.mark.parametrize(
    "args,expected",
    [
        (
            ["method=foo"],
            "unknown method 'foo'; choose one of: bandit, offline_st, online_st, prefixrl, reft, sft",
        ),
        (["method.kl_coef=abc"], "could not be converted to Float"),
        (["method.kl_cof=0.1"], "did you mean kl_coef"),
        (["dataset=gsm9k"], "unknown dataset 'gsm9k'"),
        (["method.advantage=rloo"], "rollouts_per_query to 2 or more"),
        (["-m", "method.kl_coef=0.01,abc"], "could not be converted to Float"),
        (["-m", "method=reft,fancy"], "unknown method 'fancy'"),
        (["dataset=mathqa_numeric"], "dataset.path=DIR"),
        (
            ["method=sft", "method.kl_coef=0.1"],
            "method=sft has no knob 'kl_coef' (it belongs to method=reft, prefixrl, bandit)",
        ),
        (["-m", "method=reft,offline_st", "method.value_lr=1e-3"], "method=offline_st has no"),
        (["method.kl_coef=nan"], "method.kl_coef=nan is not a finite number; it must be >= 0"),
        (["seed=-1"], "seed=-1 must lie in [0, 4294967295]"),
        (
            ["hydra.run.dir=/proc/reftlab/run"],
            "hydra.run.dir=/proc/reftlab/run: cannot write in /proc",
        ),
        (["-m", "hydra.sweep.dir=/proc/sweep", "seed=1,2"], "hydra.sweep.dir=/proc/sweep: cannot"),
        (["eval.samples=4", "eval.temperature=0"], "set eval.temperature > 0"),
    ],
)
def test_bad_overrides_fail_in_one_line(tmp_path, args, expected):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("reftlab: error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    # Nothing was launched, so nothing was written.
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()


def test_dry_run_prints_the_plan_without_loading_a_model(tmp_path):
    result = run_cli("dry_run=true", "budget=smoke", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "stages:  sft_warmup -> ppo -> evaluate" in out
    assert "train:   32 of 8000" in out and "test:    16 of 400" in out
    assert "outputs: " in out and "metrics.jsonl" in out
    assert not list(tmp_path.rglob("metrics.jsonl"))


def test_dry_run_imports_no_model_library(tmp_path):
    probe = (
        "import sys\n"
        "from reftlab.app.cli import main\n"
        "try:\n    main(['dry_run=true'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_cfg_job_prints_the_composed_config(tmp_path):
    result = run_cli("--cfg", "job", "method=bandit", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "name: bandit" in result.stdout and "rollouts_per_query: 1" in result.stdout
