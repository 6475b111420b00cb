"""One job: the composed config in, artifacts in the run dir out.

Hydra calls `run_job` once per run (and once per point of a sweep). It converts the config to
the typed object, validates it, decides whether the run dir may be used (`app.rundir`: fresh,
resume, finished, or a one-line refusal that leaves the dir as it was), records the resolved
config and the plan, then hands over to the method's pipeline and writes `summary.json` at the
end, with the wall time of all the run's attempts.

With several processes (torchrun, or SLURM tasks) every process runs `run_job`; rank 0 alone
writes files. Under submitit, SLURM's warning signal checkpoints and requeues the job
(`runtime.preemption`), and the requeued job resumes its run dir without being told to.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from reftlab.app.compose import validate_run
from reftlab.app.plan import format_plan, make_plan
from reftlab.app.record import write_run_record
from reftlab.app.rundir import FORCE, Decision, decide, format_changes
from reftlab.config import RunConfig, to_run_config
from reftlab.errors import ReftlabError
from reftlab.methods.registry import get_method
from reftlab.runtime.tracking import write_json_atomic

# Exit status after Ctrl-C, as a shell reports a process that SIGINT ended (128 + 2).
INTERRUPTED_EXIT = 130


def run_job(cfg: DictConfig) -> float | None:
    run: RunConfig = to_run_config(cfg)
    validate_run(run)
    plan = make_plan(run)
    print(format_plan(plan), flush=True)
    if run.dry_run:
        return None

    from reftlab.runtime import distributed

    world = distributed.init_distributed()
    # Rank 0's run dir for all: each process's Hydra resolved `${now:...}` on its own clock.
    run_dir = Path(distributed.broadcast_object(run.output_dir))
    decision = decide_on_rank0(run_dir, run, cfg)
    if decision.finished:
        return report_finished(run_dir)
    if world.is_main and decision.mode in ("fresh", FORCE):
        write_run_record(run_dir, cfg, plan)
    run = dataclasses.replace(run, resume=decision.resume)
    metrics = run_guarded(run, run_dir, decision)
    summary = {
        **metrics,
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


def decide_on_rank0(run_dir: Path, run: RunConfig, cfg: DictConfig) -> Decision:
    """Rank 0 decides what this job does with its run dir (before any process writes there);
    every process gets the decision, or raises the same one-line error."""
    from reftlab.runtime import distributed, preemption

    outcome: Decision | str | None = None
    if distributed.current_world().is_main:
        requeued = preemption.restart_count(os.environ) > 0
        try:
            config = OmegaConf.to_container(cfg, resolve=True)
            outcome = decide(run_dir, run.resume, requeued, config, in_sweep=is_sweep_job())
        except ReftlabError as exc:
            outcome = str(exc)
    outcome = distributed.broadcast_object(outcome)
    if isinstance(outcome, str):
        raise ReftlabError(outcome)
    if distributed.current_world().is_main:
        announce(outcome, run_dir)
    return outcome


def is_sweep_job() -> bool:
    """Whether Hydra launched this job as one point of a sweep (`reftlab -m`)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def announce(decision: Decision, run_dir: Path) -> None:
    from reftlab.runtime import preemption

    if decision.mode == "requeue":
        restarts = preemption.restart_count(os.environ)
        print(f"[run] requeued by SLURM (restart {restarts}): resuming {run_dir}", flush=True)
    elif decision.mode == FORCE:
        print(
            f"[run] warning: resume=force continues {run_dir} with a changed config "
            f"({format_changes(decision.changed)}); recorded in summary.json's attempts",
            flush=True,
        )


def report_finished(run_dir: Path) -> float | None:
    """`resume=true` on a finished run: say so, and leave its record as it is."""
    print(f"[run] {run_dir} finished in an earlier attempt (summary.json); nothing to resume")
    try:
        return json.loads((run_dir / "summary.json").read_text()).get("test_accuracy")
    except ValueError:
        return None


def run_guarded(run: RunConfig, run_dir: Path, decision: Decision) -> dict:
    """The method, with SIGTERM and SLURM's signal turned into a checkpoint and Ctrl-C into
    one line that says how to resume."""
    from reftlab.methods.job import run_method
    from reftlab.runtime import preemption
    from reftlab.runtime.attempts import start_attempt
    from reftlab.runtime.context import Interrupted
    from reftlab.runtime.progress import quiet_library_bars

    quiet_library_bars()
    hint = resume_command(run_dir)
    grace_s = preemption.grace_seconds(launcher_signal_delay(), os.environ)
    try:
        with preemption.guard(grace_s, resume_hint=hint):
            return run_method(run, run_dir, start_attempt(decision.mode, decision.changed))
    except Interrupted as stop:
        print(f"reftlab: {stop}; resume with: {hint}", file=sys.stderr, flush=True)
        raise SystemExit(INTERRUPTED_EXIT) from None


def resume_command(run_dir: Path) -> str:
    """The command line that continues this run: its overrides, its run dir, resume=true."""
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    except Exception:  # not started by Hydra
        overrides = []
    replaced = ("resume", "hydra.run.dir")
    kept = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in replaced]
    words = ["reftlab", *kept, f"hydra.run.dir={run_dir}", "resume=true"]
    return " ".join(shlex.quote(w) for w in words)


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
