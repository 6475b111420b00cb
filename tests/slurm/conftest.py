"""The local single-node SLURM of launchers/slurm, started once per test session.

The fixture installs the Debian packages if SLURM is missing, starts the daemons (seconds when
they are installed), and stops them at the end only if this session started them. It skips
only where the cluster cannot exist: not root, or apt cannot install the packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

LAUNCHERS = Path(__file__).resolve().parents[2] / "launchers" / "slurm"
STATE_DIR = Path(os.environ.get("REFTLAB_SLURM_DIR", "/tmp/reftlab-slurm"))
INSTALL_TIMEOUT_S = 900
START_TIMEOUT_S = 300


@dataclass(frozen=True)
class SlurmCluster:
    partition: str
    state_dir: Path
    slurm_conf: Path


def _run_script(name: str, timeout_s: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(LAUNCHERS / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, "REFTLAB_SLURM_DIR": str(STATE_DIR)},
    )


def _tail(result: subprocess.CompletedProcess[str], lines: int = 15) -> str:
    return "\n".join((result.stdout + result.stderr).strip().splitlines()[-lines:])


def _install_if_missing() -> None:
    if all(shutil.which(cmd) for cmd in ("sinfo", "slurmdbd", "mariadbd", "munged")):
        return
    if shutil.which("apt-get") is None:
        pytest.skip("SLURM is not installed and there is no apt-get to install it")
    result = _run_script("install.sh", INSTALL_TIMEOUT_S)
    if result.returncode != 0:
        pytest.skip(f"apt could not install the SLURM packages:\n{_tail(result)}")


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    if os.geteuid() != 0:
        pytest.skip("the local SLURM runs its daemons as root; run the tests as root")
    _install_if_missing()
    result = _run_script("start.sh", START_TIMEOUT_S)
    assert result.returncode == 0, f"launchers/slurm/start.sh failed:\n{_tail(result, 40)}"
    started_here = "already running" not in result.stdout

    slurm_conf = STATE_DIR / "etc" / "slurm.conf"
    # sbatch/sacct (called by submitit) find the cluster through SLURM_CONF even where
    # /etc/slurm/slurm.conf belongs to another cluster.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SLURM_CONF", str(slurm_conf))
        yield SlurmCluster(partition="debug", state_dir=STATE_DIR, slurm_conf=slurm_conf)
    if started_here:
        stopped = _run_script("stop.sh", START_TIMEOUT_S)
        assert stopped.returncode == 0, f"launchers/slurm/stop.sh failed:\n{_tail(stopped)}"
