"""reftlab itself on the local SLURM: a sweep through the `slurm_local` profile, and a run that
hits its time limit, checkpoints on SLURM's signal, is requeued and resumes where it stopped.

Nothing is mocked: `reftlab -m ... hydra/launcher=slurm_local` submits through
hydra-submitit-launcher, and the time-limit signal, `scontrol requeue` and the restart are
SLURM's own. This file runs after test_slurm_cluster.py, whose long job would otherwise hold
one of the two CPUs of the local node.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slurm

REPO_ROOT = Path(__file__).resolve().parents[2]
# The time-limit run: 32 examples, 8 per step, 220 epochs = 880 SFT steps, 35 s to 2 minutes of
# training on this 2-core machine (8 to 25 steps a second, with other work on it).
LONG_SFT = [
    "method=sft",
    "budget=smoke",
    "budget.max_epochs=null",
    "dataset.train_size=64",
    "method.sft_batch_size=8",
    "method.warmup_epochs=220",
    "save_every=40",
]
LONG_STEPS = 880
# slurmctld checks limits every 30 s, and sends the signal at the first check less than
# signal_delay_s + 30 s before the limit. The job starts with a 10-minute limit; once training
# is under way the limit is cut to 1 minute, which with a 45 s delay makes the next check (at
# most 30 s later, hundreds of steps before training ends) send the signal. Once SLURM has
# requeued the job the limit goes back to 10 minutes, so that the resumed run finishes instead
# of being signalled again at once.
TIME_LIMIT = ["hydra.launcher.timeout_min=10", "hydra.launcher.signal_delay_s=45"]
STEPS_BEFORE_CUT = 20


def reftlab_command(sweep_dir: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "reftlab",
        "-m",
        *overrides,
        "hydra/launcher=slurm_local",
        f"hydra.sweep.dir={sweep_dir}",
    ]


def job_env(cache: Path) -> dict[str, str]:
    pythonpath = os.pathsep.join(
        filter(None, [str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH")])
    )
    return {**os.environ, "PYTHONPATH": pythonpath, "REFTLAB_CACHE": str(cache)}


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def sacct_states(job_id: str) -> list[str]:
    """One state per run of the job, oldest first (-D keeps the runs a requeue replaced)."""
    out = subprocess.run(
        ["sacct", "-n", "-P", "-X", "-D", "-j", job_id, "-o", "State"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.splitlines()


def final_sacct_states(job_id: str) -> list[str]:
    """sacct's states once the job's end has reached the database (about a second after it)."""
    wait_until(
        lambda: sacct_states(job_id)[-1] not in ("RUNNING", "PENDING"), 30, f"{job_id} ending"
    )
    return sacct_states(job_id)


def wait_until(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {seconds:.0f} s")
        time.sleep(0.5)


def job_folders(sweep_dir: Path) -> list[Path]:
    return [p for p in (sweep_dir / ".submitit").glob("*") if p.is_dir()]


def sft_steps(sweep_dir: Path) -> int:
    found = list(sweep_dir.glob("0_*/metrics.jsonl"))
    return sum("train/sft_loss" in line for line in found[0].open()) if found else 0


class TimeLimitControl(threading.Thread):
    """Cuts the job's limit to 1 minute once STEPS_BEFORE_CUT steps are logged, and gives it 10
    minutes back as soon as SLURM has requeued it (the requeued job starts ~10 s later)."""

    def __init__(self, sweep_dir: Path, job_id: str):
        super().__init__(daemon=True)
        self.sweep_dir, self.job_id = sweep_dir, job_id
        self.error: BaseException | None = None

    def set_limit(self, minutes: int) -> None:
        command = ["scontrol", "update", f"JobId={self.job_id}", f"TimeLimit={minutes}"]
        subprocess.run(command, check=True, capture_output=True)

    def run(self) -> None:
        try:
            wait_until(lambda: sft_steps(self.sweep_dir) >= STEPS_BEFORE_CUT, 120, "training")
            self.set_limit(1)
            wait_until(lambda: "REQUEUED" in sacct_states(self.job_id), 90, "the requeue")
            self.set_limit(10)
        except BaseException as exc:  # pytest.fail raises a BaseException
            self.error = exc


@pytest.fixture(scope="module")
def time_limited_run(slurm_cluster, tmp_path_factory):
    """The long run, submitted first so that it overlaps the sweep test."""
    root = tmp_path_factory.mktemp("time_limit")
    sweep_dir = root / "sweep"
    command = reftlab_command(sweep_dir, *LONG_SFT, *TIME_LIMIT)
    log = (root / "cli.log").open("w")
    proc = subprocess.Popen(
        command, cwd=root, stdout=log, stderr=subprocess.STDOUT, env=job_env(root / "cache")
    )
    job_id = None
    try:
        wait_until(lambda: job_folders(sweep_dir), 60, "the submission of the time-limited job")
        job_id = job_folders(sweep_dir)[0].name
        control = TimeLimitControl(sweep_dir, job_id)
        control.start()
        yield proc, sweep_dir, job_id, root / "cli.log", control
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if job_id is not None:  # a failed test leaves no job behind
            subprocess.run(["scancel", job_id], check=False)
        log.close()


@pytest.fixture(scope="module", autouse=True)
def _submit_time_limited_run_first(time_limited_run):
    """Its wait for the time limit overlaps the sweep test; the test that checks it comes last."""


def test_sweep_through_slurm_local_completes_and_shares_the_warmup(slurm_cluster, tmp_path):
    """Two ReFT points that differ only in the KL coefficient, which the warm-up does not read,
    share one cached SFT warm-up: the job that gets the cache lock first trains it, the other
    waits and reuses it."""
    sweep_dir = tmp_path / "sweep"
    result = subprocess.run(
        reftlab_command(sweep_dir, "method=reft", "budget=smoke", "method.kl_coef=0.01,0.05"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        env=job_env(tmp_path / "cache"),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    run_dirs = sorted(p for p in sweep_dir.iterdir() if p.name[0].isdigit())
    assert [p.name.split("_")[0] for p in run_dirs] == ["0", "1"]
    trained = []
    for run_dir in run_dirs:
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["method"] == "reft" and 0.0 <= summary["test_accuracy"] <= 1.0
        trained.append(any("train/sft_loss" in r for r in metrics(run_dir)))
    assert sorted(trained) == [False, True]
    assert len(list((tmp_path / "cache" / "stages").glob("sft-*"))) == 1
    array_id = job_folders(sweep_dir)[0].name
    for task in (0, 1):
        assert final_sacct_states(f"{array_id}_{task}") == ["COMPLETED"]


def test_time_limit_checkpoints_requeues_and_resumes_the_step_counter(time_limited_run):
    proc, sweep_dir, job_id, cli_log, control = time_limited_run
    control.join(timeout=240)
    if control.error is not None:
        raise control.error
    try:
        proc.wait(timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the run did not finish; see {cli_log}")
    assert proc.returncode == 0, cli_log.read_text()[-3000:]

    (run_dir,) = [p for p in sweep_dir.iterdir() if p.name.startswith("0_")]
    records = metrics(run_dir)
    steps = [r["step"] for r in records if "train/sft_loss" in r]
    # One count across both runs: 1..880, nothing lost, nothing logged twice.
    assert steps == list(range(1, LONG_STEPS + 1))
    assert len([r for r in records if "eval/accuracy" in r]) == 1
    assert json.loads((run_dir / "summary.json").read_text())["method"] == "sft"
    states = final_sacct_states(job_id)
    assert states[0] == "REQUEUED" and states[-1] == "COMPLETED", states

    log = "".join(p.read_text() for p in (sweep_dir / ".submitit" / job_id).glob("*_log.*"))
    # The signal was the time limit's (submitit tells the two apart by the time run) ...
    assert "this job is timed-out" in log
    # ... reftlab checkpointed at the step boundary after it, and the requeued job resumed from
    # exactly that checkpoint, on its own (the overrides say nothing about resuming).
    assert "SIGUSR2 received" in log
    checkpointed = int(log.split("[sft] checkpointed at step ")[1].split()[0])
    assert STEPS_BEFORE_CUT <= checkpointed < LONG_STEPS
    assert "requeued by SLURM (restart 1): resuming" in log
    assert f"[sft] resumed from step-{checkpointed} (global step {checkpointed})" in log


def test_two_tasks_of_one_job_train_data_parallel(slurm_cluster, tmp_path):
    """tasks_per_node=2: submitit starts two processes, reftlab builds torch.distributed from
    SLURM's variables (gloo here), and the run equals one process with grad_accum=2."""
    overrides = [
        "method=bandit",
        "budget=smoke",
        "method.batch_size=5",
        "method.mini_batch_size=4",
        "cot.answer_fallback=last_number",
    ]
    reference = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reftlab",
            *overrides,
            "grad_accum=2",
            f"hydra.run.dir={tmp_path / 'one'}",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # One thread, like each SLURM task (cpus_per_task=1): the same kernels on both sides.
        env={**job_env(tmp_path / "cache_one"), "OMP_NUM_THREADS": "1"},
    )
    sweep_dir = tmp_path / "sweep"
    result = subprocess.run(
        reftlab_command(sweep_dir, *overrides, "hydra.launcher.tasks_per_node=2"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        env=job_env(tmp_path / "cache_two"),
    )
    assert reference.wait(timeout=240) == 0
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    (job,) = job_folders(sweep_dir)
    logs = {task: (job / f"{job.name}_{task}_log.out").read_text() for task in (0, 1)}
    assert "global_rank=1(2)" in logs[1]
    assert "[policy_gradient] weights identical on 2 processes" in logs[0]
    (run_dir,) = [p for p in sweep_dir.iterdir() if p.name.startswith("0_")]

    def without_time(folder: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "time"} for r in metrics(folder)]

    assert without_time(run_dir) == without_time(tmp_path / "one")
    final = Path("checkpoints/policy_gradient/final/model.safetensors")
    two, one = load_file(run_dir / final), load_file(tmp_path / "one" / final)
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=1e-6)


def test_a_gpu_profile_on_a_cluster_without_gpus_is_one_line(slurm_cluster, tmp_path):
    """The GPU profile (`hydra/launcher=slurm`, one GPU a task) submitted to this cluster, which
    has none: the real sbatch refuses the gres request, and reftlab says so in one line naming
    the overrides that fix it, exit 2."""
    command = reftlab_command(tmp_path / "sweep", "method=sft", "budget=smoke")
    command[command.index("hydra/launcher=slurm_local")] = "hydra/launcher=slurm"
    # Within this node's CPUs and memory, so that the GPU request is what sbatch refuses.
    command += ["hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=job_env(tmp_path / "cache")
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("reftlab: error: sbatch refused the job: the cluster's default")
    assert "no GPUs" in last and "hydra/launcher=slurm_local" in last
