"""The paper experiments' own shapes: the runs of `reftlab -m +experiment=NAME` (their configs
share ``experiment: NAME``) as a table the way the paper shows them, with the paper's claims
each beside what these runs measured.

    reft_table        a row per method in the paper's order (SFT, offline ST, online ST, ReFT):
                      greedy, vote@K, rerank@K and pass@K accuracy, gain over the warm-up; the
                      claimed order of greedy accuracy against the measured one, and whether
                      voting and reranking add to greedy for each method
    bandit_ablations  a row per ablation: each seed's test accuracy, their mean and spread, the
                      effect (mean minus `minimal`'s) and whether it is beyond the seed spread;
                      the effect paired by seed (minus `minimal`'s run of the same seed, which
                      shares its warm-up) and which ablations moved one way in every seed;
                      ablations.png draws the same
    prefixrl          a row per arm (PrefixRL, SFT on the same traces then RL, RL only): samples
                      drawn (the rejection sampling that found the traces counts), final training
                      reward on plain problems, samples to reach a reward both PrefixRL and the
                      baseline reach, accuracy; the paper's three claims; reward_vs_samples.png
    kl_warmup         test accuracy on the kl_coef x warmup_epochs grid (accuracy_heatmap.png
                      draws it): the best cell, and which of the two knobs moves accuracy more

Only finished runs enter the numbers; the others are named in a note. Several seeds of a row
are shown as their mean and spread (max - min, in points).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reftlab.report.collect import config_value, count_samples, running_samples
from reftlab.report.plots import moving_average, ordered_values, smoothing_window
from reftlab.report.tables import count_statuses, extra_accuracy_keys, format_gain
from reftlab.report.types import DONE, Report, RunResult, Section, format_percent, short_run_name

# Two floats this close are one number (an effect equal to the spread is within it).
TOLERANCE = 1e-9


# --- shared by the shapes -------------------------------------------------------------------


def finished(runs: Sequence[RunResult]) -> list[RunResult]:
    return [run for run in runs if run.status == DONE and run.test_accuracy is not None]


def left_out(runs: Sequence[RunResult]) -> list[str]:
    """A note naming the runs that enter no number (partial or failed), or none."""
    done = finished(runs)
    others = [run for run in runs if run not in done]
    if not others:
        return []
    named = ", ".join(f"{short_run_name(run.name)} ({run.status})" for run in others)
    return [f"left out of the numbers: {len(others)} unfinished run(s): {named}"]


def group_runs(runs: Sequence[RunResult], value_of: Callable[[RunResult], str]) -> dict:
    """Runs by ``value_of(run)``, the groups in the order their first run appears (job order)."""
    groups: dict[str, list[RunResult]] = {}
    for run in runs:
        groups.setdefault(value_of(run), []).append(run)
    return groups


def mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def spread(values: Sequence[float]) -> float | None:
    """Max - min over seeds; ``None`` with fewer than two."""
    return max(values) - min(values) if len(values) > 1 else None


def format_points(fraction: float | None, signed: bool = True) -> str:
    """A difference of fractions in percentage points: 0.021 -> `+2.1`."""
    if fraction is None:
        return ""
    return f"{100 * fraction:+.1f}" if signed else f"{100 * fraction:.1f}"


def format_mean(values: Sequence[float], signed: bool = False) -> str:
    """`38.2%` (signed: `+4.0` points); over several seeds with their spread, `38.2% (1.5)`."""
    if not values:
        return ""
    average = mean(values)
    text = format_points(average) if signed else format_percent(average)
    if len(values) > 1:
        text += f" ({format_points(spread(values), signed=False)})"
    return text


def gain_cell(done: Sequence[RunResult]) -> str:
    """The gain over the warm-up: one run's with its interval, else the mean over seeds."""
    gains = [run.gain for run in done if run.gain is not None]
    return format_gain(gains[0]) if len(gains) == 1 else format_mean([g[0] for g in gains], True)


