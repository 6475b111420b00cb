"""Reuse of upstream stages across runs: the same SFT warm-up for five KL values is trained once.

A stage's output is stored under `cache_dir/stages/<stage>-<key>/`, where the key hashes
everything the stage depends on. Writers build into a private temporary folder and rename it
into place, so concurrent jobs of a sweep never see half a checkpoint; if two jobs race, the
first rename wins and the other discards its copy. A lock file lets a job that arrives while
another is training the same stage wait for it instead of training it twice.

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
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _locked_by_rank0(path: Path, poll_s: float = LOCK_POLL_S) -> Iterator[None]:
    """`_locked` for all processes of one run: rank 0 holds the lock, all enter together."""
    handle = None
    if distributed.current_world().is_main:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("w")
    try:
        while True:
            got = False
            if handle is not None:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    got = True
                except BlockingIOError:
                    pass
            if distributed.broadcast_object(got):
                break
            time.sleep(poll_s)
        yield
    finally:
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


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
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = tempfile.mkdtemp(prefix=f".{stage}-{key}-", dir=final.parent)
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
