"""The methods: one module each, orchestration only. `run_method` dispatches on `method.name`."""

from __future__ import annotations

import importlib
from pathlib import Path

from reftlab.config import RunConfig
from reftlab.errors import ReftlabError
from reftlab.runtime.context import RunContext
from reftlab.runtime.distributed import current_world
from reftlab.runtime.tracking import MetricsLogger

IMPLEMENTED = ("sft", "reft", "bandit", "offline_st", "online_st", "prefixrl")


def run_method(run: RunConfig, run_dir: Path) -> dict:
    """Run the method's stages and return its final metrics (at least `test_accuracy`)."""
    if run.method.name not in IMPLEMENTED:
        raise ReftlabError(
            f"method={run.method.name} is not built yet (built: {', '.join(IMPLEMENTED)}); "
            "`dry_run=true` shows the plan it will follow"
        )
    from reftlab.methods.common import setup

    wandb = None
    if run.logger.name == "wandb":
        from omegaconf import OmegaConf

        wandb = {
            "project": run.logger.project,
            "mode": run.logger.mode,
            "entity": run.logger.entity,
            "name": run_dir.name,
            "config": OmegaConf.to_container(OmegaConf.structured(run), resolve=True),
        }
    # Rank 0 alone logs, checkpoints and summarises; the other processes only compute.
    is_main = current_world().is_main
    logger = MetricsLogger(run_dir, wandb_cfg=wandb, enabled=is_main)
    ctx = RunContext.open(
        run_dir, logger, resume=run.resume, save_every=run.save_every, is_main=is_main
    )
    module = importlib.import_module(f"reftlab.methods.{run.method.name}")
    try:
        env, model = setup(run, ctx)
        with env.scorer:
            return module.run(env, model)
    finally:
        logger.close()
