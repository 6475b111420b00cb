"""Reuse of upstream stages across runs: the same SFT warm-up for five KL values is trained once.

A stage's output is stored under `cache_dir/stages/<stage>-<key>/`, where the key hashes
everything the stage depends on. Writers build into a private temporary folder and rename it
into place, so concurrent jobs of a sweep never see half a checkpoint; if two jobs race, the
first rename wins and the other discards its copy. A lock file lets a job that arrives while
another is training the same stage wait for it instead of training it twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import reftlab

DONE_MARKER = "stage.json"


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


def cached_stage(
    cache_root: Path, stage: str, key: str, build: Callable[[Path], dict[str, Any]]
) -> tuple[Path, dict[str, Any], bool]:
    """Return (folder, info, reused): the cached output of `stage` for `key`, built if absent.

    `build(folder)` writes the stage's output into `folder` and returns a JSON-able info dict
    (e.g. the warm-up's test accuracy), stored beside it.
    """
    cache_root = Path(cache_root).expanduser()
    final = cache_root / "stages" / f"{stage}-{key}"
    with _locked(cache_root / "stages" / f".{stage}-{key}.lock"):
        if (final / DONE_MARKER).is_file():
            return final, json.loads((final / DONE_MARKER).read_text()), True
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{stage}-{key}-", dir=final.parent))
        try:
            info = build(tmp)
            (tmp / DONE_MARKER).write_text(json.dumps(info, indent=2))
            if final.exists():  # a crashed earlier writer left an incomplete folder
                shutil.rmtree(final)
            os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final, info, False
