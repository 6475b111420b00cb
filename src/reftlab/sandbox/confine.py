"""Process confinement for sandbox workers and the program processes they fork (stdlib only).

Layers, each used where the machine allows it (``WorkerIsolation``, exposed as
``SandboxPool.isolation``, records which are active):

- rlimits (always): CPU seconds, address space, file size 0 (no byte can be written to any
  file, even in the program's own directory), no core dumps, 64 open files, and
  RLIMIT_NPROC=1 so that fork and thread creation fail.
- a fresh uid per worker slot (when the pool runs as root): the program cannot signal, ptrace or
  read the memory or /proc/<pid>/environ of the trainer or of other programs, cannot touch files
  it does not own, and RLIMIT_NPROC is enforced (the kernel ignores it for root).
- Landlock (Linux >= 5.13, also without root): nothing outside the program's throwaway
  directory can be read, listed, written, created or deleted, whatever the file permissions;
  no TCP connect/bind (ABI >= 4, Linux 6.7); no signals to processes outside the sandbox and
  no abstract unix sockets (ABI >= 6, Linux 6.12).
- a private network namespace per worker (root only): no interface but a downed loopback, so
  no TCP, UDP or abstract-socket traffic at all.
- its own session, stdin on /dev/null, an environment of PATH and LANG only, and death with its
  worker (PR_SET_PDEATHSIG; the worker is single-threaded, so this is the worker's death).

Every step that is attempted must succeed, or the program is not run (it reports ``crashed``):
the sandbox fails closed. All layers are active on a root container with Linux >= 6.12, where
the adversarial tests in tests/sandbox run.

What it does not do, honestly:

- Without root and without Landlock (older kernels, e.g. RHEL 8), programs run as the trainer's
  user: they can delete or truncate that user's files (RLIMIT_FSIZE stops only writes), read its
  files and /proc/<trainer>/environ, open network connections, and kill its processes. Only the
  rlimits and the session hold. Check ``SandboxPool.isolation`` and run such setups in a
  container.
- Without Landlock, reads are limited only by file permissions: a root pool's programs (uid
  dropped) can read world-readable files, e.g. the data sets and the project's source.
- No seccomp filter: the whole syscall surface of the kernel is reachable; this is no defence
  against kernel exploits.
- A program can write its own result line (fd 3) and then exit: this forges nothing beyond what
  returning that value would, since the result is the program's own answer.
- Modules not preloaded by the pool cannot be imported once Landlock is on (their files are
  outside the program's directory); import-time lazy loads inside preloaded packages can fail
  for the same reason.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
from dataclasses import asdict, dataclass

from reftlab.sandbox import landlock

_CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
# The whole environment a program sees: nothing inherited from the trainer. Numeric libraries
# (numpy's BLAS) are told to stay on one thread, since a program cannot start threads.
PROGRAM_ENV = {
    "PATH": "/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class WorkerIsolation:
    """Which confinement layers a worker could put in place on this machine."""

    uid_drop: bool
    landlock_abi: int
    network_namespace: bool

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ProgramLimits:
    """Per-program limits, in the units the kernel uses."""

    cpu_seconds: int
    address_space_bytes: int
    open_files: int = 64


def _prctl(option: int, value: int) -> None:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def confine_worker(isolate_network: bool, drop_privileges: bool) -> WorkerIsolation:
    """Set up the long-lived worker: hide it from its programs and take it off the network.

    Not dumpable, so that a program running under the same uid (non-root pools) cannot open the
    worker's /proc/<pid>/fd or mem and write into the pool's result stream. No parent-death
    signal: the kernel sends it when the *thread* that started the worker exits, which would
    kill workers that a short-lived trainer thread happened to (re)start. The worker exits
    instead when its stdin reaches end of file, which happens however the trainer dies.
    """
    _prctl(_PR_SET_DUMPABLE, 0)
    # The pool starts workers with a minimal environment already; scrub again here, once, so
    # that programs (forked from this process) inherit nothing else whoever started the worker.
    os.environ.clear()
    os.environ.update(PROGRAM_ENV)
    network_namespace = False
    if isolate_network and os.geteuid() == 0:
        network_namespace = _libc.unshare(_CLONE_NEWNET) == 0
    return WorkerIsolation(
        uid_drop=drop_privileges and os.geteuid() == 0,
        landlock_abi=landlock.abi_version(),
        network_namespace=network_namespace,
    )


def redirect_fds(stdout_fd: int, stderr_fd: int, result_fd: int) -> None:
    """Program fds become 0=/dev/null, 1=stdout pipe, 2=stderr pipe, 3=result pipe; no others."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    # Move the pipes above 3 first so that dup2 onto 0-3 never clobbers one still needed.
    moved = [os.dup(fd) for fd in (devnull, stdout_fd, stderr_fd, result_fd)]
    for target, fd in enumerate(moved):
        os.dup2(fd, target)
    os.closerange(4, os.sysconf("SC_OPEN_MAX"))


def _set_limits(limits: ProgramLimits) -> None:
    cpu = limits.cpu_seconds
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits.address_space_bytes, limits.address_space_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    # With the file-size limit at 0 a write would raise SIGXFSZ and kill the program; ignoring it
    # turns the write into an ordinary OSError (EFBIG) that the program sees as an exception.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def confine_program(
    workdir: str,
    uid: int | None,
    limits: ProgramLimits,
    landlock_abi: int,
) -> None:
    """Confine the freshly forked program process, in an order where every step still can.

    Call after ``os.setsid()`` and ``redirect_fds``. ``uid`` is the uid to drop to (root pools)
    or ``None``. Raises OSError when a step fails, and the caller must then not run the
    program: the sandbox fails closed.
    """
    os.chdir(workdir)
    for name in ("SIGINT", "SIGTERM", "SIGPIPE", "SIGCHLD"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    _set_limits(limits)
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    # Counted per uid: with a slot-private uid this process is the only one, so any fork fails.
    resource.setrlimit(resource.RLIMIT_NPROC, (1, 1))
    # The parent-death signal is cleared by setuid, so it is set after the drop.
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if landlock_abi > 0:
        landlock.restrict_to_directory(workdir, landlock_abi)