def seed_note(groups: dict[str, list[RunResult]]) -> list[str]:
    if any(len(finished(runs)) > 1 for runs in groups.values()):
        return ["several seeds: their mean, the spread (max - min, points) in brackets"]
    return []


# --- reft_table: ReFT's Table 2 -------------------------------------------------------------

METHOD_ORDER = ("sft", "offline_st", "online_st", "reft")
METHOD_NAMES = {"sft": "SFT", "offline_st": "offline ST", "online_st": "online ST", "reft": "ReFT"}
# Sampling-based accuracies (summary key kind -> the paper's name), in the paper's column order.
SAMPLED = {"maj": "vote", "rerank": "rerank", "pass": "pass"}
REFT_CLAIM = (
    "claim (ReFT, Table 2): ReFT > online ST > offline ST > SFT in greedy accuracy; "
    "voting and reranking add on top"
)


def method_name(method: str) -> str:
    return METHOD_NAMES.get(method, method)


def sampled_columns(runs: Sequence[RunResult]) -> list[tuple[str, str]]:
    """(summary key, header): `eval/maj@4` -> `vote@4`, ordered vote, rerank, pass."""
    columns = []
    for key in extra_accuracy_keys(runs):
        kind, _, k = key.removeprefix("eval/").partition("@")
        if kind in SAMPLED and k:
            columns.append((key, f"{SAMPLED[kind]}@{k}"))
    kinds = list(SAMPLED.values())
    return sorted(columns, key=lambda column: kinds.index(column[1].partition("@")[0]))


def method_means(groups: dict[str, list[RunResult]], key: str) -> dict[str, float]:
    """Each method's mean of a summary key over its finished runs that have it."""
    means = {}
    for method, runs in groups.items():
        values = [run.accuracies[key] for run in finished(runs) if key in run.accuracies]
        if values:
            means[method] = mean(values)
    return means


def ranking(means: dict[str, float]) -> str:
    """`online ST 41.0% > ReFT 38.2% = SFT 38.2%`: the methods by accuracy, best first."""
    ordered = sorted(means, key=lambda m: means[m], reverse=True)
    text = f"{method_name(ordered[0])} {format_percent(means[ordered[0]])}"
    for before, method in zip(ordered, ordered[1:], strict=False):
        tie = abs(means[before] - means[method]) <= TOLERANCE
        text += f"{' = ' if tie else ' > '}{method_name(method)} {format_percent(means[method])}"
    return text


def order_verdict(means: dict[str, float]) -> str:
    """The measured greedy ranking and which of the claimed orderings hold."""
    claimed = [m for m in reversed(METHOD_ORDER) if m in means]
    if len(claimed) < 2:
        return "measured: fewer than two of the paper's methods finished: nothing to compare"
    pairs = list(zip(claimed, claimed[1:], strict=False))
    failed = [(a, b) for a, b in pairs if not means[a] - means[b] > TOLERANCE]
    text = f"measured greedy: {ranking(means)}"
    absent = [method_name(m) for m in METHOD_ORDER if m not in means]
    if absent:
        text += f" (no finished {', '.join(absent)})"
    if not failed:
        return f"{text}: the claim holds here"
    broken = ", ".join(f"{method_name(a)} > {method_name(b)}" for a, b in failed)
    return f"{text}: the claim does not hold here (not so: {broken})"


def on_top_verdict(groups: dict[str, list[RunResult]], key: str, header: str) -> str:
    """Whether a sampling-based accuracy beats greedy, method by method (mean over seeds)."""
    diffs = {}
    for method, runs in groups.items():
        both = [r for r in finished(runs) if key in r.accuracies]
        if both:
            diffs[method] = mean([r.accuracies[key] - r.test_accuracy for r in both])
    if not diffs:
        return ""
    parts = ", ".join(f"{method_name(m)} {format_points(d)}" for m, d in diffs.items())
    added = sum(d > TOLERANCE for d in diffs.values())
    verdict = "adds on top for every method" if added == len(diffs) else "does not add everywhere"
    return f"measured {header} minus greedy (points): {parts}: {verdict} ({added} of {len(diffs)})"


