"""reftlab's USR2 handler in front of submitit's: it defers to a step boundary, hands over when
asked (or when the grace time runs out), and makes a requeued job resume.

A recording function stands in for submitit's handler (which would pickle the job, run
`scontrol requeue` and exit); the signals are real, sent to this process.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from reftlab.errors import ReftlabError
from reftlab.runtime import preemption


class SubmititStandIn:
    """Records its calls; exits like submitit's handler after a requeue."""

    def __init__(self):
        self.calls: list[int] = []

    def __call__(self, signum, frame):
        self.calls.append(signum)
        raise SystemExit(-1)


@pytest.fixture()
def submitit_handler():
    handler = SubmititStandIn()
    previous = signal.signal(signal.SIGUSR2, handler)
    yield handler
    preemption.uninstall()
    signal.signal(signal.SIGUSR2, previous)


def test_outside_submitit_usr2_is_left_alone_and_sigterm_is_handled():
    previous = signal.signal(signal.SIGUSR2, signal.SIG_DFL)
    try:
        assert preemption.install() is True  # SIGTERM's handler
        assert preemption.requested() is False
        assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        preemption.uninstall()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # someone else's choice: kept
        assert preemption.install() is False
    finally:
        preemption.uninstall()
        signal.signal(signal.SIGUSR2, previous)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_sigterm_is_deferred_to_the_step_boundary_then_exits_143():
    previous = signal.signal(signal.SIGUSR2, signal.SIG_DFL)
    try:
        preemption.install(grace_s=30, resume_hint="reftlab resume=true")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert preemption.requested() is True  # still running: the checkpoint comes first
        with pytest.raises(SystemExit) as stop:
            preemption.requeue()
        assert stop.value.code == preemption.TERM_EXIT == 143
    finally:
        preemption.uninstall()
        signal.signal(signal.SIGUSR2, previous)


def test_signal_is_deferred_to_the_step_boundary_then_handed_over(submitit_handler):
    assert preemption.install(grace_s=30) is True
    assert preemption.requested() is False
    os.kill(os.getpid(), signal.SIGUSR2)
    time.sleep(0.05)  # the handler runs between bytecodes of the main thread
    # Recorded only: training goes on to its next step boundary.
    assert preemption.requested() is True
    assert submitit_handler.calls == []
    with pytest.raises(SystemExit):
        preemption.requeue()
    assert submitit_handler.calls == [signal.SIGUSR2]


def test_grace_timer_hands_over_when_no_boundary_comes(submitit_handler):
    preemption.install(grace_s=0.2)
    os.kill(os.getpid(), signal.SIGUSR2)
    with pytest.raises(SystemExit):
        time.sleep(5)  # a long evaluation: no step boundary
    assert submitit_handler.calls == [signal.SIGUSR2]


def test_uninstall_gives_the_signal_back_and_disarms_the_timer(submitit_handler):
    with preemption.guard(grace_s=0.2) as active:
        assert active
        os.kill(os.getpid(), signal.SIGUSR2)
        time.sleep(0.05)
    assert signal.getsignal(signal.SIGUSR2) is submitit_handler
    time.sleep(0.4)  # the timer would have fired by now
    assert submitit_handler.calls == []
    assert preemption.requested() is False


def test_grace_is_half_of_the_time_the_signal_surely_leaves():
    # slurmctld ends the job at a check at least 30 s after the signal's, and at least
    # signal_delay_s after it.
    assert preemption.grace_seconds(120, {}) == 120 / 2
    assert preemption.grace_seconds(15, {}) == 30 / 2
    assert preemption.grace_seconds(None, {}) == preemption.DEFAULT_GRACE_S
    assert preemption.grace_seconds(120, {"REFTLAB_PREEMPT_GRACE_S": "7"}) == 7.0


def test_a_requeued_job_resumes_only_a_run_that_started(tmp_path: Path):
    from reftlab.app.rundir import decide

    assert preemption.restart_count({"SLURM_RESTART_COUNT": "1"}) == 1
    assert preemption.restart_count({}) == 0
    assert decide(tmp_path, False, requeued=True, config={}).resume is False
    (tmp_path / "progress.json").write_text("{}")
    assert decide(tmp_path, False, requeued=True, config={}).mode == "requeue"
    assert decide(tmp_path, True, requeued=False, config={}).mode == "resume"
    with pytest.raises(ReftlabError, match="already holds a run"):
        decide(tmp_path, False, requeued=False, config={})
