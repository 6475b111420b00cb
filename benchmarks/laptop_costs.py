"""The unit costs behind the plan's wall-time estimate, read from a finished ReFT run's metrics.

    python benchmarks/laptop_costs.py RUN_DIR

RUN_DIR is a `method=reft` run with `budget.eval_every` set (e.g. the README's laptop run). Its
`metrics.jsonl` stamps every step, so the run itself says what each unit of work cost:

- a training example (forward and backward): the median SFT step, over the batch size;
- a greedy test answer: what the steps that also evaluated took beyond the median step, over
  the test questions;
- an RL rollout: the median PPO step over the batch size; less one sampled completion (priced
  as a greedy answer) and a forward and backward pass per PPO epoch, what is left is the two
  no-grad forward passes (old log-probs and values, the reference's log-probs).

It prints them beside `reftlab.methods.estimate.MEASURED` and the estimate against the run's
wall time, so the estimate can be re-measured on another machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def step_intervals(rows: list[dict], stage: str) -> tuple[list[float], list[float]]:
    """Seconds between one step record of `stage` and the next: (plain steps, steps that also
    evaluated)."""
    steps = [r for r in rows if r["stage"] == stage and any(k.startswith("train/") for k in r)]
    plain, evaluated = [], []
    for before, after in zip(steps, steps[1:], strict=False):
        seconds = after["time"] - before["time"]
        (evaluated if "eval/accuracy" in after else plain).append(seconds)
    return plain, evaluated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args()

    from reftlab.methods.estimate import MEASURED

    config = json.loads((args.run_dir / "summary.json").read_text())["config"]
    method, budget = config["method"], config["budget"]
    n_test = budget["max_test_examples"]
    rows = records(args.run_dir)

    sft_plain, sft_evaluated = step_intervals(rows, "sft_warmup")
    ppo_plain, ppo_evaluated = step_intervals(rows, "ppo")
    sft_step, ppo_step = statistics.median(sft_plain), statistics.median(ppo_plain)
    train = sft_step / method["sft_batch_size"]
    evaluations = [s - sft_step for s in sft_evaluated] + [s - ppo_step for s in ppo_evaluated]
    greedy = statistics.median(evaluations) / n_test if evaluations else float("nan")
    rollout = ppo_step / method["batch_size"]
    forward = (rollout - greedy - method["ppo_epochs"] * train) / 2

    print(f"{'unit':<32}{'this run':>10}{'estimate.MEASURED':>20}")
    for name, value, known in [
        ("train example (s)", train, MEASURED.train_example),
        ("greedy test answer (s)", greedy, MEASURED.greedy),
        ("RL rollout, all of it (s)", rollout, None),
        ("no-grad forward of a rollout (s)", forward, MEASURED.forward),
    ]:
        print(f"{name:<32}{value:>10.2f}{'' if known is None else format(known, '.2f'):>20}")
    summary = json.loads((args.run_dir / "summary.json").read_text())
    plan = json.loads((args.run_dir / "plan.json").read_text())
    if plan.get("estimated_s"):
        print(
            f"wall time {summary['wall_time_s'] / 60:.1f} min; "
            f"the plan estimated {plan['estimated_s'] / 60:.1f} min"
        )


if __name__ == "__main__":
    main()