def reft_table(report: Report) -> Section:
    by_method = group_runs(report.runs, lambda run: run.names.get("method") or "?")
    order = [m for m in METHOD_ORDER if m in by_method] + sorted(set(by_method) - set(METHOD_ORDER))
    groups = {method: by_method[method] for method in order}  # the paper's order
    columns = [("test_accuracy", "greedy"), *sampled_columns(finished(report.runs))]
    headers = ["method", "runs", *(header for _, header in columns), "gain over warm-up"]
    rows = []
    for method in groups:
        done = finished(groups[method])
        cells = [
            format_mean([r.accuracies[k] for r in done if k in r.accuracies]) for k, _ in columns
        ]
        rows.append([method_name(method), count_statuses(groups[method]), *cells, gain_cell(done)])
    verdicts = [REFT_CLAIM, order_verdict(method_means(groups, "test_accuracy"))]
    for key, header in columns[1:]:
        if not header.startswith("pass@"):  # pass@K is an upper bound, not a claim
            verdicts.append(on_top_verdict(groups, key, header))
    notes = left_out(report.runs) + seed_note(groups)
    right = set(range(2, len(headers)))
    return Section("reft_table", headers, rows, right, [v for v in verdicts if v], notes)


# --- bandit_ablations: one design choice at a time against seed noise -----------------------

BASELINE_ABLATION = "minimal"
ABLATION_RULE = (
    "an ablation's effect is its mean minus minimal's; it is beyond seed spread when its size "
    "exceeds the larger spread (max - min over seeds) of the two rows"
)


@dataclass
class AblationRow:
    """One ablation's runs (job order) and the test accuracy of each seed that finished."""

    name: str
    runs: list[RunResult]
    seeds: dict[str, float]

    @property
    def mean(self) -> float | None:
        return mean(list(self.seeds.values()))

    @property
    def spread(self) -> float | None:
        return spread(list(self.seeds.values()))


def ablation_of(run: RunResult) -> str:
    value = config_value(run.config, "ablation")
    return "(none)" if value in (None, "null") else value


def seed_of(run: RunResult) -> str:
    return config_value(run.config, "seed") or "?"


def ablation_rows(report: Report) -> list[AblationRow]:
    """Minimal first, then the ablations in the order they first appear (job number)."""
    groups = group_runs(report.runs, ablation_of)
    names = sorted(groups, key=lambda name: name != BASELINE_ABLATION)  # stable sort
    return [
        AblationRow(
            name, groups[name], {seed_of(r): r.test_accuracy for r in finished(groups[name])}
        )
        for name in names
    ]


def compare_to_baseline(row: AblationRow, base: AblationRow | None) -> tuple[float | None, str]:
    """(effect, verdict): the row's mean minus the baseline's, against the seed spread."""
    if row is base:
        return None, "reference"
    if base is None or base.mean is None or row.mean is None:
        return None, "no effect: a mean is missing"
    effect = row.mean - base.mean
    spreads = [s for s in (row.spread, base.spread) if s is not None]
    if not spreads:
        return effect, "no seed spread to compare (one seed)"
    noise = max(spreads)
    size, limit = format_points(abs(effect), False), format_points(noise, False)
    if abs(effect) - noise > TOLERANCE:
        return effect, f"beyond seed spread ({size} > {limit})"
    return effect, f"within seed spread ({size} <= {limit})"


def paired_effects(row: AblationRow, base: AblationRow | None) -> dict[str, float]:
    """Per seed, the row's accuracy minus the baseline's run of the same seed: the two share
    the seed's warm-up and data order, so the warm-up's own seed-to-seed spread cancels."""
    if base is None or row is base:
        return {}
    return {seed: row.seeds[seed] - base.seeds[seed] for seed in row.seeds if seed in base.seeds}


