"""What a run will do, worked out from the config alone: stages, schedule after the budget, outputs.

`dry_run=true` prints this plan and stops; a real run prints it first and records it in the
run dir, so what was intended can always be compared with what happened.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from reftlab.config import RunConfig
from reftlab.data.registry import get_spec
from reftlab.methods.estimate import estimate, format_estimate
from reftlab.methods.registry import pipeline
from reftlab.methods.schedule import Schedule, capped, make_schedule


def split_sizes(run: RunConfig, schedule: Schedule) -> dict[str, tuple[int | None, str]]:
    """Each split's size: (examples used, or None where unknown; as a person should read it:
    'used of available (source)')."""
    d = run.dataset
    if d.name == "arith":
        available = {"train": d.train_size, "test": d.test_size}
        source = f"generated, seed {d.generator_seed}"
    elif d.path or d.train_file or d.test_file:
        from reftlab.data.splits import count_local_examples

        available = count_local_examples(d, run.cot.name)
        source = "local files"
    else:
        spec = get_spec(d.name)
        available = spec.hub_sizes
        source = f"Hub {d.hub_id or spec.hub_id}, not downloaded by a dry run"
    caps = {"train": schedule.max_train_examples, "test": schedule.max_test_examples}
    sizes = {}
    for split in ("train", "test"):
        if split not in available:
            sizes[split] = (caps[split], f"unknown ({source})")
            continue
        n = available[split]
        used = capped(n, caps[split])
        sizes[split] = (used, f"{used} of {n} ({source})" if used != n else f"{n} ({source})")
    return sizes


def stages_of(run: RunConfig) -> list[str]:
    """The method's stages, with the reward model's before evaluation when reranking trains one."""
    stages = list(pipeline(run.method))
    if run.eval.rerank and not run.eval.reward_model:
        stages.insert(stages.index("evaluate"), "reward_model")
    return stages


def make_plan(run: RunConfig) -> dict:
    schedule = make_schedule(run)
    out = Path(run.output_dir)
    sizes = split_sizes(run, schedule)
    (n_train, _), (n_test, _) = sizes["train"], sizes["test"]
    cost = None if n_train is None or n_test is None else estimate(run, schedule, n_train, n_test)
    return {
        "method": run.method.name,
        "cot": run.cot.name,
        "dataset": run.dataset.name,
        "model": run.model.name,
        "budget": run.budget.name,
        "stages": stages_of(run),
        "splits": {split: text for split, (_, text) in sizes.items()},
        "schedule": asdict(schedule),
        "estimate": None if cost is None else format_estimate(cost),
        "estimated_s": None if cost is None else round(cost.total_s),
        "output_dir": str(out.resolve()),
        "artifacts": {
            "config.yaml": "the resolved config",
            "plan.json": "this plan",
            "metrics.jsonl": "one JSON line per logged step, append-only",
            "checkpoints/": "one folder per finished stage (and every save_every steps)",
            "predictions/": "per-item completions, extracted answers and scores",
            "summary.json": "final metrics, wall time and the config",
        },
    }


def format_plan(plan: dict) -> str:
    lines = [
        f"reftlab plan: method={plan['method']} cot={plan['cot']} dataset={plan['dataset']} "
        f"model={plan['model']} budget={plan['budget']}",
        "  stages:  " + " -> ".join(plan["stages"]),
        f"  train:   {plan['splits']['train']}",
        f"  test:    {plan['splits']['test']}",
        "  schedule: "
        + ", ".join(f"{k}={v}" for k, v in plan["schedule"].items() if v is not None),
    ]
    if plan["estimate"]:
        lines.append(f"  time:    {plan['estimate']}")
    lines += [
        f"  outputs: {plan['output_dir']}",
    ]
    lines += [f"    {name:<14} {what}" for name, what in plan["artifacts"].items()]
    return "\n".join(lines)
