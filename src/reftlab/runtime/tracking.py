"""Where metrics go: metrics.jsonl always (append-only), Weights & Biases when asked for."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsLogger:
    """Appends one JSON line per `log` call; never rewrites what is already on disk.

    Each line holds the global ``step``, the ``stage`` it came from, wall time, and namespaced
    metrics (``train/reward_mean``, ``eval/accuracy``, ...).
    """

    def __init__(
        self, run_dir: Path, wandb_cfg: dict[str, Any] | None = None, enabled: bool = True
    ):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.enabled = enabled
        self._wandb = None
        if enabled and wandb_cfg is not None:
            self._wandb = _start_wandb(run_dir, **wandb_cfg)

    def log(self, metrics: dict[str, Any], step: int, stage: str) -> None:
        if not self.enabled:
            return
        record = {"step": step, "stage": stage, "time": round(time.time(), 3)}
        record.update({key: _plain(value) for key, value in metrics.items()})
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if self._wandb is not None:
            self._wandb.log({k: _plain(v) for k, v in metrics.items()}, step=step)

    def close(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()


def _start_wandb(
    run_dir: Path, project: str, mode: str, entity: str | None, config: dict, name: str
):
    import wandb

    return wandb.init(
        project=project,
        entity=entity,
        mode=mode,
        dir=str(run_dir),
        config=config,
        name=name,
        reinit=True,
    )


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """All records of a run's metrics.jsonl; a torn last line (killed mid-write) is ignored."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def repair_torn_tail(path: Path) -> int:
    """Cut a torn last line (a kill in the middle of a write) off `path`, so that the next
    record starts on a line of its own; a complete last record that lost only its newline gets
    it back. Returns the number of bytes cut."""
    if not path.is_file():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    cut = data.rfind(b"\n") + 1
    try:
        json.loads(data[cut:])
    except ValueError:
        with path.open("r+b") as f:
            f.truncate(cut)
        return len(data) - cut
    with path.open("ab") as f:
        f.write(b"\n")
    return 0


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON via a temporary file and a rename, so readers never see half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(
        json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8"
    )
    os.replace(tmp, path)
