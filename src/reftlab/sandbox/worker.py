"""A long-lived sandbox worker: reads jobs on stdin, runs each program in a fresh confined fork.

Started by ``SandboxPool`` as ``python -I -c ...`` in its own session with a minimal
environment. Forking from this warmed process (modules already imported) costs about a
millisecond, against tens of milliseconds for a fresh interpreter, and every program starts from
the same pristine state: nothing one program changes is visible to the next.

Frames (see ``protocol``): first ``settings`` in, ``{"ready", "isolation"}`` out; then one job
``{"token", "source", "timeout"}`` in and one result ``{"token", "status", ...}`` out at a time.
"""

from __future__ import annotations

import gc
import importlib
import json
import math
import os
import selectors
import shutil
import signal
import tempfile
import time

from reftlab.sandbox import confine, harness, protocol

_STDOUT, _STDERR, _RESULT = 0, 1, 2
# Enough for the one-line JSON result the harness writes.
_MAX_RESULT_BYTES = 64 * 1024
_READ_CHUNK = 65536
# What the harness itself may report; "timeout" is only ever decided here.
_REPORTED_STATUSES = ("ok", "error", "no_result", "crashed")
# Used only where pidfd_open is missing (Linux < 5.3): how often to check for the child's exit.
_POLL_SECONDS = 0.002


# Calls that make a preloaded package import the submodules it loads lazily (sympy's solve
# brings in sympy.tensor, simplify sympy.physics.units...), which a confined program could not
# read from disk. Run once in the worker, right after the import.
WARM_UPS = {
    "sympy": (
        "x, y = sympy.symbols('x y')\n"
        "sympy.solve(2 * x - 36, x); sympy.solve([x + y - 30, x - y - 6], [x, y])\n"
        "sympy.solveset(x**2 - 4, x, domain=sympy.S.Reals); sympy.linsolve([x + y - 3], [x, y])\n"
        "sympy.simplify((x**2 - 1) / (x - 1)); sympy.nsolve(x**2 - 2, x, 1)\n"
        "sympy.integrate(x**2, (x, 0, 3)); sympy.diff(x**3, x); sympy.limit(1 / x, x, sympy.oo)\n"
        "sympy.summation(x, (x, 1, 10)); sympy.Sum(x, (x, 1, 3)).doit()\n"
        "sympy.Product(x, (x, 1, 3)).doit(); sympy.nsimplify(0.5); sympy.factor(x**2 - 1)\n"
        "sympy.N(sympy.sqrt(2)); sympy.Rational(1, 3) + 1; sympy.Matrix([[1, 2], [3, 4]]).inv()\n"
        "sympy.sympify('2*x + 1'); sympy.roots(x**2 - 1); sympy.factorint(60); str(x**2)\n"
    ),
    "numpy": "numpy.linalg.solve(numpy.eye(2), numpy.ones(2)); str(numpy.arange(3) / 2)\n",
}


def preload_modules(names: list[str]) -> None:
    """Import what programs may use, before any fork, so that no program reads a file."""
    for name in names:
        module = importlib.import_module(name)
        if name in WARM_UPS:
            exec(WARM_UPS[name], {name: module})  # noqa: S102 - fixed code of our own
    # datetime.strptime imports _strptime lazily; localtime reads the zone file once.
    importlib.import_module("_strptime")
    time.localtime()
    # Move everything loaded so far out of the collector's reach: a program's garbage collection
    # then does not touch (and copy-on-write) the worker's pages, which halves the fork cost.
    gc.freeze()


def _address_space_bytes() -> int:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[0])
    return pages * os.sysconf("SC_PAGE_SIZE")


class _Output:
    """One pipe's captured bytes: the first ``cap`` kept, the rest counted and dropped."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        room = self.cap - len(self.data)
        self.data += chunk[:room]
        self.dropped += max(0, len(chunk) - room)

    def text(self) -> str:
        text = self.data.decode("utf-8", errors="replace")
        return text + f"\n[... {self.dropped} more bytes dropped]" if self.dropped else text


def _read_into(fd: int, output: _Output) -> str:
    """Read what is available into ``output``: "data", "empty" (nothing yet) or "eof"."""
    try:
        chunk = os.read(fd, _READ_CHUNK)
    except BlockingIOError:
        return "empty"
    if not chunk:
        return "eof"
    output.add(chunk)
    return "data"


def _open_exit_watch(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _collect(pid: int, read_fds: list[int], outputs: list[_Output], deadline: float) -> bool:
    """Read the program's pipes until it exits or the deadline passes; True if it exited."""
    selector = selectors.DefaultSelector()
    for index, fd in enumerate(read_fds):
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ, index)
    exit_fd = _open_exit_watch(pid)
    if exit_fd is not None:
        selector.register(exit_fd, selectors.EVENT_READ, "exit")
    exited = False
    try:
        while not exited:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            wait = remaining if exit_fd is not None else min(remaining, _POLL_SECONDS)
            for key, _ in selector.select(wait):
                if key.data == "exit":
                    exited = True
                elif _read_into(key.fd, outputs[key.data]) == "eof":
                    selector.unregister(key.fd)
            if exit_fd is None:
                exited = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        # What the program wrote just before exiting may still sit in the pipes.
        # Bounded, since a writer that outlived the program could keep a pipe busy forever.
        for index, fd in enumerate(read_fds):
            for _ in range(64):
                if _read_into(fd, outputs[index]) != "data":
                    break
    finally:
        selector.close()
        if exit_fd is not None:
            os.close(exit_fd)
    return exited


