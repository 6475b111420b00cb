"""Checkpoint and requeue on SLURM's warning signal (time limit or preemption), then resume.

submitit asks SLURM for `--signal=USR2@<signal_delay_s>` and installs a USR2 handler that calls
the job's `checkpoint()` (hydra-submitit-launcher's resubmits the same job with the same
overrides), runs `scontrol requeue` and exits. Exiting wherever the signal lands would lose the
steps since the last `save_every` checkpoint, so reftlab chains a handler in front of it:

1. USR2 arrives: `_on_signal` only records it and arms a fallback timer.
2. A training loop sees `ctx.preempt_requested()` at its next step boundary (every process
   agrees on the same step), writes a step checkpoint and calls `requeue()`; a stage boundary
   does the same (progress.json is the checkpoint there).
3. `requeue()` runs submitit's handler: the job is pickled again, requeued, and exits.
4. The requeued job (SLURM_RESTART_COUNT >= 1) finds progress.json in its run dir and resumes
   (`app.rundir.decide`), with the step counter where the checkpoint left it.

If no boundary comes within the grace time (a long evaluation, a step slower than the signal
delay), the timer hands over anyway and the requeued job resumes from the last checkpoint.
Outside submitit (no USR2 handler installed) USR2 keeps its default.

SIGTERM (`kill`, a container stop, a scheduler other than submitit's) takes the same path: the
checkpoint at the next step boundary, then instead of a requeue the process exits with status
143 (128 + SIGTERM, what the sender expects of a process SIGTERM ended) and a line saying how to
resume. A second SIGTERM, or the grace time running out, exits at once from the last checkpoint.
Under submitit SIGTERM is left to submitit, which ignores it on purpose (SLURM sends it after
USR2 when it requeues or cancels the job).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any, NoReturn

from reftlab.runtime import distributed

PREEMPT_SIGNAL_ENV = "SUBMITIT_PREEMPT_SIGNAL"  # submitit's own override of USR2
GRACE_ENV = "REFTLAB_PREEMPT_GRACE_S"
# slurmctld looks at time limits about every 30 s (its PERIODIC_TIMEOUT).
SLURM_CHECK_INTERVAL_S = 30.0
DEFAULT_GRACE_S = 45.0
# Exit status after a SIGTERM's checkpoint: 128 + 15, as if SIGTERM had ended the process.
TERM_EXIT = 143


@dataclass
class _State:
    installed: bool = False
    requested: bool = False
    signum: int = 0
    frame: FrameType | None = None
    original: Any = None
    previous_alarm: Any = None
    grace_s: float = DEFAULT_GRACE_S
    # SIGTERM, when reftlab handles it (outside submitit): its handler before reftlab's.
    term_installed: bool = False
    term_original: Any = None
    resume_hint: str = ""


_state = _State()


def preempt_signal() -> signal.Signals:
    return signal.Signals[f"SIG{os.environ.get(PREEMPT_SIGNAL_ENV, 'USR2')}"]


def restart_count(environ: Mapping[str, str]) -> int:
    """How many times SLURM has restarted this job (requeue after a timeout or preemption)."""
    try:
        return int(environ.get("SLURM_RESTART_COUNT", "0"))
    except ValueError:
        return 0


def grace_seconds(signal_delay_s: float | None, environ: Mapping[str, str]) -> float:
    """How long to wait for a step boundary before handing over anyway.

    slurmctld acts at periodic checks (about every 30 s): it sends the signal at the first check
    that is less than `signal_delay_s + 30` seconds before the limit, and ends the job at the
    first check past it, so at least `max(signal_delay_s, 30)` seconds are left after the
    signal. Half of that; `REFTLAB_PREEMPT_GRACE_S` overrides it.
    """
    if GRACE_ENV in environ:
        return float(environ[GRACE_ENV])
    if signal_delay_s is None:
        return DEFAULT_GRACE_S
    return max(signal_delay_s, SLURM_CHECK_INTERVAL_S) / 2


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _state.requested:
        if signum == signal.SIGTERM:  # asked twice: stop now, from the last checkpoint
            _hand_over(wait_for_others=False)
        return
    _state.requested, _state.signum, _state.frame = True, signum, frame
    then = "exiting" if signum == signal.SIGTERM else "requeueing"
    print(
        f"[preemption] {signal.Signals(signum).name} received: checkpointing at the next step "
        f"boundary (within {_state.grace_s:.0f} s), then {then}",
        file=sys.stderr,
        flush=True,
    )
    _state.previous_alarm = signal.signal(signal.SIGALRM, _on_grace_expired)
    signal.setitimer(signal.ITIMER_REAL, _state.grace_s)


def _on_grace_expired(signum: int, frame: FrameType | None) -> None:
    print(
        "[preemption] no step boundary within the grace time: stopping; the run resumes from "
        "its last checkpoint",
        file=sys.stderr,
        flush=True,
    )
    _hand_over(wait_for_others=False)


def install(grace_s: float = DEFAULT_GRACE_S, resume_hint: str = "") -> bool:
    """Put reftlab's handler in front of submitit's USR2 handler, and on SIGTERM where nothing
    else handles it; False when neither was installed. `resume_hint` is the command line that
    continues the run, printed when SIGTERM stops it."""
    if _state.installed or _state.term_installed:
        return True
    _state.requested, _state.grace_s, _state.resume_hint = False, grace_s, resume_hint
    sig = preempt_signal()
    original = signal.getsignal(sig)
    if callable(original):  # submitit's handler, to hand over to
        _state.installed, _state.original = True, original
        signal.signal(sig, _on_signal)
    if sig != signal.SIGTERM and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        _state.term_installed, _state.term_original = True, signal.SIG_DFL
        signal.signal(signal.SIGTERM, _on_signal)
    return _state.installed or _state.term_installed


def uninstall() -> None:
    """Give the signals back to their earlier handlers and disarm the timer."""
    if not (_state.installed or _state.term_installed):
        return
    signal.setitimer(signal.ITIMER_REAL, 0)
    if _state.previous_alarm is not None:
        signal.signal(signal.SIGALRM, _state.previous_alarm)
    if _state.installed:
        signal.signal(preempt_signal(), _state.original)
    if _state.term_installed:
        signal.signal(signal.SIGTERM, _state.term_original)
    _state.__init__()


@contextmanager
def guard(grace_s: float = DEFAULT_GRACE_S, resume_hint: str = "") -> Iterator[bool]:
    """`install` for the duration of a job; yields whether a handler is active."""
    active = install(grace_s, resume_hint)
    try:
        yield active
    finally:
        uninstall()


def requested() -> bool:
    """Whether any process of the run got the signal. A collective when several processes run
    with the handler (all of them installed it), so call it at the same point on all."""
    if not (_state.installed or _state.term_installed):
        return False
    return distributed.any_process(_state.requested)


def requeue() -> NoReturn:
    """Hand over once every process's checkpoint is written: requeue (SLURM's signal) or exit
    (SIGTERM)."""
    _hand_over(wait_for_others=True)


def _hand_over(wait_for_others: bool) -> NoReturn:
    signal.setitimer(signal.ITIMER_REAL, 0)
    if wait_for_others:
        distributed.barrier()
    if _state.signum == signal.SIGTERM:
        _exit_after_sigterm()
    original: Callable[[int, FrameType | None], None] = _state.original
    signum = _state.signum or preempt_signal()
    # submitit's handler: rank 0 checkpoints the job, requeues it and exits; the other ranks
    # return, and wait for the requeue to stop them.
    original(signum, _state.frame)
    if not distributed.current_world().is_main:
        time.sleep(_state.grace_s)
    raise SystemExit(-1)


def _exit_after_sigterm() -> NoReturn:
    if distributed.current_world().is_main:
        hint = f"; resume with: {_state.resume_hint}" if _state.resume_hint else ""
        print(f"reftlab: stopped by SIGTERM (exit {TERM_EXIT}){hint}", file=sys.stderr, flush=True)
    raise SystemExit(TERM_EXIT)
