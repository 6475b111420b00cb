"""The plots of `reftlab report`: training curves and final accuracy against the swept knobs.

Written to read without colour: every run has its own line style and marker, values are
written into heat-map cells, and axes carry their metric names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from reftlab.report.types import (
    CURVES_PNG,
    DONE,
    HEATMAP_PNG,
    KNOBS_PNG,
    Report,
    RunResult,
    as_number,
    natural_key,
    short_run_name,
)

LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")  # 7 and 4 are coprime: 28 distinct pairs
# Characters per line of a legend entry, and the most knob values a run's entry spells out.
LEGEND_WIDTH = 36
MAX_KNOBS_IN_LEGEND = 3


def pyplot():
    """matplotlib, imported only when a report draws (keeps `reftlab --help` fast)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(plt, fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def short_keys(keys: Sequence[str]) -> dict[str, str]:
    """`method.kl_coef` -> `kl_coef` unless two keys would then read the same."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return {key: s if last.count(s) == 1 else key for key, s in zip(keys, last, strict=True)}


def run_label(run: RunResult, knobs: Sequence[str], many: bool) -> str:
    """`0: kl_coef=0.01, warmup_epochs=1`: the run as the table names it, and its knob values
    when they are few enough to read in a legend (the table has them all)."""
    import textwrap

    if not many:
        label = run.name
    else:
        names = short_keys(knobs)
        values = ", ".join(f"{names[k]}={run.knob_values[k] or '-'}" for k in knobs)
        label = short_run_name(run.name)
        label += f": {values}" if values and len(knobs) <= MAX_KNOBS_IN_LEGEND else ""
    label = label if run.status == DONE else f"{label} ({run.status})"
    return textwrap.fill(label, width=LEGEND_WIDTH)


def title_of(report: Report) -> str:
    """`2025-11-21/17-49-03` for a sweep dir (its own name is only the time of day)."""
    root = report.root.resolve()
    return f"{root.parent.name}/{root.name}" if root.parent.name else root.name


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over ``window`` points (fewer at the start)."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def smoothing_window(longest: int) -> int:
    """Points in a reward curve's moving average: a twentieth of the longest curve drawn."""
    return max(1, longest // 20)


def stage_starts(records: Sequence[dict]) -> list[tuple[float, str, str]]:
    """(x, stage before, stage after) where a stage that takes steps begins.

    A stage that logs at the step where the previous one ended (evaluate) is not a boundary.
    """
    starts, previous, previous_step = [], None, None
    for record in records:
        stage, step = record.get("stage"), record.get("step")
        if not isinstance(step, int | float):
            continue
        if previous is not None and stage != previous and step > previous_step:
            starts.append((previous_step + 0.5, str(previous), str(stage)))
        previous, previous_step = stage, step
    return starts


def finite_points(records: Sequence[dict], key: str) -> tuple[list[float], list[float]]:
    pairs = [
        (r["step"], r[key])
        for r in records
        if isinstance(r.get(key), int | float)
        and isinstance(r.get("step"), int | float)
        and math.isfinite(r[key])
    ]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def curve_style(i: int, run: RunResult, report: Report) -> dict:
    """The i-th run's line style, marker and legend label, the same in both panels."""
    return dict(
        linestyle=LINE_STYLES[i % len(LINE_STYLES)],
        marker=MARKERS[i % len(MARKERS)],
        label=run_label(run, report.knobs, many=len(report.runs) > 1),
        linewidth=1.6,
        markersize=6,
        markerfacecolor="white",
    )


def draw_run_curves(ax_reward, ax_eval, report: Report, runs: Sequence[RunResult], window: int):
    """Each run's smoothed reward (markers staggered between runs) and its eval accuracy."""
    for i, run in enumerate(runs):
        style = curve_style(i, run, report)
        steps, rewards = finite_points(run.records, "train/reward_mean")
        if steps:
            every = max(1, len(steps) // 8)
            ax_reward.plot(
                steps,
                moving_average(rewards, window),
                markevery=(i * every // max(len(runs), 1) % every, every),
                **style,
            )
        steps, accuracies = finite_points(run.records, "eval/accuracy")
        ax_eval.plot(steps, [a * 100 for a in accuracies], **style)


def mark_stage_starts(ax_reward, ax_eval, boundaries: Sequence[tuple[float, str, str]]) -> None:
    """A dotted line in both panels where a stage starts, the stage names either side of it."""
    for x, before, after in boundaries:
        for ax in (ax_reward, ax_eval):
            ax.axvline(x, color="0.35", linestyle=(0, (1, 2)), linewidth=1)
        for text, side in ((f"{before} ", "right"), (f" {after}", "left")):
            ax_reward.text(
                x,
                0.98,
                text,
                transform=ax_reward.get_xaxis_transform(),
                rotation=90,
                ha=side,
                va="top",
                fontsize=8,
                color="0.25",
            )


def label_curve_axes(ax_reward, ax_eval, window: int) -> None:
    smoothing = f", moving average over {window} steps" if window > 1 else ""
    ax_reward.set_title(f"Training reward (train/reward_mean{smoothing})")
    ax_reward.set_ylabel("mean reward")
    if not ax_reward.lines:
        ax_reward.text(
            0.5,
            0.5,
            "no train/reward_mean logged (no RL stage)",
            transform=ax_reward.transAxes,
            ha="center",
            va="center",
        )
    ax_eval.set_title("Test accuracy at each evaluation (eval/accuracy)")
    ax_eval.set_ylabel("accuracy (%)")
    ax_eval.set_xlabel("global step (dotted lines: a stage starts)")
    for ax in (ax_reward, ax_eval):
        ax.grid(True, color="0.85")


def fit_steps(ax_reward, ax_eval, boundaries: Sequence[tuple[float, str, str]]) -> None:
    """Limit the step axis to the steps that have something drawn and the stage boundaries
    beside them (a long SFT stage that logs no reward would otherwise squeeze the RL part into
    a corner)."""
    xs = [x for ax in (ax_reward, ax_eval) for line in ax.lines for x in line.get_xdata()]
    xs += [x for x, _, _ in boundaries]
    if xs and min(xs) < max(xs):
        pad = 0.02 * (max(xs) - min(xs))
        ax_eval.set_xlim(min(xs) - pad, max(xs) + pad)


def plot_curves(report: Report, out_dir: Path) -> Path | None:
    """Training reward (moving average) and eval accuracy against step, one line per run."""
    runs = [run for run in report.runs if run.records]
    if not runs:
        report.notes.append("curves skipped: no run has metrics")
        return None
    plt = pyplot()
    longest = max(len(finite_points(r.records, "train/reward_mean")[0]) for r in runs)
    window = smoothing_window(longest)
    fig, (ax_reward, ax_eval) = plt.subplots(
        2, 1, sharex=True, figsize=(10, 7), layout="constrained"
    )
    draw_run_curves(ax_reward, ax_eval, report, runs, window)
    boundaries = sorted({start for run in runs for start in stage_starts(run.records)})
    mark_stage_starts(ax_reward, ax_eval, boundaries)
    label_curve_axes(ax_reward, ax_eval, window)
    fit_steps(ax_reward, ax_eval, boundaries)
    handles, labels = ax_eval.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", title="runs", fontsize=9)
    fig.suptitle(f"{title_of(report)}: training curves", fontweight="bold")
    return save(plt, fig, out_dir / CURVES_PNG)


def ordered_values(values: Sequence[str]) -> list[str]:
    """Distinct values, numerically when they all are numbers, else in natural order."""
    distinct = list(dict.fromkeys(values))
    if all(as_number(v) is not None for v in distinct):
        return sorted(distinct, key=lambda v: as_number(v))
    return sorted(distinct, key=natural_key)


def grid_cells(
    report: Report, x_key: str, y_key: str
) -> tuple[list[str], list[str], dict[tuple[int, int], list[RunResult]]]:
    """The x and y values in order, and the runs in each (row, column) cell of the grid."""
    value = {
        run: (run.knob_values[x_key], run.knob_values[y_key])
        for run in report.runs
        if run.knob_values[x_key] and run.knob_values[y_key]
    }
    xs = ordered_values([v[0] for v in value.values()])
    ys = ordered_values([v[1] for v in value.values()])
    cells: dict[tuple[int, int], list[RunResult]] = {}
    for run, (x, y) in value.items():
        cells.setdefault((ys.index(y), xs.index(x)), []).append(run)
    return xs, ys, cells


def mean_accuracy_grid(cells: dict, done: Sequence[RunResult], shape: tuple[int, int]):
    """Test accuracy (%) per cell, the mean of its finished runs; NaN where none finished."""
    import numpy as np

    grid = np.full(shape, np.nan)
    for (row, col), members in cells.items():
        finished = [r for r in members if r in done]
        if finished:
            grid[row, col] = 100 * sum(r.test_accuracy for r in finished) / len(finished)
    return grid


def mark_unfinished_cell(plt, ax, row: int, col: int, members: Sequence[RunResult]) -> None:
    """A hatched cell that names its runs' statuses (no finished run to average)."""
    ax.add_patch(
        plt.Rectangle(
            (col - 0.5, row - 0.5),
            1,
            1,
            fill=False,
            hatch="//",
            edgecolor="0.6",
            linewidth=0,
        )
    )
    ax.text(
        col,
        row,
        "/".join(sorted({r.status for r in members})),
        ha="center",
        va="center",
        fontsize=10,
        color="black",
        bbox=dict(facecolor="white", edgecolor="none"),
    )


def cell_text(accuracy: float, finished: Sequence[RunResult]) -> str:
    """`42.0%`, with how many runs it is the mean of and their mean warm-up accuracy."""
    text = f"{accuracy:.1f}%"
    if len(finished) > 1:
        text += f"\n(mean of {len(finished)})"
    warmups = [
        r.accuracies["warmup_test_accuracy"]
        for r in finished
        if "warmup_test_accuracy" in r.accuracies
    ]
    if warmups:
        text += f"\nwarm-up {100 * sum(warmups) / len(warmups):.1f}%"
    return text


def write_cell_values(plt, ax, grid, cells: dict, done: Sequence[RunResult]) -> None:
    """Each cell's numbers in it, in black on light cells and white on dark ones."""
    import numpy as np

    low, high = np.nanmin(grid), np.nanmax(grid)
    for (row, col), members in cells.items():
        finished = [r for r in members if r in done]
        if not finished:
            mark_unfinished_cell(plt, ax, row, col, members)
            continue
        shade = (grid[row, col] - low) / (high - low) if high > low else 0.5
        ax.text(
            col,
            row,
            cell_text(grid[row, col], finished),
            ha="center",
            va="center",
            fontsize=10,
            color="black" if shade > 0.55 else "white",
            fontweight="bold",
        )


def plot_heatmap(report: Report, done: Sequence[RunResult], knobs: Sequence[str], out_dir: Path):
    """Test accuracy for each cell of a two-knob grid, the numbers written in the cells."""
    import numpy as np

    plt = pyplot()
    x_key, y_key = knobs
    xs, ys, cells = grid_cells(report, x_key, y_key)
    grid = mean_accuracy_grid(cells, done, (len(ys), len(xs)))
    fig, ax = plt.subplots(figsize=(1.6 * len(xs) + 3, 1.1 * len(ys) + 2.2), layout="constrained")
    cmap = plt.colormaps["viridis"].copy()
    cmap.set_bad("white")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, origin="lower", aspect="auto")
    write_cell_values(plt, ax, grid, cells, done)
    names = short_keys(knobs)
    ax.set_xticks(range(len(xs)), xs)
    ax.set_yticks(range(len(ys)), ys)
    ax.set_xlabel(x_key)
    ax.set_ylabel(y_key)
    ax.set_title(f"{title_of(report)}: test accuracy (%) by {names[x_key]} and {names[y_key]}")
    fig.colorbar(image, ax=ax, label="test accuracy (%)")
    return save(plt, fig, out_dir / HEATMAP_PNG)


# The two series of the per-knob panels: (legend name, summary key, horizontal offset of the
# runs' hollow points so that the two series' points do not cover each other).
ACCURACY_SERIES = (("test", "test_accuracy", -0.07), ("warm-up", "warmup_test_accuracy", 0.07))


def draw_shared_warmup(ax, warmup: float) -> None:
    """One warm-up for all runs (reused): a reference line, not a series."""
    ax.axhline(100 * warmup, color="0.35", linestyle="--", linewidth=1.2)
    ax.annotate(
        f"warm-up {100 * warmup:.1f}%",
        (0.01, 100 * warmup),
        xycoords=("axes fraction", "data"),
        textcoords="offset points",
        xytext=(0, 3),
        fontsize=8,
        color="0.25",
    )


def means_per_value(points: Sequence[tuple[int, float]], n_values: int) -> list[tuple[int, float]]:
    """(x, mean y) for each x position that has points."""
    return [
        (x, sum(ys) / len(ys))
        for x in range(n_values)
        if (ys := [y for px, y in points if px == x])
    ]


def draw_series(ax, s: int, label: str, offset: float, points, means) -> None:
    """Series ``s``: each run as a hollow point where a value has several, the means as a line."""
    spread = len(points) > len(means)  # some value has several runs: show each
    if spread:
        ax.plot(
            [x + offset for x, _ in points],
            [y for _, y in points],
            linestyle="none",
            marker=MARKERS[s],
            markerfacecolor="none",
            color="0.5",
            markersize=7,
            label=f"{label}: one run",
        )
    ax.plot(
        [x for x, _ in means],
        [y for _, y in means],
        linestyle=LINE_STYLES[s],
        marker=MARKERS[s],
        color="black" if s == 0 else "0.35",
        markersize=8,
        linewidth=2 if s == 0 else 1.4,
        label=f"{label}: mean" if spread else label,
    )
    for x, y in means:  # test above-right of its point, warm-up below-right
        ax.annotate(
            f"{y:.1f}%",
            (x, y),
            textcoords="offset points",
            xytext=(9, 4 if s == 0 else -4),
            va="bottom" if s == 0 else "top",
            fontsize=9,
            fontweight="bold" if s == 0 else "normal",
            bbox=dict(facecolor="white", edgecolor="none", alpha=0.8, pad=1),
        )


def draw_knob_panel(ax, done: Sequence[RunResult], knob: str) -> None:
    """Accuracy against one knob's values, evenly spaced in order (like the heat map's axes)."""
    values = ordered_values([r.knob_values[knob] for r in done])
    warmups = {r.accuracies.get("warmup_test_accuracy") for r in done} - {None}
    series = ACCURACY_SERIES
    if len(warmups) == 1:
        (warmup,) = warmups
        draw_shared_warmup(ax, warmup)
        series = ACCURACY_SERIES[:1]
    for s, (label, key, offset) in enumerate(series):
        points = [
            (values.index(r.knob_values[knob]), 100 * r.accuracies[key])
            for r in done
            if key in r.accuracies
        ]
        if points:
            draw_series(ax, s, label, offset, points, means_per_value(points, len(values)))
    ax.set_xticks(range(len(values)), values)
    ax.set_xlim(-0.5, len(values) - 0.5)
    ax.set_xlabel(knob)
    ax.set_ylabel("accuracy (%)")
    ax.grid(True, color="0.85")
    ax.margins(y=0.15)


def plot_by_knob(report: Report, done: Sequence[RunResult], knobs: Sequence[str], out_dir: Path):
    """One panel per knob: every finished run as a hollow point, the mean per value as a line."""
    plt = pyplot()
    columns = min(len(knobs), 3)
    rows = math.ceil(len(knobs) / columns)
    width = 4.8 * columns if columns > 1 else 6.4
    fig, axes = plt.subplots(
        rows, columns, figsize=(width, 4.0 * rows + 0.6), squeeze=False, layout="constrained"
    )
    names = short_keys(knobs)
    for ax, knob in zip(axes.flat, knobs, strict=False):
        draw_knob_panel(ax, done, knob)
        ax.set_title(f"against {names[knob]}")
    for ax in list(axes.flat)[len(knobs) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    ncols = len(labels) if columns > 1 else 2
    fig.legend(handles, labels, loc="outside lower center", ncols=ncols, fontsize=9)
    fig.suptitle(f"{title_of(report)}: final test accuracy", fontweight="bold")
    return save(plt, fig, out_dir / KNOBS_PNG)


def plot_accuracy(report: Report, out_dir: Path) -> Path | None:
    """Final test accuracy against the swept knobs: a heat map for two, panels otherwise."""
    done = [run for run in report.runs if run.test_accuracy is not None]
    knobs = [knob for knob in report.knobs if len({r.knob_values[knob] for r in done}) > 1]
    if len(report.runs) == 1:
        report.notes.append("accuracy plot skipped: a single run, nothing swept")
        return None
    if len(done) < 2 or not knobs:
        report.notes.append("accuracy plot skipped: no swept knob with two or more finished values")
        return None
    if len(knobs) == 2:
        return plot_heatmap(report, done, knobs, out_dir)
    return plot_by_knob(report, done, knobs, out_dir)
