"""RL iterations per second: reftlab's RL step against TRL's GRPOTrainer on the same work.

The tiny model is built once (`rl_setup`); then each round starts one reftlab process and one
TRL process (`rl_reftlab`, `rl_trl`) and lets them run their iterations in turn, one at a time
(`gate`): reftlab, TRL, TRL, reftlab, reftlab, ... so that load on the machine from elsewhere
falls on both sides alike and neither competes with the other for the cores. Each process runs
``warmup`` iterations that are not timed, then ``steps`` timed ones, with ``threads`` torch
threads (both sides alike; default: torch's own choice, one per core). Peak memory is each
process's resident-set high-water mark, read by the parent from ``wait4``'s resource usage
(``ru_maxrss``), so it covers everything the process ever held: imports, model, optimizer,
activations. Both processes of a round are alive at once (each waiting its turn), which does
not change either one's own high-water mark.

samples/s = completions generated and trained on / seconds, over all timed iterations of all
rounds (the total, so a slow iteration counts as much as it cost); the median iteration time
is reported as well, being less sensitive to a burst of load from elsewhere.

    python benchmarks/rl_throughput.py [--rounds 2] [--warmup 2] [--steps 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from gate import Turnstile
from rl_setup import WORKLOAD, WORKLOADS

HERE = Path(__file__).resolve().parent
SIDES = ("reftlab", "trl")
PHASES = ("generate", "score", "experience", "update", "other")


def build_model(work_dir: Path, workload: str = "tiny") -> Path:
    """The shared model folder, built in a child process (this one stays free of torch)."""
    out = subprocess.run(
        [sys.executable, str(HERE / "rl_setup.py"), str(work_dir), f"--workload={workload}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip().splitlines()[-1])


@dataclass
class Worker:
    """One side's process in a round, and the parent's end of its gate."""

    side: str
    proc: subprocess.Popen
    turnstile: Turnstile
    result_path: Path
    log_path: Path
    started: float


def start_worker(
    side: str,
    model_dir: Path,
    warmup: int,
    steps: int,
    threads: int | None,
    work_dir: Path,
    workload: str = "tiny",
    engine: str = "hf",
) -> Worker:
    result_path = work_dir / f"{side}-{time.monotonic_ns()}.json"
    log_path = work_dir / f"{side}.log"
    turnstile = Turnstile()
    command = [
        sys.executable,
        str(HERE / f"rl_{side}.py"),
        str(model_dir),
        f"--warmup={warmup}",
        f"--steps={steps}",
        f"--json-out={result_path}",
        f"--gate={turnstile.spec}",
        f"--workload={workload}",
        f"--engine={engine}",
        *([f"--threads={threads}"] if threads else []),
    ]
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=HERE, pass_fds=turnstile.worker_fds
        )
    turnstile.started()
    return Worker(side, proc, turnstile, result_path, log_path, time.perf_counter())


def finish_worker(worker: Worker) -> dict:
    """Wait for the process; its result with ``peak_rss_mb`` and ``process_s`` added."""
    worker.turnstile.close()
    # wait4 rather than Popen.wait: it returns this child's own resource usage.
    _, status, usage = os.wait4(worker.proc.pid, 0)
    worker.proc.returncode = os.waitstatus_to_exitcode(status)
    if worker.proc.returncode != 0:
        tail = "".join(worker.log_path.read_text().splitlines(keepends=True)[-20:])
        raise RuntimeError(f"{worker.side} benchmark failed ({worker.proc.returncode}):\n{tail}")
    result = json.loads(worker.result_path.read_text())
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # kilobytes on Linux
    result["process_s"] = time.perf_counter() - worker.started
    return result


def step_through(worker: Worker) -> None:
    """Let the worker run one iteration and wait until it is back at its gate."""
    worker.turnstile.release()
    if not worker.turnstile.await_worker():
        finish_worker(worker)  # raises with the worker's log
        raise RuntimeError(f"{worker.side} benchmark stopped early")


def run_round(
    model_dir: Path,
    warmup: int,
    steps: int,
    threads: int | None,
    work_dir: Path,
    workload: str = "tiny",
    engines: dict[str, str] | None = None,
) -> dict[str, dict]:
    """Both sides at once, iteration by iteration in turn (`gate.py`); which one goes first
    alternates. Start-up, imports and model loading overlap, but no timed work does."""
    engines = engines or dict.fromkeys(SIDES, "hf")
    workers = [
        start_worker(side, model_dir, warmup, steps, threads, work_dir, workload, engines[side])
        for side in SIDES
    ]
    try:
        for worker in workers:
            if not worker.turnstile.await_worker():
                finish_worker(worker)
                raise RuntimeError(f"{worker.side} benchmark exited before its first step")
        for iteration in range(warmup + steps):
            for worker in workers if iteration % 2 == 0 else workers[::-1]:
                step_through(worker)
        for worker in workers:
            worker.turnstile.release()  # past the last gate: write the result and exit
        return {worker.side: finish_worker(worker) for worker in workers}
    finally:
        for worker in workers:
            if worker.proc.returncode is None:
                worker.proc.kill()
                worker.proc.wait()


def run_rounds(
    rounds: int,
    warmup: int,
    steps: int,
    threads: int | None,
    work_dir: Path,
    workload: str = "tiny",
    engines: dict[str, str] | None = None,
) -> dict:
    """``rounds`` rounds of `run_round`; the summary of each side and the ratio."""
    engines = engines or dict.fromkeys(SIDES, "hf")
    w = WORKLOADS[workload]
    model_dir = build_model(work_dir, workload)
    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    for r in range(rounds):
        results = run_round(model_dir, warmup, steps, threads, work_dir, workload, engines)
        for side, result in results.items():
            runs[side].append(result)
            rate = w.completions_per_step * steps / sum(result["iteration_s"])
            print(f"  round {r + 1}/{rounds} {side:8s} {rate:6.1f} samples/s", flush=True)
    sides = {side: summarize(results, w) for side, results in runs.items()}
    ratio = sides["reftlab"]["samples_per_s"] / sides["trl"]["samples_per_s"]
    return {
        "workload": w.as_dict(),
        "engines": engines,
        "rounds": rounds,
        "warmup_iterations": warmup,
        "timed_iterations_per_round": steps,
        "torch_threads": threads or "default",
        "sides": sides,
        "ratio_samples_per_s": ratio,
        "runs": runs,
    }


def summarize(results: list[dict], w=WORKLOAD) -> dict:
    """Throughput, median iteration, mean seconds per phase and peak memory over all rounds;
    for reftlab also the limit of an iteration (generation + one forward/backward, alone)."""
    iterations = [t for r in results for t in r["iteration_s"]]
    phases = {
        name: [t for r in results for t in r["phases_s"][name]]
        for name in PHASES
        if name != "other"
    }
    n = len(iterations)
    phase_means = {name: sum(values) / n for name, values in phases.items()}
    phase_means["other"] = sum(iterations) / n - sum(phase_means.values())
    tokens = [t for r in results for t in r["completion_tokens"]]
    samples = w.completions_per_step * n
    limits = [r["limit_s"] for r in results if "limit_s" in r]
    limit = (
        {
            name: statistics.mean(x[name] for x in limits)
            for name in ("generate_s", "forward_backward_s", "total_s")
        }
        if limits
        else None
    )
    return {
        "limit_s": limit,
        "iteration_over_limit": statistics.median(iterations) / limit["total_s"] if limit else None,
        "samples_per_s": samples / sum(iterations),
        "completion_tokens_per_s": samples * statistics.mean(tokens) / sum(iterations),
        "median_iteration_s": statistics.median(iterations),
        "mean_iteration_s": sum(iterations) / n,
        "timed_iterations": n,
        "mean_completion_tokens": statistics.mean(tokens),
        "phase_mean_s": phase_means,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
        "process_s": statistics.median(r["process_s"] for r in results),
    }


def format_table(result: dict) -> str:
    """The two sides side by side, and where each iteration's time goes."""
    a, b = result["sides"]["reftlab"], result["sides"]["trl"]
    rows = [
        ("samples/s", "samples_per_s", "{:.1f}"),
        ("completion tokens/s", "completion_tokens_per_s", "{:.0f}"),
        ("median iteration (s)", "median_iteration_s", "{:.3f}"),
        ("mean iteration (s)", "mean_iteration_s", "{:.3f}"),
        ("mean completion length (tokens)", "mean_completion_tokens", "{:.1f}"),
        ("timed iterations", "timed_iterations", "{:d}"),
        ("peak RSS (MB)", "peak_rss_mb", "{:.0f}"),
    ]
    lines = [f"{'':34s}{'reftlab':>10s}{'trl':>10s}{'reftlab/trl':>13s}"]
    for label, key, fmt in rows:
        ratio = a[key] / b[key] if b[key] else float("nan")
        lines.append(f"{label:34s}{fmt.format(a[key]):>10s}{fmt.format(b[key]):>10s}{ratio:13.2f}")
    lines.append("")
    lines.append(f"{'mean seconds per iteration':34s}{'reftlab':>10s}{'trl':>10s}")
    for phase in PHASES:
        x, y = a["phase_mean_s"][phase], b["phase_mean_s"][phase]
        lines.append(f"  {phase:32s}{x:10.3f}{y:10.3f}")
    if a.get("limit_s"):
        limit = a["limit_s"]
        lines.append("")
        lines.append(
            f"reftlab's limit (alone): generate {limit['generate_s']:.3f}s + forward/backward "
            f"{limit['forward_backward_s']:.3f}s = {limit['total_s']:.3f}s; median iteration / "
            f"limit: {a['iteration_over_limit']:.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, help="torch threads of both sides")
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="tiny")
    parser.add_argument("--reftlab-engine", choices=("hf", "static", "vllm"), default="static")
    parser.add_argument("--trl-engine", choices=("hf", "vllm"), default="hf")
    args = parser.parse_args()
    engines = {"reftlab": args.reftlab_engine, "trl": args.trl_engine}
    with tempfile.TemporaryDirectory(prefix="reftlab-bench-") as work_dir:
        result = run_rounds(
            args.rounds,
            args.warmup,
            args.steps,
            args.threads,
            Path(work_dir),
            args.workload,
            engines,
        )
    print(format_table(result))
    label = "" if args.workload == "tiny" else f" {args.workload}-model"
    print(f"reftlab/trl{label} samples_per_s ratio: {result['ratio_samples_per_s']:.2f}")


if __name__ == "__main__":
    main()
