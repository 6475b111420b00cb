"""Output paths that cannot be written, and a full disk, end in one line naming the path."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from reftlab.app.writable import check_writable, disk_full_message
from reftlab.errors import ReftlabError


def test_a_writable_path_passes_and_nothing_is_left_behind(tmp_path):
    check_writable(tmp_path / "not" / "yet" / "there", "hydra.run.dir")
    check_writable(tmp_path, "output")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "path,message",
    [
        ("/proc/reftlab/run", "cannot write in /proc"),
        ("/proc/self/status/run", "/proc/self/status is a file, not a folder"),
    ],
)
def test_an_unwritable_path_is_one_line_naming_it(path, message):
    with pytest.raises(ReftlabError, match=f"hydra.run.dir={path}: {message}"):
        check_writable(Path(path), "hydra.run.dir")


def test_a_full_disk_is_named_with_the_file_being_written(tmp_path):
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "trainer.pt"))
    message = disk_full_message(full, tmp_path)
    assert message == f"no space left on device while writing {tmp_path / 'trainer.pt'}"
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        with pytest.raises(OSError) as caught:
            os.write(fd, b"x")
    finally:
        os.close(fd)
    assert disk_full_message(caught.value, tmp_path).startswith("no space left on device")
    assert disk_full_message(OSError(errno.EACCES, "denied"), tmp_path) is None
    # torch's C++ writer names neither the error nor the file; a disk with room is not "full".
    assert disk_full_message(RuntimeError("basic_ios::clear: iostream error"), tmp_path) is None


def test_a_verb_that_runs_out_of_disk_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    from reftlab.app import cli

    def full_disk(argv):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "p.scored.jsonl"))

    monkeypatch.setattr(cli, "_verbs", lambda: {"score": full_disk})
    with pytest.raises(SystemExit) as caught:
        cli.main(["score"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        f"reftlab: error: no space left on device while writing {tmp_path / 'p.scored.jsonl'}\n"
    )