def paired_cell(row: AblationRow, base: AblationRow | None, seeds: Sequence[str]) -> str:
    paired = paired_effects(row, base)
    if not paired:
        return ""
    return " / ".join(format_points(paired[s]) if s in paired else "n/a" for s in seeds)


def paired_verdicts(rows: Sequence[AblationRow], base: AblationRow | None) -> list[str]:
    """Which ablations moved the same way as their own seed's baseline in every seed (two or
    more seeds paired)."""
    directions: dict[str, list[str]] = {
        "higher in every seed": [],
        "lower in every seed": [],
        "mixed across seeds": [],
    }
    for row in rows:
        paired = list(paired_effects(row, base).values())
        if len(paired) < 2:
            continue
        if all(effect > TOLERANCE for effect in paired):
            directions["higher in every seed"].append(row.name)
        elif all(effect < -TOLERANCE for effect in paired):
            directions["lower in every seed"].append(row.name)
        else:
            directions["mixed across seeds"].append(row.name)
    return [
        f"paired with {BASELINE_ABLATION}'s run of the same seed (the same warm-up), "
        f"{direction}: {', '.join(names) or 'none'}"
        for direction, names in directions.items()
    ]


def ablation_cells(row: AblationRow, seeds: Sequence[str], base: AblationRow | None) -> list:
    """A row of the table: each seed's accuracy (or its run's status), mean, spread, effect, and
    the effect paired by seed."""
    status = {seed_of(run): run.status for run in row.runs}
    seed_cells = [
        format_percent(row.seeds[seed]) if seed in row.seeds else status.get(seed, "")
        for seed in seeds
    ]
    effect, verdict = compare_to_baseline(row, base)
    return [
        row.name,
        count_statuses(row.runs),
        *seed_cells,
        format_percent(row.mean),
        format_points(row.spread, signed=False),
        format_points(effect),
        paired_cell(row, base, seeds),
        verdict,
    ]


def bandit_ablations(report: Report) -> Section:
    rows = ablation_rows(report)
    base = next((row for row in rows if row.name == BASELINE_ABLATION), None)
    seeds = ordered_values([seed_of(run) for run in report.runs])
    headers = ["ablation", "runs", *(f"seed {s}" for s in seeds), "mean", "spread", "effect"]
    headers += ["paired by seed", "verdict"]
    cells = [ablation_cells(row, seeds, base) for row in rows]
    verdicts = [ABLATION_RULE]
    compared = [(row.name, *compare_to_baseline(row, base)) for row in rows if row is not base]
    for where in ("beyond", "within"):
        named = [
            f"{name} {format_points(effect)}"
            for name, effect, verdict in compared
            if verdict.startswith(where)
        ]
        verdicts.append(f"measured {where} seed spread: {', '.join(named) or 'none'}")
    verdicts += paired_verdicts(rows, base)
    notes = left_out(report.runs)
    if base is None or base.mean is None:
        notes.append(f"no finished `{BASELINE_ABLATION}` run: no effects to measure")
    right = set(range(2, len(headers) - 1))
    return Section("bandit_ablations", headers, cells, right, verdicts, notes)


# --- prefixrl: training reward against samples drawn ----------------------------------------

ARMS = {"prefix": "PrefixRL", "sft": "SFT on traces + RL", "none": "RL only"}
PREFIX_ARM, BASELINE_ARM = "prefix", "sft"
PLAIN_REWARD = "train/reward_plain"
# "About 2x sooner" holds from this ratio up.
CLAIMED_SPEEDUP = 2.0
ABOUT = 0.9


@dataclass
class Arm:
    """One `method.offpolicy_use` arm: its runs, and its training reward on plain problems
    (smoothed over ``window`` steps; the mean over its finished runs) against the samples drawn
    so far, rejection sampling included."""

    use: str
    runs: list[RunResult]
    samples: list[float]
    rewards: list[float]
    window: int
    total_samples: float | None

    @property
    def name(self) -> str:
        return ARMS.get(self.use, self.use)

    @property
    def final_reward(self) -> float | None:
        return self.rewards[-1] if self.rewards else None

    def samples_to(self, target: float) -> float | None:
        """Samples drawn when the smoothed reward first reaches ``target``; ``None`` if never."""
        return next(
            (x for x, y in zip(self.samples, self.rewards, strict=True) if y >= target), None
        )


