"""The run's record of what it was asked to do: config.yaml, plan.json and Hydra's `.hydra/`.

Hydra would write `.hydra/` when its job starts, before reftlab has decided whether the run dir
may be used (conf/config.yaml sets `hydra.output_subdir: null`); reftlab writes the same three
files here, once the decision is made (`app.rundir`).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from reftlab.runtime.tracking import write_json_atomic

HYDRA_FOLDER = ".hydra"


def write_hydra_record(run_dir: Path, cfg: DictConfig) -> None:
    """What Hydra's job start writes: the composed config, Hydra's config and the overrides."""
    try:
        from hydra.core.hydra_config import HydraConfig

        hydra_cfg = HydraConfig.instance().cfg
    except Exception:  # not started by Hydra
        return
    if hydra_cfg is None:
        return
    folder = run_dir / HYDRA_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "config.yaml": cfg,
        "hydra.yaml": hydra_cfg,
        "overrides.yaml": hydra_cfg.hydra.overrides.task,
    }
    for name, node in files.items():
        (folder / name).write_text(OmegaConf.to_yaml(node), encoding="utf-8")


def write_run_record(run_dir: Path, cfg: DictConfig, plan: dict) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    write_hydra_record(run_dir, cfg)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True), encoding="utf-8")
    write_json_atomic(run_dir / "plan.json", plan)
