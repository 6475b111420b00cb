"""A pool of sandbox worker processes that runs many ``def solution():`` programs in parallel.

Each worker is a separate ``python -I`` process in its own session, started with a minimal
environment (nothing from the trainer's, so no secrets), that forks one confined child per
program (see ``confine`` for the layers). The trainer only exchanges JSON frames with workers;
a worker that dies or stops answering is killed and replaced, and its job is reported as
``crashed`` or ``timeout``. Results come back in input order.

Workers leave when their stdin reaches end of file, so they do not outlive a trainer that dies
however it dies. ``run`` holds a lock, so concurrent callers take turns. Create the pool in the
process that uses it: a forked copy (a fork-started DataLoader worker) would share its pipes.
"""

from __future__ import annotations

import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reftlab.sandbox import protocol
from reftlab.sandbox.confine import PROGRAM_ENV
from reftlab.sandbox.result import CRASHED, STATUSES, TIMEOUT, ExecResult

# What a program may import: these are loaded in the worker before any fork (sympy and numpy
# also run a warm-up there, see ``worker.WARM_UPS``). Other imports fail under Landlock, since a
# confined program cannot read files outside its own directory. The ReFT paper's engine gives
# programs math and sympy.
DEFAULT_PRELOAD = (
    "math",
    "cmath",
    "fractions",
    "decimal",
    "datetime",
    "sympy",
    "numpy",
    "itertools",
    "functools",
    "collections",
    "statistics",
    "random",
    "re",
    "string",
    "operator",
    "numbers",
    "heapq",
    "bisect",
    "copy",
    "time",
    "calendar",
)
# Extra seconds a worker gets beyond the program limit (fork, cleanup) before it counts as hung.
_WORKER_GRACE_S = 5.0
_STARTUP_TIMEOUT_S = 60.0
_MAX_TEXT_CHARS = 100_000
_BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); from reftlab.sandbox.worker import main; main()"
)
_SRC_ROOT = str(Path(__file__).resolve().parents[2])


class SandboxError(RuntimeError):
    """The sandbox itself could not be started (not a program failure)."""


@dataclass
class _Worker:
    slot: int
    process: subprocess.Popen
    decoder: protocol.FrameDecoder = field(default_factory=protocol.FrameDecoder)
    job: int | None = None
    token: str | None = None
    deadline: float = 0.0

    @property
    def fd(self) -> int:
        return self.process.stdout.fileno()  # type: ignore[union-attr]


def _clean_text(value: object, limit: int = _MAX_TEXT_CHARS) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _to_result(frame: dict) -> ExecResult:
    """Build the record from a worker frame, trusting nothing about its shape."""
    status = frame.get("status")
    if status not in STATUSES:
        return ExecResult(status=CRASHED, error="malformed result from sandbox worker")
    seconds = frame.get("seconds")
    return ExecResult(
        status=status,
        value=_clean_text(frame.get("value")),
        value_type=_clean_text(frame.get("value_type"), 100),
        error=_clean_text(frame.get("error"), 2000),
        stdout=_clean_text(frame.get("stdout")) or "",
        stderr=_clean_text(frame.get("stderr")) or "",
        seconds=float(seconds) if isinstance(seconds, (int, float)) else 0.0,
    )


