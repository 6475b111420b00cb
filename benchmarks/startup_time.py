"""Start-up time: how long ``reftlab --help`` and ``reftlab dry_run=true`` take, as commands.

Each command runs ``repeats`` times as a fresh process (after one untimed run that warms the
file cache); the median wall time is reported, next to ``python -c "import torch"`` and
``python -c "import transformers"`` for scale. Then ``python -X importtime`` lists what each
reftlab command imports, by top-level package, and names any heavy library it loads: a
command that prints help or a plan should not pay for torch.

    python benchmarks/startup_time.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# Libraries that take a second or more to import on a small CPU machine.
HEAVY = ("torch", "transformers", "trl", "accelerate", "datasets", "pandas", "scipy", "matplotlib")


def reftlab_command() -> list[str]:
    """The installed ``reftlab`` script, or the module when the package is only on the path."""
    script = shutil.which("reftlab")
    return [script] if script else [sys.executable, "-m", "reftlab"]


def commands() -> dict[str, list[str]]:
    reftlab = reftlab_command()
    return {
        "reftlab --help": [*reftlab, "--help"],
        "reftlab dry_run=true": [*reftlab, "dry_run=true"],
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
        'python -c "import transformers"': [sys.executable, "-c", "import transformers"],
    }


def time_command(command: list[str], repeats: int, cwd: str) -> list[float]:
    """Wall seconds of ``repeats`` runs (one untimed run first); fails if the command does."""
    subprocess.run(command, cwd=cwd, capture_output=True, check=True)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, capture_output=True, check=True)
        seconds.append(time.perf_counter() - start)
    return seconds


def import_profile(args: list[str], cwd: str) -> dict:
    """What ``python -X importtime -m reftlab ARGS`` imports: the total seconds, and the
    seconds of each third-party package (its outermost import, everything it pulls in)."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "reftlab", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    total = 0.0
    packages: dict[str, float] = {}
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative_us, name = line.split("|")
        seconds = int(cumulative_us) / 1e6
        # The tree is indented two spaces per level; top-level lines add up to the total.
        if len(name) - len(name.lstrip()) == 1:
            total += seconds
        package = name.strip().split(".")[0]
        if package not in sys.stdlib_module_names and package not in ("reftlab", "site"):
            packages[package] = max(packages.get(package, 0.0), seconds)
    ranked = dict(sorted(packages.items(), key=lambda item: -item[1]))
    return {"total_s": total, "packages_s": ranked}


def measure(repeats: int) -> dict:
    """Median start-up seconds per command, and the import profile of the reftlab ones."""
    # Hydra writes a run folder (outputs/...) even for a dry run: keep it out of the repository.
    with tempfile.TemporaryDirectory(prefix="reftlab-startup-") as cwd:
        timings = {name: time_command(cmd, repeats, cwd) for name, cmd in commands().items()}
        profiles = {
            "reftlab --help": import_profile(["--help"], cwd),
            "reftlab dry_run=true": import_profile(["dry_run=true"], cwd),
        }
    return {
        "repeats": repeats,
        "median_s": {name: statistics.median(values) for name, values in timings.items()},
        "runs_s": timings,
        "import_s": {name: p["total_s"] for name, p in profiles.items()},
        "top_imports_s": {
            name: dict(list(p["packages_s"].items())[:6]) for name, p in profiles.items()
        },
        "heavy_imports": {
            name: sorted(set(p["packages_s"]) & set(HEAVY)) for name, p in profiles.items()
        },
    }


def format_table(result: dict) -> str:
    lines = [f"{'command':36s}{'median (s)':>12s}{'min (s)':>10s}"]
    for name, median in result["median_s"].items():
        lines.append(f"{name:36s}{median:12.3f}{min(result['runs_s'][name]):10.3f}")
    lines.append("")
    for name, top in result["top_imports_s"].items():
        heavy = ", ".join(result["heavy_imports"][name]) or "none"
        listed = ", ".join(f"{package} {seconds:.2f}s" for package, seconds in top.items())
        lines.append(f"{name}: imports take {result['import_s'][name]:.2f}s")
        lines.append(f"  heavy libraries imported: {heavy}")
        lines.append(f"  largest third-party imports: {listed}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(format_table(measure(args.repeats)))


if __name__ == "__main__":
    main()