def _kill_session(pid: int) -> None:
    """Kill the program and anything left in its session (it called setsid, so pgid == pid)."""
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _parse_report(raw: bytes) -> dict | None:
    """The harness's last JSON line, if it is a well-formed report; None otherwise."""
    lines = [line for line in raw.split(b"\n") if line.strip()]
    if not lines:
        return None
    try:
        report = json.loads(lines[-1])
    except ValueError:
        return None
    fields_ok = isinstance(report, dict) and report.get("status") in _REPORTED_STATUSES
    for key in ("value", "value_type", "error"):
        fields_ok = fields_ok and isinstance(report.get(key), (str, type(None)))
    return report if fields_ok else None


def _classify(report: dict | None, wait_status: int, cpu_seconds: float, cpu_limit: int) -> dict:
    """Status, value and error from the harness report and how the process ended."""
    if report is not None:
        return {key: report[key] for key in ("status", "value", "value_type", "error")}
    if cpu_seconds >= cpu_limit:
        return {"status": "timeout", "error": f"CPU time limit of {cpu_limit}s exceeded"}
    if os.WIFSIGNALED(wait_status):
        name = signal.Signals(os.WTERMSIG(wait_status)).name
        return {"status": "crashed", "error": f"killed by {name}"}
    code = os.WEXITSTATUS(wait_status)
    if code == harness.SETUP_FAILED_EXIT:
        return {"status": "crashed", "error": "sandbox setup failed"}
    return {"status": "no_result", "error": f"exited with code {code} before returning"}


def run_job(source: str, timeout: float, settings: dict, uid: int | None, abi: int) -> dict:
    """Run one program in a fresh fork; return the result fields (without the token)."""
    start = time.monotonic()
    cpu_limit = math.ceil(timeout) + 1
    limits = confine.ProgramLimits(
        cpu_seconds=cpu_limit, address_space_bytes=settings["address_space_bytes"]
    )
    workdir = tempfile.mkdtemp(prefix="p", dir=settings["base_dir"])
    pipes = [os.pipe() for _ in range(3)]
    read_fds = [read_fd for read_fd, _ in pipes]
    try:
        if uid is not None:
            os.chown(workdir, uid, uid)
        pid = os.fork()
        if pid == 0:
            # The child must never return into this function (its cleanup belongs to the worker).
            try:
                write_fds = (pipes[_STDOUT][1], pipes[_STDERR][1], pipes[_RESULT][1])
                harness.run_program(source, settings["entry"], workdir, uid, limits, abi, write_fds)
            finally:
                os._exit(harness.SETUP_FAILED_EXIT)
        for _, write_fd in pipes:
            os.close(write_fd)
        cap = settings["max_output_bytes"]
        outputs = [_Output(cap), _Output(cap), _Output(_MAX_RESULT_BYTES)]
        exited = _collect(pid, read_fds, outputs, start + timeout)
        _kill_session(pid)
        _, wait_status, usage = os.wait4(pid, 0)
    finally:
        for read_fd in read_fds:
            os.close(read_fd)
        shutil.rmtree(workdir, ignore_errors=True)
    if exited:
        cpu_seconds = usage.ru_utime + usage.ru_stime
        fields = _classify(
            _parse_report(bytes(outputs[_RESULT].data)), wait_status, cpu_seconds, cpu_limit
        )
    else:
        fields = {"status": "timeout", "error": f"wall-clock limit of {timeout:g}s exceeded"}
    fields.update(
        stdout=outputs[_STDOUT].text(),
        stderr=outputs[_STDERR].text(),
        seconds=time.monotonic() - start,
    )
    return fields


def main() -> None:
    """Serve jobs from fd 0, answer on fd 1, until the pool closes the pipe."""
    # SLURM signals every process of a job before its time limit (USR1/USR2); the trainer
    # handles that signal, and a worker killed by it would fail the program it was running.
    for name in ("SIGUSR1", "SIGUSR2"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    settings = protocol.read_frame(0)
    if settings is None:
        return
    isolation = confine.confine_worker(settings["isolate_network"], settings["drop_privileges"])
    preload_modules(settings["preload"])
    settings["address_space_bytes"] = _address_space_bytes() + settings["memory_bytes"]
    uid = settings["uid"] if isolation.uid_drop else None
    protocol.write_frame(1, {"ready": True, "isolation": isolation.to_dict()})
    while (job := protocol.read_frame(0)) is not None:
        try:
            fields = run_job(job["source"], job["timeout"], settings, uid, isolation.landlock_abi)
        except Exception as exc:  # noqa: BLE001 - one bad job must not take the worker down
            fields = {"status": "crashed", "error": f"sandbox worker error: {exc!r}"}
        protocol.write_frame(1, {"token": job["token"], **fields})