def default_worker_count() -> int:
    """CPUs this process may run on (respects cgroup/SLURM CPU sets, unlike os.cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


class SandboxPool:
    """Persistent workers that execute untrusted programs; call it like ``RunPrograms``.

    Args:
        workers: worker processes (programs run in parallel); default: usable CPUs.
        timeout_s: wall-clock limit per program (the ReFT paper's 10 s); the CPU limit is
            ``ceil(timeout_s) + 1``.
        memory_mb: address space a program may add on top of the warmed worker's.
        max_output_bytes: stdout and stderr kept per program; the rest is dropped.
        preload: modules imported in the worker before forking, i.e. what programs can import.
        entry: the function each program must define and that is called without arguments.
        drop_privileges: when running as root, run programs under a per-worker uid
            (``uid_base + slot``) that owns nothing; ignored when not root.
        isolate_network: when root, give each worker an empty network namespace.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        timeout_s: float = 10.0,
        memory_mb: int = 1024,
        max_output_bytes: int = 8192,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        entry: str = "solution",
        drop_privileges: bool = True,
        uid_base: int = 61000,
        isolate_network: bool = True,
    ) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"a sandbox pool needs at least one worker, got {workers}")
        if not timeout_s > 0 or memory_mb < 1:
            raise ValueError(f"timeout_s and memory_mb must be positive: {timeout_s}, {memory_mb}")
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._base_dir = tempfile.mkdtemp(prefix="reftlab-sandbox-")
        # Traversable but not listable, so a program can live in its own subdirectory.
        os.chmod(self._base_dir, 0o711)
        self._settings = {
            "memory_bytes": memory_mb * 1024 * 1024,
            "max_output_bytes": max_output_bytes,
            "preload": list(preload),
            "entry": entry,
            "drop_privileges": drop_privileges,
            "isolate_network": isolate_network,
            "base_dir": self._base_dir,
        }
        self._uid_base = uid_base
        self.isolation: dict = {}
        self._workers: list[_Worker] = []
        try:
            self._workers = self._start_workers(range(workers or default_worker_count()))
        except BaseException:
            self.close()
            raise

    # -- worker lifecycle ---------------------------------------------------------------------

    def _launch(self, slot: int) -> _Worker:
        log = open(os.path.join(self._base_dir, f"worker-{slot}.log"), "ab")  # noqa: SIM115
        with log:
            process = subprocess.Popen(
                [sys.executable, "-I", "-c", _BOOTSTRAP, _SRC_ROOT],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=dict(PROGRAM_ENV),
                cwd=self._base_dir,
                start_new_session=True,
                close_fds=True,
            )
        worker = _Worker(slot=slot, process=process)
        settings = {**self._settings, "uid": self._uid_base + slot}
        protocol.write_frame(process.stdin.fileno(), settings)  # type: ignore[union-attr]
        return worker

    def _start_workers(self, slots: Sequence[int] | range) -> list[_Worker]:
        """Launch workers and wait until each reports ready (they start in parallel)."""
        started = [self._launch(slot) for slot in slots]
        waiting = {worker.fd: worker for worker in started}
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        with selectors.DefaultSelector() as selector:
            for fd in waiting:
                selector.register(fd, selectors.EVENT_READ)
            while waiting:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SandboxError(self._startup_failure(next(iter(waiting.values()))))
                for key, _ in selector.select(remaining):
                    worker = waiting[key.fd]
                    data = os.read(key.fd, 65536)
                    if not data:
                        raise SandboxError(self._startup_failure(worker))
                    for message in worker.decoder.feed(data):
                        if message.get("ready"):
                            self.isolation = message.get("isolation", {})
                            selector.unregister(key.fd)
                            del waiting[key.fd]
        for worker in started:
            self._selector.register(worker.fd, selectors.EVENT_READ, worker)
        return started

    def _startup_failure(self, worker: _Worker) -> str:
        log = Path(self._base_dir, f"worker-{worker.slot}.log")
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        return f"sandbox worker {worker.slot} failed to start with {sys.executable}:\n{tail}"

    def _stop(self, worker: _Worker) -> None:
        try:
            self._selector.unregister(worker.fd)
        except (KeyError, ValueError):
            pass
        try:
            os.killpg(worker.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        worker.process.wait()
        for stream in (worker.process.stdin, worker.process.stdout):
            if stream is not None:
                stream.close()

    def _replace(self, worker: _Worker) -> None:
        self._stop(worker)
        (fresh,) = self._start_workers([worker.slot])
        self._workers[self._workers.index(worker)] = fresh

    # -- running programs ---------------------------------------------------------------------

    def _submit(self, worker: _Worker, job: int, source: str, timeout_s: float) -> bool:
        worker.job, worker.token = job, secrets.token_hex(8)
        worker.deadline = time.monotonic() + timeout_s + _WORKER_GRACE_S
        message = {"token": worker.token, "source": source, "timeout": timeout_s}
        try:
            protocol.write_frame(worker.process.stdin.fileno(), message)  # type: ignore[union-attr]
        except OSError:
            return False
        return True

    def run(self, programs: Sequence[str], timeout_s: float | None = None) -> list[ExecResult]:
        """Execute every program; one ``ExecResult`` per program, in input order."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        with self._lock:
            if not self._workers:
                raise SandboxError("the sandbox pool is closed")
            try:
                return self._run(list(programs), timeout_s)
            finally:
                # After an interruption (Ctrl-C, a worker that cannot restart) a busy worker's
                # late answer would be taken for the next call's: replace such workers.
                for worker in list(self._workers):
                    if worker.job is not None:
                        worker.job = None
                        self._replace(worker)

    __call__ = run

    def _run(self, programs: list[str], timeout_s: float) -> list[ExecResult]:
        results: list[ExecResult | None] = [None] * len(programs)
        pending = deque(range(len(programs)))

        def finish(worker: _Worker, result: ExecResult) -> None:
            results[worker.job] = result  # type: ignore[index]
            worker.job, worker.token = None, None

        def fail(worker: _Worker, result: ExecResult) -> None:
            finish(worker, result)
            self._replace(worker)

        while pending or any(worker.job is not None for worker in self._workers):
            for worker in list(self._workers):
                if worker.job is None and pending:
                    job = pending.popleft()
                    if not self._submit(worker, job, programs[job], timeout_s):
                        # The worker was already gone, so the program never ran: retry it.
                        worker.job = None
                        pending.appendleft(job)
                        self._replace(worker)
            busy = [worker for worker in self._workers if worker.job is not None]
            if not busy:
                continue
            wait = max(0.0, min(worker.deadline for worker in busy) - time.monotonic())
            for key, _ in self._selector.select(wait):
                self._receive(key.data, finish, fail)
            now = time.monotonic()
            for worker in list(self._workers):
                if worker.job is not None and now > worker.deadline:
                    error = "sandbox worker stopped answering"
                    fail(worker, ExecResult(status=TIMEOUT, error=error))
        return results  # type: ignore[return-value]

    def _receive(self, worker: _Worker, finish, fail) -> None:  # noqa: ANN001
        data = os.read(worker.fd, 1 << 16)
        if not data:
            if worker.job is not None:
                fail(worker, ExecResult(status=CRASHED, error="sandbox worker died"))
            else:
                self._replace(worker)
            return
        try:
            messages = worker.decoder.feed(data)
        except ValueError:
            messages = [{}]  # garbage in the stream: drop this worker
        for message in messages:
            if worker.job is None:
                self._replace(worker)  # nothing was asked of it: a broken worker
                return
            if message.get("token") != worker.token:
                fail(worker, ExecResult(status=CRASHED, error="unexpected frame from worker"))
                return
            finish(worker, _to_result(message))

    # -- shutdown -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop all workers and delete the pool's directory. Safe to call twice."""
        workers, self._workers = self._workers, []
        for worker in workers:
            self._stop(worker)
        self._selector.close()
        shutil.rmtree(self._base_dir, ignore_errors=True)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_workers", None):
            self.close()
