"""DeepSpeed ZeRO for multi-GPU runs: which JSON config a `deepspeed=` value names, and the
Accelerate plugin built from it.

`deepspeed=zero2` is the shipped `conf/deepspeed_configs/zero2.json`: ZeRO stage 2 (optimizer
state and gradients partitioned across the GPUs, weights replicated), as in the ReFT paper;
`deepspeed=PATH` is any DeepSpeed JSON. DeepSpeed runs on GPUs only, and only through Accelerate
(`Accelerator(deepspeed_plugin=...)`), which then owns the backward pass, the optimizer step and
gradient clipping.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reftlab.errors import ReftlabError

SHIPPED = ("zero2",)
CONFIG_FOLDER = "deepspeed_configs"


def _conf_dir() -> Path:
    """The config groups: inside the wheel, or `conf/` at the repository root."""
    packaged = Path(__file__).resolve().parents[1] / "conf"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "conf"


def resolve_config(value: str) -> Path:
    """The JSON file a `deepspeed=` value names: a shipped name or a path; ReftlabError if none."""
    if value in SHIPPED:
        return _conf_dir() / CONFIG_FOLDER / f"{value}.json"
    path = Path(value).expanduser()
    if path.suffix != ".json" or not path.is_file():
        raise ReftlabError(
            f"deepspeed={value} is neither a shipped config ({', '.join(SHIPPED)}) nor a "
            "DeepSpeed JSON file"
        )
    return path


def load_config(value: str) -> dict[str, Any]:
    path = resolve_config(value)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ReftlabError(f"deepspeed={value}: {path} is not valid JSON ({exc})") from None
    if "zero_optimization" not in config:
        raise ReftlabError(f"deepspeed={value}: {path} has no zero_optimization section")
    if config["zero_optimization"].get("stage", 0) not in (0, 1, 2):
        # Stage 3 partitions the weights too; reftlab saves and checks whole weights per rank.
        raise ReftlabError(
            f"deepspeed={value}: ZeRO stage {config['zero_optimization']['stage']} is not "
            "supported (its weights are partitioned); use stage 1 or 2, e.g. deepspeed=zero2"
        )
    return config


def make_plugin(value: str):
    """Accelerate's DeepSpeedPlugin for the config (building it does not import deepspeed)."""
    from accelerate.utils import DeepSpeedPlugin

    return DeepSpeedPlugin(hf_ds_config=load_config(value))


def check_usable(value: str, cuda_available: bool, deepspeed_installed: bool) -> None:
    """Raise the one-line error that says why `deepspeed=value` cannot run here, if it cannot."""
    if not cuda_available:
        raise ReftlabError(
            f"deepspeed={value} needs GPUs and none is visible; drop deepspeed= to train with "
            "plain data parallelism (or on the CPU)"
        )
    if not deepspeed_installed:
        raise ReftlabError(
            f"deepspeed={value} needs the deepspeed package; install it with `make install-gpu`"
        )
