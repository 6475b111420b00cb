"""Reuse of upstream stages across runs: the same SFT warm-up for five KL values is trained once.

A stage's output is stored under `cache_dir/stages/<stage>-<key>/`, where the key hashes
everything the stage depends on. Writers build into a private temporary folder and rename it
into place, so concurrent jobs of a sweep never see half a checkpoint; if two jobs race, the
first rename wins and the other discards its copy. A lock file lets a job that arrives while
another is training the same stage wait for it instead of training it twice.

A job that has to wait for the lock says so, and names the lock and the job holding it (its
host and pid, written into the lock file). A kill leaves a writer's temporary folder behind; the
next writer of the same stage and key, holding the lock, removes it. Stage folders are created
with the permissions the umask allows (not `mkdtemp`'s 0700), so a cache can be shared by a
group.

The processes of one multi-process run build a stage together (its training is collective):
rank 0 holds the lock, decides, and writes; the others follow its decisions. Rank 0 waits for
the lock by polling, with one small collective per poll, so that no collective ever waits for
the length of another job's training.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import reftlab
from reftlab.runtime import distributed

DONE_MARKER = "stage.json"
LOCK_POLL_S = 2.0


def stage_key(**parts: Any) -> str:
    """A short stable hash of the JSON of `parts` and the reftlab version."""
    payload = json.dumps({"reftlab": reftlab.__version__, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        if not _try_lock(handle):
            announce_wait(path, handle)
            fcntl.flock(handle, fcntl.LOCK_EX)
        _write_holder(handle)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _try_lock(handle) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _write_holder(handle) -> None:
    """Name this job in the lock file, for the jobs that will wait for it."""
    handle.seek(0)
    handle.truncate()
    handle.write(f"{socket.gethostname()} pid {os.getpid()} since {time.strftime('%H:%M:%S')}")
    handle.flush()


def announce_wait(path: Path, handle) -> None:
    handle.seek(0)
    holder = handle.read().strip() or "another job"
    print(
        f"[cache] waiting for {holder} to finish {path.name.removesuffix('.lock').lstrip('.')} "
        f"(lock {path})",
        flush=True,
    )


@contextmanager
def _locked_by_rank0(path: Path, poll_s: float = LOCK_POLL_S) -> Iterator[None]:
    """`_locked` for all processes of one run: rank 0 holds the lock, all enter together."""
    handle = None
    if distributed.current_world().is_main:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a+")
    try:
        announced = False
        while True:
            got = handle is not None and _try_lock(handle)
            if distributed.broadcast_object(got):
                break
            if handle is not None and not announced:
                announce_wait(path, handle)
                announced = True
            time.sleep(poll_s)
        if handle is not None:
            _write_holder(handle)
        yield
    finally:
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


def remove_stale_temporaries(final: Path) -> None:
    """Temporary folders of `final` that killed writers left (call it holding the lock)."""
    for stale in final.parent.glob(f".{final.name}-*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def make_temporary(final: Path) -> Path:
    """A private folder beside `final` to build into, with the permissions the umask allows."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    return tmp


def cached_stage(
    cache_root: Path, stage: str, key: str, build: Callable[[Path], dict[str, Any]]
) -> tuple[Path, dict[str, Any], bool]:
    """Return (folder, info, reused): the cached output of `stage` for `key`, built if absent.

    `build(folder)` writes the stage's output into `folder` and returns a JSON-able info dict
    (e.g. the warm-up's test accuracy), stored beside it. With several processes every process
    calls this and runs `build` on the same folder; only rank 0 should write files in it.
    """
    cache_root = Path(cache_root).expanduser()
    final = cache_root / "stages" / f"{stage}-{key}"
    is_main = distributed.current_world().is_main
    lock = _locked_by_rank0 if distributed.current_world().is_distributed else _locked
    with lock(cache_root / "stages" / f".{stage}-{key}.lock"):
        done = None
        if is_main and (final / DONE_MARKER).is_file():
            done = json.loads((final / DONE_MARKER).read_text())
        done = distributed.broadcast_object(done)
        if done is not None:
            return final, done, True
        tmp = None
        if is_main:
            remove_stale_temporaries(final)
            tmp = str(make_temporary(final))
        tmp = Path(distributed.broadcast_object(tmp))
        try:
            info = build(tmp)
            if is_main:
                (tmp / DONE_MARKER).write_text(json.dumps(info, indent=2))
                if final.exists():  # a crashed earlier writer left an incomplete folder
                    shutil.rmtree(final)
                os.rename(tmp, final)
        finally:
            if is_main:
                shutil.rmtree(tmp, ignore_errors=True)
        distributed.barrier()  # the folder is in place before anyone loads from it
        info = distributed.broadcast_object(info)
    return final, info, False
