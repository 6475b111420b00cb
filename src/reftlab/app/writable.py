"""Say in one line, before anything runs, when an output path cannot be written; and turn a full
disk met while writing into one line too.

A path is checked by creating (and at once removing) a temporary folder in its nearest existing
ancestor: that answers for read-only mounts, `/proc`, missing permissions and files in the way
alike, and leaves nothing behind.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from reftlab.errors import ReftlabError

# Under this much free space, a failed write of a checkpoint is taken for a full disk (torch's
# C++ writer reports only `basic_ios::clear: iostream error` / `file write failed`).
NEARLY_FULL_BYTES = 64 << 20


def check_writable(path: Path, what: str) -> None:
    """Raise `ReftlabError` naming `what=path` unless a file or folder can be made at `path`."""
    path = Path(path).expanduser().absolute()
    ancestor = path if path.is_dir() else path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ReftlabError(f"{what}={path}: {ancestor} is a file, not a folder")
    try:
        tempfile.TemporaryDirectory(dir=ancestor, prefix=".reftlab-probe-").cleanup()
    except OSError as exc:
        raise ReftlabError(f"{what}={path}: cannot write in {ancestor} ({exc.strerror})") from None
    if path.is_file() and not os.access(path, os.W_OK):
        raise ReftlabError(f"{what}={path}: the file cannot be overwritten")


def disk_full_message(exc: BaseException, folder: Path) -> str | None:
    """`no space left on device while writing <path>` if `exc` is a write that ran out of disk,
    else None."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"no space left on device while writing {exc.filename or folder}"
    text = str(exc)
    if isinstance(exc, RuntimeError) and ("iostream error" in text or "write failed" in text):
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            return None
        if free < NEARLY_FULL_BYTES:
            return f"no space left on device while writing under {folder} ({free >> 20} MiB free)"
    return None
