"""`reftlab report PATH`: one row per run below PATH, as a terminal table, CSV, Markdown and plots.

The flow is one way: collect -> tables and plots. Each step is a module that imports only
`types` (the runs, the report and the file names they share), and this one strings them together:

    collect  run dirs -> Report (each run done, partial or failed; the swept knobs)
    plots    Report -> curves.png, and accuracy_heatmap.png or accuracy_by_knob.png
    tables   Report -> report.csv, report.md (linking the plots drawn), the terminal table

When the runs share an experiment name (`reftlab -m +experiment=NAME`), two more steps, built
on the helpers of those three, add the experiment's own section to report.md and the terminal:

    experiments       Report -> Section: the paper's table, its claims and measured verdicts
    experiment_plots  Report -> ablations.png or reward_vs_samples.png

`make_report` writes the files, `format_report` is what the terminal shows, and
`reftlab.report.collect.collect` reads the runs without writing anything.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reftlab.errors import ReftlabError
from reftlab.report.collect import collect as collect_runs
from reftlab.report.experiment_plots import EXPERIMENT_PLOTS
from reftlab.report.experiments import SHAPES, shared_experiment
from reftlab.report.plots import plot_accuracy, plot_curves
from reftlab.report.tables import csv_rows, format_report, write_csv, write_markdown
from reftlab.report.types import (
    CSV_NAME,
    CURVES_PNG,
    DONE,
    FAILED,
    HEATMAP_PNG,
    KNOBS_PNG,
    MARKDOWN_NAME,
    PARTIAL,
    Report,
    RunResult,
    Section,
)

__all__ = [
    "CSV_NAME",
    "CURVES_PNG",
    "DONE",
    "FAILED",
    "HEATMAP_PNG",
    "KNOBS_PNG",
    "MARKDOWN_NAME",
    "PARTIAL",
    "Report",
    "RunResult",
    "Section",
    "format_report",
    "make_report",
]


def prepare_out_dir(out_dir: Path) -> None:
    """Create ``out_dir``; ``ReftlabError`` in one line if the report cannot be written there."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".{CSV_NAME}.probe"
        probe.write_text("", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        raise ReftlabError(f"cannot write the report to {out_dir} ({exc.strerror})") from None


def draw(plot: Callable[[Report, Path], Path | None], report: Report, out_dir: Path) -> Path | None:
    """Run one plot function; a plot that fails becomes a note, the tables are still written."""
    try:
        return plot(report, out_dir)
    except OSError:
        raise
    except Exception as exc:  # matplotlib on data we did not foresee: keep the report
        report.notes.append(f"{plot.__name__} failed: {type(exc).__name__}: {exc}")
        return None


def summarise(report: Report, experiment: str) -> Section | None:
    """The experiment's section; one that fails becomes a note, the rest is still written."""
    try:
        return SHAPES[experiment](report)
    except Exception as exc:  # runs shaped in a way we did not foresee: keep the report
        report.notes.append(f"{experiment} table failed: {type(exc).__name__}: {exc}")
        return None


def make_report(root: Path, out_dir: Path | None = None, plots: bool = True) -> Report:
    """Read the runs below ``root`` and write report.csv, report.md and the plots to ``out_dir``;
    with the experiment's own section when the runs share one."""
    report = collect_runs(root)
    out_dir = out_dir or root
    prepare_out_dir(out_dir)
    experiment = shared_experiment(report)
    report.section = summarise(report, experiment) if experiment else None
    try:
        drawn = [draw(plot, report, out_dir) for plot in (plot_curves, plot_accuracy) if plots]
        pngs = [path for path in drawn if path is not None]
        if report.section and plots:
            drawn = [draw(plot, report, out_dir) for plot in EXPERIMENT_PLOTS.get(experiment, ())]
            report.section.plots = [path for path in drawn if path is not None]
        write_csv(out_dir / CSV_NAME, csv_rows(report))
        write_markdown(out_dir / MARKDOWN_NAME, report, pngs)
    except OSError as exc:
        raise ReftlabError(f"cannot write the report to {out_dir} ({exc.strerror})") from None
    section_pngs = report.section.plots if report.section else []
    report.files = [out_dir / CSV_NAME, out_dir / MARKDOWN_NAME, *pngs, *section_pngs]
    return report