def plain_reward_curve(run: RunResult) -> tuple[list[int], list[float]]:
    """(samples drawn so far, reward on plain problems) at each RL step that logged one."""
    counts = running_samples(run.records, run.config) or []
    key = PLAIN_REWARD if any(PLAIN_REWARD in r for r in run.records) else "train/reward_mean"
    points = [
        (n, r[key])
        for n, r in zip(counts, run.records, strict=False)
        if isinstance(r.get(key), int | float) and math.isfinite(r[key])
    ]
    return [n for n, _ in points], [y for _, y in points]


def mean_curve(curves: Sequence[tuple[list, list]]) -> tuple[list[float], list[float]]:
    """The pointwise mean of the runs' curves, as long as the shortest."""
    curves = [curve for curve in curves if curve[0]]
    length = min((len(xs) for xs, _ in curves), default=0)
    return (
        [mean([xs[i] for xs, _ in curves]) for i in range(length)],
        [mean([ys[i] for _, ys in curves]) for i in range(length)],
    )


def prefix_arms(report: Report) -> dict[str, Arm]:
    """The arms in the order PrefixRL, baseline, RL only (others after), one smoothing window."""
    groups = group_runs(
        report.runs, lambda r: config_value(r.config, "method.offpolicy_use") or "?"
    )
    uses = [u for u in ARMS if u in groups] + [u for u in groups if u not in ARMS]
    curves = {u: mean_curve([plain_reward_curve(r) for r in finished(groups[u])]) for u in uses}
    window = smoothing_window(max((len(xs) for xs, _ in curves.values()), default=0))
    arms = {}
    for use in uses:
        xs, ys = curves[use]
        totals = [count_samples(r.records, r.config) for r in finished(groups[use])]
        total = mean([t for t in totals if t is not None])
        arms[use] = Arm(use, groups[use], xs, moving_average(ys, window), window, total)
    return arms


def missing(arms: dict[str, Arm], use: str) -> str:
    """Why an arm cannot be compared (``""`` if it can)."""
    name = ARMS.get(use, use)
    if use not in arms or not finished(arms[use].runs):
        return f"no finished {name} run (method.offpolicy_use={use})"
    if not arms[use].rewards:
        return f"{name} logged no training reward"
    return ""


def target_reward(arms: dict[str, Arm]) -> float | None:
    """The lower of PrefixRL's and the baseline's final smoothed rewards: both reach it."""
    if missing(arms, PREFIX_ARM) or missing(arms, BASELINE_ARM):
        return None
    return min(arms[PREFIX_ARM].final_reward, arms[BASELINE_ARM].final_reward)


def format_samples(samples: float | None) -> str:
    return "" if samples is None else f"{round(samples):,}"


def speedup_verdict(arms: dict[str, Arm], target: float | None) -> str:
    claim = "claim: PrefixRL reaches the baseline's training reward about 2x sooner"
    why = missing(arms, PREFIX_ARM) or missing(arms, BASELINE_ARM)
    if target is None:
        return f"{claim}; cannot tell: {why}"
    base, prefix = arms[BASELINE_ARM].samples_to(target), arms[PREFIX_ARM].samples_to(target)
    ratio = base / prefix if prefix else math.inf
    measured = (
        f"measured: reward {target:.3f} after {format_samples(base)} samples for the baseline, "
        f"{format_samples(prefix)} for PrefixRL (rejection sampling included): {ratio:.2f}x"
    )
    if ratio >= ABOUT * CLAIMED_SPEEDUP:
        return f"{claim}; {measured}: holds"
    if ratio > 1:
        return f"{claim}; {measured}: sooner, but not about 2x"
    return f"{claim}; {measured}: does not hold"


