"""The paper experiments' own plots, drawn from the numbers `reftlab.report.experiments` computes
for their tables (so a plot and its table never disagree).

    ablations.png          bandit_ablations: a row per ablation, each seed's accuracy a marker,
                           the mean a thick tick, minimal's mean a dashed vertical line
    reward_vs_samples.png  prefixrl: training reward on plain problems against samples drawn
                           (rejection sampling included), one line per arm, the target reward
                           dotted and where each arm first reaches it

Like the other plots they read without colour: markers and line styles tell the series apart.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reftlab.report.experiments import (
    BASELINE_ABLATION,
    ablation_rows,
    prefix_arms,
    seed_of,
    target_reward,
)
from reftlab.report.plots import LINE_STYLES, MARKERS, ordered_values, pyplot, save, title_of
from reftlab.report.types import ABLATIONS_PNG, REWARD_VS_SAMPLES_PNG, Report

GREYS = ("black", "0.35", "0.55")  # one per arm, on top of its line style and marker


def plot_ablations(report: Report, out_dir: Path) -> Path | None:
    """Each ablation's seeds as markers and their mean as a tick, against minimal's mean."""
    rows = [row for row in ablation_rows(report) if row.seeds]
    if not rows:
        report.notes.append("ablations plot skipped: no ablation has a finished run")
        return None
    plt = pyplot()
    seeds = ordered_values([seed_of(run) for row in rows for run in row.runs])
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(rows) + 1.8), layout="constrained")
    for y, row in enumerate(rows):
        values = [100 * a for a in row.seeds.values()]
        ax.plot([min(values), max(values)], [y, y], color="0.6", linewidth=1)
        ax.plot([100 * row.mean] * 2, [y - 0.3, y + 0.3], color="black", linewidth=3)
        for s, seed in enumerate(seeds):
            if seed in row.seeds:
                ax.plot(
                    100 * row.seeds[seed],
                    y,
                    linestyle="none",
                    marker=MARKERS[s % len(MARKERS)],
                    markerfacecolor="white",
                    color="black",
                    markersize=7,
                    label=f"seed {seed}",
                )
    base = next((row for row in rows if row.name == BASELINE_ABLATION), None)
    if base is not None:
        ax.axvline(100 * base.mean, color="0.3", linestyle="--", linewidth=1.2)
    ax.plot([], [], color="black", linewidth=3, label="mean")
    ax.plot([], [], color="0.3", linestyle="--", label=f"{BASELINE_ABLATION}'s mean")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))  # one entry per seed
    fig.legend(unique.values(), unique.keys(), loc="outside right upper", fontsize=9)
    ax.set_yticks(range(len(rows)), [row.name for row in rows])
    ax.invert_yaxis()
    ax.set_xlabel("test accuracy (%)")
    ax.grid(True, axis="x", color="0.85")
    ax.set_title(f"{title_of(report)}: ablations against seed spread")
    return save(plt, fig, out_dir / ABLATIONS_PNG)


def plot_reward_vs_samples(report: Report, out_dir: Path) -> Path | None:
    """Smoothed training reward on plain problems against samples drawn, one line per arm."""
    arms = prefix_arms(report)
    drawn = [arm for arm in arms.values() if arm.samples]
    if not drawn:
        report.notes.append("reward_vs_samples plot skipped: no arm logged a training reward")
        return None
    plt = pyplot()
    target = target_reward(arms)
    fig, ax = plt.subplots(figsize=(9, 5.5), layout="constrained")
    for i, arm in enumerate(drawn):
        ax.plot(
            arm.samples,
            arm.rewards,
            linestyle=LINE_STYLES[i % len(LINE_STYLES)],
            marker=MARKERS[i % len(MARKERS)],
            markevery=max(1, len(arm.samples) // 8),
            markerfacecolor="white",
            color=GREYS[i % len(GREYS)],
            label=arm.name,
        )
        reached = arm.samples_to(target) if target is not None else None
        if reached is not None:
            ax.plot(reached, target, marker="x", color="black", markersize=9, linestyle="none")
    if target is not None:
        ax.axhline(target, color="0.4", linestyle=(0, (1, 2)), linewidth=1)
        ax.plot([], [], marker="x", color="black", linestyle=(0, (1, 2)), label="target reached")
    window = drawn[0].window
    smoothing = f", moving average over {window} steps" if window > 1 else ""
    ax.set_xlabel("samples drawn (cumulative, rejection sampling included)")
    ax.set_ylabel(f"training reward on plain problems{smoothing}")
    ax.grid(True, color="0.85")
    ax.legend(loc="lower right", fontsize=9)
    ax.set_title(f"{title_of(report)}: training reward against samples drawn")
    return save(plt, fig, out_dir / REWARD_VS_SAMPLES_PNG)


# The plots each experiment adds to the generic ones (keyed like experiments.SHAPES).
EXPERIMENT_PLOTS: dict[str, tuple[Callable[[Report, Path], Path | None], ...]] = {
    "bandit_ablations": (plot_ablations,),
    "prefixrl": (plot_reward_vs_samples,),
}
