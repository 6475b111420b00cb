"""A non-editable install of the wheel finds its config groups from any directory."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def site_packages_of_this_environment() -> list[str]:
    """The site-packages folders of the interpreter running the tests. Not `system_site_packages`:
    from inside a venv that means the base interpreter's, where the user installed nothing."""
    return [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")]


def see_dependencies_of_this_environment(python: Path) -> None:
    """A `.pth` file in the new venv that appends this environment's site-packages to its path.
    A folder named in a `.pth` file is added as it is, without running the `.pth` files inside
    it, so this environment's editable reftlab stays out and the venv's own copy is imported."""
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    lines = "".join(f"{folder}\n" for folder in site_packages_of_this_environment())
    (Path(purelib) / "reftlab_test_dependencies.pth").write_text(lines, encoding="utf-8")


@pytest.mark.slow
def test_wheel_ships_conf_and_runs_from_anywhere(tmp_path: Path):
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(REPO_ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = dist.glob("reftlab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "reftlab/conf/config.yaml" in names
    assert "reftlab/conf/method/reft.yaml" in names

    # A fresh venv with its own reftlab that sees the dependencies of the environment running
    # this test, whichever it is (the machine's Python or a user's venv).
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    see_dependencies_of_this_environment(python)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-2000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [str(python), "-c", "import reftlab; print(reftlab.__file__)"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
    )
    assert str(env_dir) in where.stdout, where.stdout + where.stderr

    result = subprocess.run(
        [str(env_dir / "bin" / "reftlab"), "--cfg", "job"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "name: reft" in result.stdout and "name: arith" in result.stdout
