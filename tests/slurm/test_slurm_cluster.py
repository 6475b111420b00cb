"""Real jobs through real submitit on the local SLURM: results, timeout requeue, scancel.

Nothing is mocked: sbatch, srun, the time-limit signal, `scontrol requeue` and sacct are the
real ones, against the daemons that launchers/slurm/start.sh runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
import submitit
from submitit.core.utils import UncompletedJobError

pytestmark = pytest.mark.slurm

REPO_ROOT = Path(__file__).resolve().parents[2]
# The jobs unpickle the functions below in a fresh interpreter that cannot import this test
# module (pytest imports it by path), so they travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

# SLURM sends USR2 this long before the 1-minute limit, i.e. from 10 s into the run; slurmctld
# checks time limits about every 30 s, so the signal lands 10 to 40 s after the job starts.
TIMEOUT_SIGNAL_DELAY_S = 50
STEP_S = 0.5
STEPS_AFTER_REQUEUE = 2


def multiply(a: int, b: int) -> tuple[int, str, str]:
    """The product, and the job id and partition SLURM gave the process that computed it."""
    return a * b, os.environ["SLURM_JOB_ID"], os.environ["SLURM_JOB_PARTITION"]


def write_then_sleep(path: str) -> None:
    Path(path).write_text("started\n")
    time.sleep(600)


class StepCounter(submitit.helpers.Checkpointable):
    """Counts steps into a file (one line `step requeues`) until the time limit's signal.

    Before its first requeue it steps forever; afterwards it stops after
    STEPS_AFTER_REQUEUE more steps. submitit's checkpoint() pickles this object with `step`,
    so a requeued run continues the count instead of starting again from 1.
    """

    def __init__(self, counter_file: str) -> None:
        self.counter_file = counter_file
        self.step = 0
        self.requeues = 0

    def __call__(self) -> int:
        steps_this_run = 0
        while self.requeues == 0 or steps_this_run < STEPS_AFTER_REQUEUE:
            time.sleep(STEP_S)
            # The count and its line change together: USR2 (the checkpoint) waits until both did.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
            self.step += 1
            with open(self.counter_file, "a") as f:
                f.write(f"{self.step} {self.requeues}\n")
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR2})
            steps_this_run += 1
        return self.step

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        self.requeues += 1
        return super().checkpoint(*args, **kwargs)


def make_executor(folder: Path, partition: str, **params) -> submitit.AutoExecutor:
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=3)
    defaults = {"slurm_partition": partition, "cpus_per_task": 1, "mem_gb": 1, "timeout_min": 5}
    executor.update_parameters(**{**defaults, **params})
    return executor


def wait_until(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {seconds:.0f} s")
        time.sleep(0.5)


def wait_done(job: submitit.Job, seconds: float) -> None:
    """Like job.wait(), with a deadline, and asking sacct at every poll (not every minute)."""
    try:
        wait_until(lambda: job.done(force_check=True), seconds, f"job {job.job_id} finishing")
    except BaseException:
        job.cancel(check=False)
        raise


def sacct_states(job_id: str, field: str = "State") -> list[str]:
    """One value per run of the job, oldest first; -D keeps the runs a requeue replaced."""
    out = subprocess.run(
        ["sacct", "-n", "-P", "-X", "-D", "-j", job_id, "-o", field],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.splitlines()


def final_sacct_states(job_id: str) -> list[str]:
    """sacct's states once the last run's end has reached the database (it lags by ~1 s)."""
    terminal = ("COMPLETED", "CANCELLED", "FAILED", "TIMEOUT")

    def last_run_ended() -> bool:
        states = sacct_states(job_id)
        return bool(states) and states[-1].startswith(terminal)

    wait_until(last_run_ended, 30, f"sacct recording the end of job {job_id}")
    return sacct_states(job_id)


@pytest.fixture(scope="module")
def timed_out_job(slurm_cluster, tmp_path_factory):
    folder = tmp_path_factory.mktemp("requeue")
    executor = make_executor(
        folder,
        slurm_cluster.partition,
        timeout_min=1,
        slurm_signal_delay_s=TIMEOUT_SIGNAL_DELAY_S,
    )
    counter_file = folder / "steps.txt"
    job = executor.submit(StepCounter(str(counter_file)))
    yield job, counter_file
    job.cancel(check=False)


@pytest.fixture(scope="module", autouse=True)
def _submit_timed_out_job_first(timed_out_job):
    """Submitted before the other tests so that its wait for the time limit overlaps them
    (one core runs it, the other runs the rest); the test that checks it comes last."""


def test_function_runs_on_the_debug_partition_and_returns(slurm_cluster, tmp_path):
    job = make_executor(tmp_path, slurm_cluster.partition).submit(multiply, 6, 7)
    wait_done(job, 60)
    assert job.result() == (42, job.job_id, "debug")
    assert final_sacct_states(job.job_id) == ["COMPLETED"]


def test_hydra_sweep_runs_through_the_slurm_local_profile(slurm_cluster, tmp_path):
    sweep_dir = tmp_path / "sweep"
    overrides = ["dry_run=true", "seed=0,1", "hydra/launcher=slurm_local"]
    command = [sys.executable, "-m", "reftlab", "-m", *overrides, f"hydra.sweep.dir={sweep_dir}"]
    pythonpath = os.pathsep.join(
        filter(None, [str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH")])
    )
    result = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONPATH": pythonpath},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    scripts = list((sweep_dir / ".submitit").glob("*/*_submission.sh"))
    assert len(scripts) == 1, scripts
    script = scripts[0].read_text()
    assert "#SBATCH --partition=debug" in script and "#SBATCH --signal=USR2@60" in script
    array_id = scripts[0].parent.name
    for task, seed in ((0, 0), (1, 1)):
        log = sweep_dir / ".submitit" / f"{array_id}_{task}" / f"{array_id}_{task}_0_log.out"
        assert f"outputs: {sweep_dir}/{task}_seed={seed}" in log.read_text()
        assert final_sacct_states(f"{array_id}_{task}") == ["COMPLETED"]


def test_scancel_reports_cancelled_and_keeps_the_jobs_files(slurm_cluster, tmp_path):
    marker = tmp_path / "marker.txt"
    job = make_executor(tmp_path, slurm_cluster.partition).submit(write_then_sleep, str(marker))
    wait_until(marker.exists, 60, f"job {job.job_id} writing {marker}")

    subprocess.run(["scancel", job.job_id], check=True)
    wait_done(job, 30)

    assert job.state.startswith("CANCELLED")
    assert final_sacct_states(job.job_id)[-1].startswith("CANCELLED")
    # submitit waits up to 15 s for a result file in case a shared file system is slow; a
    # cancelled job never writes one, and this file system is local.
    job._results_timeout_s = 1
    with pytest.raises(UncompletedJobError, match="CANCELLED"):
        job.result()
    assert marker.read_text() == "started\n"
    assert "Starting with JobEnvironment" in job.stdout()


def test_timed_out_job_is_requeued_and_resumes_its_count(timed_out_job):
    job, counter_file = timed_out_job
    # First run: 10-40 s to the signal; requeued runs wait cred_expire (10 s) before restarting.
    wait_done(job, 150)

    rows = [tuple(map(int, line.split())) for line in counter_file.read_text().splitlines()]
    steps = [step for step, _ in rows]
    requeues = [requeue for _, requeue in rows]
    # One count across all runs: 1, 2, ..., n with no restart from 1 and no step lost.
    assert steps == list(range(1, len(rows) + 1))
    assert requeues[0] == 0 and requeues == sorted(requeues) and requeues[-1] >= 1
    assert requeues.count(requeues[-1]) == STEPS_AFTER_REQUEUE
    assert job.result() == len(rows)
    # SLURM's record: a run that the requeue replaced, then the run that completed.
    states = final_sacct_states(job.job_id)
    assert states[-1] == "COMPLETED" and "REQUEUED" in states[:-1]
    assert set(sacct_states(job.job_id, "Timelimit")) == {"00:01:00"}
    # submitit took the USR2 as the time limit, not as a preemption.
    assert "this job is timed-out" in job.stderr()
