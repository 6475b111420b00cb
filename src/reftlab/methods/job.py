"""The method's part of one job: open the run context, set up the `Env`, run the method."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from reftlab.config import RunConfig
from reftlab.methods.env import setup
from reftlab.methods.registry import get_method
from reftlab.runtime.context import Interrupted, RunContext
from reftlab.runtime.distributed import current_world
from reftlab.runtime.tracking import MetricsLogger


def wandb_settings(run: RunConfig, run_dir: Path) -> dict | None:
    if run.logger.name != "wandb":
        return None
    from omegaconf import OmegaConf

    return {
        "project": run.logger.project,
        "mode": run.logger.mode,
        "entity": run.logger.entity,
        "name": run_dir.name,
        "config": OmegaConf.to_container(OmegaConf.structured(run), resolve=True),
    }


def run_method(run: RunConfig, run_dir: Path, attempt: dict[str, Any] | None = None) -> dict:
    """Run the method's stages and return its final metrics (at least `test_accuracy`), its
    `wall_time_s` over all attempts and the `attempts` themselves. Ctrl-C becomes
    `Interrupted`, which says where the run stopped."""
    get_method(run.method.name)
    # Rank 0 alone logs, checkpoints and summarises; the other processes only compute.
    is_main = current_world().is_main
    logger = MetricsLogger(run_dir, wandb_cfg=wandb_settings(run, run_dir), enabled=is_main)
    ctx = RunContext.open(
        run_dir,
        logger,
        resume=bool(run.resume),
        save_every=run.save_every,
        is_main=is_main,
        attempt=attempt,
    )
    module = importlib.import_module(f"reftlab.methods.{run.method.name}")
    try:
        env, model = setup(run, ctx)
        with env.scorer:
            metrics = module.train_and_evaluate(env, model)
    except KeyboardInterrupt:
        raise Interrupted(ctx.global_step, ctx.current_stage) from None
    finally:
        ctx.end_attempt()
        logger.close()
    return {**metrics, "wall_time_s": ctx.wall_time_s(), "attempts": ctx.attempts}
