"""Stop a training step that produced a non-finite loss or non-finite weights.

A loss of nan or inf, or a weight that became one (an enormous learning rate, an overflow), makes
every later step garbage while the run would still exit 0. `check_step_finite` runs after each
optimizer step and before that step is logged or checkpointed, so the newest checkpoint left in
the run dir is the last good one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from reftlab.errors import ReftlabError


class NonFiniteError(ReftlabError):
    """Training produced nan or inf; the message names the stage, the step and the quantity."""


def nonfinite_losses(metrics: Mapping[str, Any]) -> list[str]:
    """`key (value)` of each loss among a step's metrics that is nan or inf."""
    return [
        f"{key} ({value})"
        for key, value in metrics.items()
        if "loss" in key and isinstance(value, float) and not math.isfinite(value)
    ]


def weights_finite(parameters: Iterable[torch.Tensor]) -> bool:
    """Whether every weight is finite (one device sync for the whole model)."""
    checks = [torch.isfinite(p.detach()).all() for p in parameters]
    return not checks or bool(torch.stack([c.to(checks[0].device) for c in checks]).all())


def check_step_finite(stage: str, stage_step: int, metrics: Mapping[str, Any], model) -> None:
    """Raise `NonFiniteError` if step `stage_step` of `stage` left a non-finite loss or weight."""
    bad = nonfinite_losses(metrics)
    if not bad and not weights_finite(model.parameters()):
        bad = ["model weights"]
    if bad:
        raise NonFiniteError(
            f"{stage} step {stage_step} produced non-finite {', '.join(bad)}; stopped without "
            "saving it (the run dir keeps the last good checkpoint); lower the learning rate or "
            "the coefficient that blew up"
        )
