"""One job: the composed config in, artifacts in the run dir out.

Hydra calls `run_job` once per run (and once per point of a sweep). It converts the config to
the typed object, validates it, records the resolved config and the plan, then hands over to the
method's pipeline and writes `summary.json` at the end.

With several processes (torchrun, or SLURM tasks) every process runs `run_job`; rank 0 alone
writes files. Under submitit, SLURM's warning signal checkpoints and requeues the job
(`runtime.preemption`), and the requeued job resumes its run dir without being told to.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from reftlab.app.compose import validate_run
from reftlab.app.plan import format_plan, make_plan
from reftlab.config import RunConfig, to_run_config
from reftlab.methods.registry import get_method
from reftlab.runtime.tracking import write_json_atomic


def write_run_record(run_dir: Path, cfg: DictConfig, plan: dict) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True), encoding="utf-8")
    write_json_atomic(run_dir / "plan.json", plan)


def run_job(cfg: DictConfig) -> float | None:
    run: RunConfig = to_run_config(cfg)
    validate_run(run)
    plan = make_plan(run)
    print(format_plan(plan), flush=True)
    if run.dry_run:
        return None

    from reftlab.methods.job import run_method
    from reftlab.runtime import distributed, preemption

    world = distributed.init_distributed()
    # Rank 0's run dir for all: each process's Hydra resolved `${now:...}` on its own clock.
    run_dir = Path(distributed.broadcast_object(run.output_dir))
    if preemption.should_resume(run_dir, run.resume, os.environ) and not run.resume:
        print(
            f"[run] requeued by SLURM (restart {preemption.restart_count(os.environ)}): "
            f"resuming {run_dir}",
            flush=True,
        )
        run = dataclasses.replace(run, resume=True)
    if world.is_main:
        write_run_record(run_dir, cfg, plan)

    started = time.time()
    grace_s = preemption.grace_seconds(launcher_signal_delay(), os.environ)
    with preemption.guard(grace_s):
        metrics = run_method(run, run_dir)
    summary = {
        **metrics,
        "wall_time_s": round(time.time() - started, 1),
        "method": run.method.name,
        "cot": run.cot.name,
        "dataset": run.dataset.name,
        "model": run.model.name,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    if world.is_main:
        write_json_atomic(run_dir / "summary.json", summary)
        print(format_summary(summary, run_dir), flush=True)
    return metrics.get("test_accuracy")


def launcher_signal_delay() -> float | None:
    """`signal_delay_s` of the hydra-submitit launcher that started this job, if one did."""
    try:
        from hydra.core.hydra_config import HydraConfig

        delay = HydraConfig.get().launcher.get("signal_delay_s")
    except Exception:  # no Hydra job, or a launcher without the field
        return None
    return None if delay is None else float(delay)


def format_summary(summary: dict, run_dir: Path) -> str:
    """The closing table: test accuracy after each model the run produced."""
    rows = []
    if "warmup_test_accuracy" in summary:
        rows.append(("SFT warm-up", summary["warmup_test_accuracy"]))
    rows.append((get_method(summary["method"]).title, summary["test_accuracy"]))
    n = summary.get("eval/n")
    lines = [
        f"\n{summary['method']} on {summary['dataset']} ({summary['cot']} CoT, model "
        f"{summary['model']}): {summary['wall_time_s']:.0f} s",
        f"  {'model':<22} test accuracy" + (f" ({n} problems)" if n else ""),
    ]
    base = rows[0][1]
    for i, (name, acc) in enumerate(rows):
        delta = f"  ({(acc - base) * 100:+.1f} points)" if i > 0 else ""
        lines.append(f"  {name:<22} {acc * 100:5.1f}%{delta}")
    for key in sorted(
        k for k in summary if k.startswith(("eval/maj@", "eval/pass@", "eval/rerank@"))
    ):
        lines.append(f"  {key.removeprefix('eval/'):<22} {summary[key] * 100:5.1f}%")
    if "eval/hacking_rate" in summary:
        lines.append(f"  {'reward hacking rate':<22} {summary['eval/hacking_rate'] * 100:5.1f}%")
    lines.append(f"  results: {run_dir / 'summary.json'}")
    return "\n".join(lines)