def final_reward_verdict(arms: dict[str, Arm]) -> str:
    claim = "claim: PrefixRL ends at a higher training reward than the baseline"
    why = missing(arms, PREFIX_ARM) or missing(arms, BASELINE_ARM)
    if why:
        return f"{claim}; cannot tell: {why}"
    prefix, base = arms[PREFIX_ARM].final_reward, arms[BASELINE_ARM].final_reward
    holds = "holds" if prefix - base > TOLERANCE else "does not hold"
    return f"{claim}; measured: {prefix:.3f} against {base:.3f}: {holds}"


def back_generalisation_verdict(arms: dict[str, Arm]) -> str:
    claim = "claim: RL on prefixed problems raises accuracy on plain ones (back-generalisation)"
    runs = finished(arms[PREFIX_ARM].runs) if PREFIX_ARM in arms else []
    done = [r for r in runs if "warmup_test_accuracy" in r.accuracies]
    if not done:
        return f"{claim}; cannot tell: no finished PrefixRL run with a warm-up accuracy"
    test = mean([r.test_accuracy for r in done])
    warmup = mean([r.accuracies["warmup_test_accuracy"] for r in done])
    measured = f"PrefixRL {format_percent(test)} against its warm-up {format_percent(warmup)}"
    holds = "holds" if test - warmup > TOLERANCE else "does not hold"
    if len(done) == 1 and done[0].gain is not None:
        above = done[0].gain[1] > 0
        interval = "above 0" if above else "includes 0"
        measured += f" (gain {format_gain(done[0].gain)}: the 95% interval {interval})"
        if not above and holds == "holds":
            holds = "not shown: the gain is within the noise"
    return f"{claim}; measured: {measured}: {holds}"


def accuracy_cells(done: Sequence[RunResult]) -> list[str]:
    """Test and warm-up accuracy and the gain over the warm-up (with its interval for one run)."""
    key = "warmup_test_accuracy"
    warmups = [run.accuracies[key] for run in done if key in run.accuracies]
    return [format_mean([r.test_accuracy for r in done]), format_mean(warmups), gain_cell(done)]


def arm_cells(arm: Arm, target: float | None) -> list[str]:
    done = finished(arm.runs)
    reached = arm.samples_to(target) if target is not None and arm.rewards else None
    to_target = (
        "" if target is None or not arm.rewards else format_samples(reached) or "not reached"
    )
    return [
        arm.name,
        count_statuses(arm.runs),
        format_samples(arm.total_samples),
        "" if arm.final_reward is None else f"{arm.final_reward:.3f}",
        to_target,
        *accuracy_cells(done),
    ]


def prefixrl(report: Report) -> Section:
    arms = prefix_arms(report)
    target = target_reward(arms)
    headers = ["arm", "runs", "samples drawn", "final reward (plain)", "samples to target"]
    headers += ["test", "warm-up", "gain over warm-up"]
    rows = [arm_cells(arm, target) for arm in arms.values()]
    verdicts = [speedup_verdict(arms, target), final_reward_verdict(arms)]
    verdicts.append(back_generalisation_verdict(arms))
    window = next(iter(arms.values())).window if arms else 1
    notes = [
        "samples drawn count the rejection sampling before RL; reward: train/reward_plain "
        f"(train/reward_mean without a split), moving average over {window} step(s)",
    ]
    if target is not None:
        notes.append(
            f"target reward {target:.3f}: the lower final reward of PrefixRL and the baseline"
        )
    notes += [why for why in (missing(arms, use) for use in ARMS) if why]
    notes += left_out(report.runs) + seed_note({a.use: a.runs for a in arms.values()})
    return Section("prefixrl", headers, rows, set(range(2, len(headers))), verdicts, notes)


# --- kl_warmup: ReFT's KL coefficient x SFT warm-up epochs ----------------------------------

KL, EPOCHS = "method.kl_coef", "method.warmup_epochs"


