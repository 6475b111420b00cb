"""Two processes (torchrun, gloo on the CPU) against their documented single-process
equivalent, one process with grad_accum=2.

The equivalence: a step's batch is split into (processes x grad_accum) shards with fixed data
and seeds; each shard's loss is its sum over the count of the whole (mini)batch (tokens, or
responses with loss_agg=seq_mean), the advantages are whitened with the moments of the whole
step, and DDP's gradient average over processes is undone by a factor of the process count. So
2 processes x 1 shard and 1 process x 2 shards compute the same per-shard gradients, add them
up (DDP: (2 g0 + 2 g1) / 2, accumulation: g0 + g1; scaling by 2 is exact in floating point) and
take the same steps. With one thread per process on both sides the kernels are the same, so the
weights agree to the bit; the test allows 1e-6 for other BLAS builds, where the sum of two
shard gradients may round differently. A run with grad_accum=1 differs: its one shard samples
its rollouts from one seed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

# Bandit RL on the tiny model: a 12-example SFT warm-up step, then 3 steps of 5 questions with
# minibatches of 4 rollouts (shards of 3 and 2 questions: the second minibatch has 1 row from
# one shard and none from the other, which joins with a zero-weight row), partial credit so
# that the rewards differ. With ReFT's statistics that span shards: advantages whitened over the
# whole step (moments all-reduced across processes) and the loss averaged per response over the
# minibatch's responses on both processes (the token mean's count takes the same path).
OVERRIDES = [
    "method=bandit",
    "budget=smoke",
    "method.sft_batch_size=12",
    "budget.max_rl_steps=3",
    "method.rl_epochs=3",
    "method.batch_size=5",
    "method.mini_batch_size=4",
    "cot.answer_fallback=last_number",
    "method.reward_shape=partial",
    "method.rl_lr=1e-3",
    "method.whiten_advantages=true",
    "method.loss_agg=seq_mean",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(command: list[str], run_dir: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "REFTLAB_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    result = subprocess.run(
        [*command, *OVERRIDES, f"hydra.run.dir={run_dir}"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "time"} for line in lines]


def weights(run_dir: Path, stage: str) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "checkpoints" / stage / "final" / "model.safetensors")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        "-m",
        "reftlab",
    ]
    two = run(torchrun, root / "two", root / "cache_two")
    one = run([sys.executable, "-m", "reftlab", "grad_accum=2"], root / "one", root / "cache_one")
    return (root / "two", two), (root / "one", one)


def test_both_processes_keep_identical_weights(runs):
    (_, two), _ = runs
    # Checked after every training stage by comparing per-tensor sums across the ranks.
    for stage in ("sft_warmup", "policy_gradient"):
        assert f"[{stage}] weights identical on 2 processes" in two.stdout


def test_two_processes_equal_one_process_with_two_shards(runs):
    (two_dir, _), (one_dir, _) = runs
    a, b = weights(two_dir, "policy_gradient"), weights(one_dir, "policy_gradient")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6)
    assert records(two_dir) == records(one_dir)
    for name in ("sft_warmup.jsonl", "evaluate.jsonl"):
        predictions = [(p / "predictions" / name).read_text() for p in (two_dir, one_dir)]
        assert predictions[0] == predictions[1]


def test_rank_zero_alone_writes_the_run(runs):
    (two_dir, _), _ = runs
    # One line per step (rank 1 logs nothing): 3 SFT steps (32 examples, 12 a step), 3 RL steps.
    sft = [r["step"] for r in records(two_dir) if "train/sft_loss" in r]
    rl = [r["step"] for r in records(two_dir) if r["stage"] == "policy_gradient"]
    assert (sft, rl) == ([1, 2, 3], [4, 5, 6])
    summary = json.loads((two_dir / "summary.json").read_text())
    assert summary["eval/n"] == 16  # both halves of the test split were gathered
    evaluated = (two_dir / "predictions" / "evaluate.jsonl").read_text().splitlines()
    assert len(evaluated) == 16 and len({json.loads(x)["id"] for x in evaluated}) == 16
