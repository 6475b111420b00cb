"""What the report wing shares: a run's result, the report, the files written, and how runs and
values are spelled (Hydra job numbers, numbers, percentages) in tables and plots alike."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DONE, PARTIAL, FAILED = "done", "partial", "failed"
# The config groups that name a run: a column each in the tables.
GROUPS = ("method", "cot", "dataset", "model")
# Summary keys shown beside test accuracy when present (sampling-based evaluations).
EXTRA_ACCURACY_PREFIXES = ("eval/maj@", "eval/pass@", "rerank", "eval/rerank")
GAIN_KEYS = (
    "eval/gain_over_warmup",
    "eval/gain_over_warmup_ci_low",
    "eval/gain_over_warmup_ci_high",
)
CSV_NAME, MARKDOWN_NAME = "report.csv", "report.md"
CURVES_PNG, HEATMAP_PNG, KNOBS_PNG = "curves.png", "accuracy_heatmap.png", "accuracy_by_knob.png"
# The plots of the paper experiments' own shapes (reftlab.report.experiments).
ABLATIONS_PNG, REWARD_VS_SAMPLES_PNG = "ablations.png", "reward_vs_samples.png"


@dataclass(eq=False)  # compared and hashed by identity: runs are dict keys in the plots
class RunResult:
    """What one run dir holds; accuracies are fractions, ``None`` where the run has none."""

    name: str
    run_dir: Path
    status: str = FAILED
    note: str = ""
    names: dict[str, str | None] = field(default_factory=dict)  # method, cot, dataset, model
    overrides: dict[str, str] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    knob_values: dict[str, str] = field(default_factory=dict)  # swept knob -> value shown
    accuracies: dict[str, float] = field(default_factory=dict)  # summary key -> fraction
    # Test accuracy minus the warm-up's, with its 95% paired-bootstrap interval (fractions).
    gain: tuple[float, float, float] | None = None
    wall_time_s: float | None = None
    samples_drawn: int | None = None
    samples_source: str = ""
    last_step: int | None = None
    last_stage: str | None = None
    last_eval_accuracy: float | None = None
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def test_accuracy(self) -> float | None:
        return self.accuracies.get("test_accuracy")


@dataclass
class Section:
    """A paper experiment's runs in the shape its paper uses: a table of display cells, the
    paper's claims each with what the runs measured, and notes (runs left out, gaps)."""

    experiment: str
    headers: list[str]
    rows: list[list[str]]
    right: set[int] = field(default_factory=set)  # columns aligned right (numbers)
    verdicts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)


@dataclass
class Report:
    """The runs, the swept knobs, the files written and notes on plots that were skipped; the
    experiment's own section when the runs share an experiment name."""

    root: Path
    runs: list[RunResult]
    knobs: list[str]
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    section: Section | None = None


def natural_key(text: str) -> list:
    """Sort key that puts `10_...` after `9_...` (Hydra job numbers)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def short_run_name(name: str) -> str:
    """A Hydra sweep job `3_method.kl_coef=0.1,...` is shown as `3`: the knobs have columns."""
    match = re.match(r"^(\d+)_.*=", Path(name).name)
    return match.group(1) if match and "/" not in name else name


def as_number(value: str) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def format_percent(fraction: float | None) -> str:
    return "" if fraction is None else f"{fraction * 100:.1f}%"
