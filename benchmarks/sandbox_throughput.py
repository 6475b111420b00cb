"""Programs per second: the sandbox pool against one fresh ``python`` process per program.

Both sides run the same real programs (SVAMP gold programs from ReFT's data when present,
else a synthetic one) with the same parallelism (one job per CPU). The baseline is what a
simple executor does: ``subprocess.run([python, "-c", program + "print(solution())"])`` with a
timeout, and no confinement at all, so the comparison flatters the baseline.

    python benchmarks/sandbox_throughput.py [--programs 400] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from reftlab.sandbox.pool import SandboxPool, default_worker_count  # noqa: E402

SVAMP_PROGRAMS = ROOT / ".." / "shared" / "data" / "reft" / "svamp_python_sdp.json"
SYNTHETIC = "def solution():\n    apples = 12\n    eaten = 5\n    return apples - eaten\n"


def load_programs(count: int) -> list[str]:
    if SVAMP_PROGRAMS.exists():
        records = json.loads(SVAMP_PROGRAMS.read_text())
        programs = [record["answer_cot"] for record in records]
    else:
        programs = [SYNTHETIC]
    return [programs[i % len(programs)] for i in range(count)]


def run_fresh_process(program: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", program + "\nprint(solution())"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return completed.stdout.strip()


def measure_fresh(programs: list[str], workers: int) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as executor:
        list(executor.map(run_fresh_process, programs))
    return len(programs) / (time.perf_counter() - start)


def measure_pool(programs: list[str], workers: int) -> tuple[float, float]:
    start = time.perf_counter()
    with SandboxPool(workers) as pool:
        startup = time.perf_counter() - start
        pool.run(programs[:workers])  # first fork of each worker
        start = time.perf_counter()
        results = pool.run(programs)
        rate = len(programs) / (time.perf_counter() - start)
    assert all(result.status == "ok" for result in results), "a gold program failed"
    return rate, startup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=400)
    parser.add_argument("--workers", type=int, default=default_worker_count())
    args = parser.parse_args()
    programs = load_programs(args.programs)
    pool_rate, startup = measure_pool(programs, args.workers)
    fresh_rate = measure_fresh(programs[: max(args.workers, args.programs // 4)], args.workers)
    print(f"workers: {args.workers}, programs: {len(programs)}")
    print(f"sandbox pool:         {pool_rate:8.1f} programs/s (pool start-up {startup:.2f}s)")
    print(f"fresh python process: {fresh_rate:8.1f} programs/s")
    print(f"ratio pool / fresh:   {pool_rate / fresh_rate:8.1f}x")


if __name__ == "__main__":
    main()
