"""``make bench``: every benchmark in one run, as tables, and as JSON in results/latest.json.

1. start-up time of the ``reftlab`` command (`startup_time`);
2. programs/s of the sandbox pool against a fresh process per program (`sandbox_throughput`);
3. RL samples/s of reftlab against TRL's GRPOTrainer on the same work (`rl_throughput`): the
   tiny model with transformers' generate on both sides, then the real model (SmolLM2-135M,
   GSM8K prompts, bf16) with vLLM on both sides when it is installed (`make install-vllm`).

The last two lines are ``reftlab/trl samples_per_s ratio: X`` (tiny model) and
``reftlab/trl real-model samples_per_s ratio: X``. This process never imports torch:
the RL sides run in their own processes, and the sandbox pool is not slowed by a large parent.

    python benchmarks/run_all.py [--rounds 2] [--warmup 2] [--steps 10]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import rl_throughput
import sandbox_throughput
import startup_time

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def machine() -> dict:
    """Where the figures were taken: CPU, cores, memory, library versions."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(memory_gb, 1),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        **{name: version(name) for name in ("torch", "transformers", "trl", "accelerate")},
    }


def run_sandbox(n_programs: int) -> dict:
    workers = sandbox_throughput.default_worker_count()
    programs = sandbox_throughput.load_programs(n_programs)
    pool_rate, pool_startup = sandbox_throughput.measure_pool(programs, workers)
    fresh = programs[: max(workers, n_programs // 4)]
    fresh_rate = sandbox_throughput.measure_fresh(fresh, workers)
    return {
        "workers": workers,
        "programs_pool": len(programs),
        "programs_fresh": len(fresh),
        "real_programs": sandbox_throughput.SVAMP_PROGRAMS.exists(),
        "pool_programs_per_s": pool_rate,
        "pool_startup_s": pool_startup,
        "fresh_process_programs_per_s": fresh_rate,
        "ratio": pool_rate / fresh_rate,
    }


def format_sandbox(result: dict) -> str:
    source = "SVAMP gold programs" if result["real_programs"] else "a synthetic program"
    return "\n".join(
        [
            f"{result['workers']} workers, {source}",
            f"{'':34s}{'programs/s':>12s}{'programs':>10s}",
            f"{'sandbox pool':34s}{result['pool_programs_per_s']:12.1f}"
            f"{result['programs_pool']:10d}",
            f"{'fresh python process per program':34s}"
            f"{result['fresh_process_programs_per_s']:12.1f}{result['programs_fresh']:10d}",
            f"{'ratio pool / fresh':34s}{result['ratio']:12.1f}",
            f"pool start-up: {result['pool_startup_s']:.2f}s",
        ]
    )


def run_rl(
    rounds: int,
    warmup: int,
    steps: int,
    threads: int | None,
    workload: str = "tiny",
    engines: dict[str, str] | None = None,
) -> dict:
    threads_text = f"{threads} torch thread(s)" if threads else "torch's default threads"
    print(f"{rounds} rounds x ({warmup} warm-up + {steps} timed) iterations, {threads_text}")
    with tempfile.TemporaryDirectory(prefix="reftlab-bench-") as work_dir:
        result = rl_throughput.run_rounds(
            rounds, warmup, steps, threads, Path(work_dir), workload, engines
        )
    print(rl_throughput.format_table(result))
    return result


def heading(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="RL: rounds of both sides")
    parser.add_argument("--warmup", type=int, default=2, help="RL: untimed iterations")
    parser.add_argument("--steps", type=int, default=10, help="RL: timed iterations per round")
    parser.add_argument(
        "--threads", type=int, default=1, help="RL: torch threads per side (0: torch's default)"
    )
    parser.add_argument(
        "--default-threads-rounds",
        type=int,
        default=1,
        help="RL: extra rounds with torch's default thread count, reported apart (0: none)",
    )
    parser.add_argument(
        "--default-threads-steps", type=int, default=6, help="RL: timed iterations of those"
    )
    parser.add_argument("--real-rounds", type=int, default=1, help="real model: rounds (0: skip)")
    parser.add_argument("--real-warmup", type=int, default=1, help="real model: untimed iterations")
    parser.add_argument("--real-steps", type=int, default=3, help="real model: timed iterations")
    parser.add_argument("--programs", type=int, default=400, help="sandbox: programs")
    parser.add_argument("--startup-repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    started = time.perf_counter()
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_gb']} GB")
    print(
        f"python {info['python']}, torch {info['torch']}, transformers {info['transformers']}, "
        f"trl {info['trl']}; load average at start {info['load_average_at_start'][0]:.2f}"
    )

    heading("start-up")
    startup = startup_time.measure(args.startup_repeats)
    print(startup_time.format_table(startup))

    heading("sandbox: programs per second")
    sandbox = run_sandbox(args.programs)
    print(format_sandbox(sandbox))

    # Each side at its fastest on the tiny model: reftlab's static decoder, TRL's generate.
    tiny_engines = {"reftlab": "static", "trl": "hf"}
    heading("RL iteration throughput: reftlab (static decoder) vs TRL GRPOTrainer (generate)")
    w = rl_throughput.WORKLOAD
    print(
        f"{w.prompts_per_step} prompts x {w.completions_per_prompt} completions per iteration, "
        f"max {w.max_new_tokens} new tokens, temperature {w.temperature}"
    )
    rl = run_rl(args.rounds, args.warmup, args.steps, args.threads or None, "tiny", tiny_engines)
    rl_default_threads = None
    if args.default_threads_rounds and args.threads:
        heading("RL iteration throughput with torch's default thread count (for reference)")
        rl_default_threads = run_rl(
            args.default_threads_rounds,
            args.warmup,
            args.default_threads_steps,
            None,
            "tiny",
            tiny_engines,
        )

    rl_real = None
    if args.real_rounds:
        # TRL's own vLLM colocate mode cannot sync weights into the CPU build of vLLM (its
        # model.load_weights path fails there; benchmarks/README.md), so TRL samples with
        # generate on a CPU; on a GPU pass --trl-engine vllm to rl_throughput.py.
        engine = "vllm" if importlib.util.find_spec("vllm") else "hf"
        real = rl_throughput.WORKLOADS["real"]
        heading(f"RL iteration throughput, real model: SmolLM2-135M, reftlab {engine}, TRL hf")
        print(
            f"{real.prompts_per_step} prompts x {real.completions_per_prompt} completions, max "
            f"{real.max_new_tokens} new tokens, {real.precision}"
            + ("" if engine == "vllm" else " (vLLM is not installed: `make install-vllm`)")
        )
        rl_real = run_rl(
            args.real_rounds,
            args.real_warmup,
            args.real_steps,
            None,
            "real",
            {"reftlab": engine, "trl": "hf"},
        )

    elapsed = time.perf_counter() - started
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "elapsed_s": elapsed,
        "machine": {**info, "load_average_at_end": os.getloadavg()},
        "startup": startup,
        "sandbox": sandbox,
        "rl": rl,
        "rl_default_threads": rl_default_threads,
        "rl_real": rl_real,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nall benchmarks: {elapsed:.0f}s; results in {args.out}")
    print(f"reftlab/trl samples_per_s ratio: {rl['ratio_samples_per_s']:.2f}")
    if rl_real is not None:
        print(f"reftlab/trl real-model samples_per_s ratio: {rl_real['ratio_samples_per_s']:.2f}")


if __name__ == "__main__":
    main()