def grid_means(runs: Sequence[RunResult]) -> dict[tuple[str, str], float]:
    """(kl_coef, warmup_epochs) -> mean test accuracy of the cell's finished runs."""
    cells: dict[tuple[str, str], list[float]] = {}
    for run in finished(runs):
        kl, epochs = config_value(run.config, KL), config_value(run.config, EPOCHS)
        if kl is not None and epochs is not None:
            cells.setdefault((kl, epochs), []).append(run.test_accuracy)
    return {cell: mean(values) for cell, values in cells.items()}


def knob_means(cells: dict[tuple[str, str], float], axis: int) -> dict[str, float]:
    """The mean over the filled cells of each value of one knob (0: kl_coef, 1: epochs)."""
    values = ordered_values([cell[axis] for cell in cells])
    return {v: mean([m for cell, m in cells.items() if cell[axis] == v]) for v in values}


def dependence_verdict(by_kl: dict[str, float], by_epochs: dict[str, float]) -> str:
    """Which knob moves accuracy more: the range of its value means against the other's."""
    if len(by_kl) < 2 or len(by_epochs) < 2:
        return "measured: one of the knobs has a single value: nothing to compare"
    kl_range = max(by_kl.values()) - min(by_kl.values())
    epochs_range = max(by_epochs.values()) - min(by_epochs.values())
    ranges = (
        f"means by kl_coef range {format_points(kl_range, False)} points, by warmup_epochs "
        f"{format_points(epochs_range, False)}"
    )
    if abs(kl_range - epochs_range) <= TOLERANCE:
        return f"measured: {ranges}: accuracy depends on both alike"
    knob = "the KL coefficient" if kl_range > epochs_range else "the warm-up epochs"
    return f"measured: {ranges}: accuracy depends more on {knob}"


def kl_warmup(report: Report) -> Section:
    cells = grid_means(report.runs)
    by_kl, by_epochs = knob_means(cells, 0), knob_means(cells, 1)
    headers = ["kl_coef \\ warmup_epochs", *by_epochs, "mean"]
    rows = [
        [kl, *(format_percent(cells.get((kl, e))) for e in by_epochs), format_percent(by_kl[kl])]
        for kl in by_kl
    ]
    rows.append(["mean", *(format_percent(m) for m in by_epochs.values()), ""])
    verdicts = ["question: which moves test accuracy more, the KL coefficient or the warm-up?"]
    if cells:
        (kl, epochs), best = max(cells.items(), key=lambda item: item[1])
        verdicts.append(f"best cell: kl_coef={kl}, warmup_epochs={epochs}: {format_percent(best)}")
    verdicts.append(dependence_verdict(by_kl, by_epochs))
    notes = left_out(report.runs)
    if len(cells) < len(by_kl) * len(by_epochs):
        notes.append("some cells have no finished run: the means are over the filled cells")
    return Section("kl_warmup", headers, rows, set(range(1, len(headers))), verdicts, notes)


# --- which shape ----------------------------------------------------------------------------

SHAPES: dict[str, Callable[[Report], Section]] = {
    "reft_table": reft_table,
    "bandit_ablations": bandit_ablations,
    "prefixrl": prefixrl,
    "kl_warmup": kl_warmup,
}


def shared_experiment(report: Report) -> str | None:
    """The experiment name every run's config holds; ``None`` for ordinary runs, with a note
    when the runs mix experiments or name one without a shape here."""
    names = {config_value(run.config, "experiment") for run in report.runs if run.config}
    names = {None if name == "null" else name for name in names}
    if names <= {None}:
        return None
    if len(names) > 1:
        spelled = ", ".join(sorted(name or "none" for name in names))
        report.notes.append(f"runs of several experiments ({spelled}): no experiment table")
        return None
    (name,) = names
    if name not in SHAPES:
        known = ", ".join(SHAPES)
        report.notes.append(f"experiment {name} has no report shape (known: {known})")
        return None
    return name
