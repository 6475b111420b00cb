"""`reftlab report PATH`: one row per run below PATH, as a terminal table, CSV, Markdown and plots.

A run dir is any folder holding `config.yaml` or `.hydra/config.yaml` (a single run, or one job
of a sweep in `multirun/DATE/TIME/N_OVERRIDES/`). Each run is `done` (it wrote summary.json),
`partial` (metrics.jsonl but no summary: killed, preempted or still running) or `failed`
(nothing usable, or unreadable files), so that no run of a sweep goes missing from the table.

The swept knobs are the override keys (`.hydra/overrides.yaml`) whose values differ between the
runs; for a single run, all of its overrides. The CSV holds accuracies as fractions (as in
summary.json); the terminal and Markdown tables show percentages with one decimal.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reftlab.errors import ReftlabError
from reftlab.runtime.tracking import read_metrics

DONE, PARTIAL, FAILED = "done", "partial", "failed"
# Overrides that never make two runs different experiments.
IGNORED_OVERRIDES = ("resume", "dry_run", "output_dir")
# Summary keys shown beside test accuracy when present (sampling-based evaluations).
EXTRA_ACCURACY_PREFIXES = ("eval/maj@", "eval/pass@", "rerank", "eval/rerank")
CSV_NAME, MARKDOWN_NAME = "report.csv", "report.md"
CURVES_PNG, HEATMAP_PNG, KNOBS_PNG = "curves.png", "accuracy_heatmap.png", "accuracy_by_knob.png"
GROUPS = ("method", "cot", "dataset", "model")
# Missing sweep jobs named in a note before "and N more".
MAX_JOBS_SHOWN = 10
# Longest log line quoted in a failed run's note.
MAX_LOG_LINE = 120


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
class Report:
    """The runs, the swept knobs, the files written and notes on plots that were skipped."""

    root: Path
    runs: list[RunResult]
    knobs: list[str]
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- finding and reading runs -------------------------------------------------------------


def natural_key(text: str) -> list:
    """Sort key that puts `10_...` after `9_...` (Hydra job numbers)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def is_run_dir(folder: Path) -> bool:
    return (folder / "config.yaml").is_file() or (folder / ".hydra" / "config.yaml").is_file()


def find_run_dirs(root: Path) -> list[Path]:
    """Run dirs at or below ``root`` (runs do not nest, so a run dir is not searched further)."""
    found = []
    for folder, subfolders, _ in os.walk(root):
        if is_run_dir(Path(folder)):
            found.append(Path(folder))
            subfolders.clear()
        else:
            subfolders[:] = [s for s in subfolders if not s.startswith(".")]
    return sorted(found, key=lambda p: natural_key(str(p.relative_to(root))))


def read_yaml(path: Path) -> Any:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def why_unreadable(path: Path, exc: Exception) -> str:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    first_line = reason.strip().splitlines()[0] if reason.strip() else type(exc).__name__
    return f"{path.name} unreadable ({first_line})"


def parse_overrides(lines: Sequence[str]) -> dict[str, str]:
    """``["method.kl_coef=0.01", "+x=1"]`` -> ``{"method.kl_coef": "0.01", "x": "1"}``."""
    overrides = {}
    for line in lines:
        key, sep, value = str(line).partition("=")
        key = key.lstrip("+")
        if not sep or key.startswith(("~", "hydra")) or key in IGNORED_OVERRIDES:
            continue
        overrides[key] = value
    return overrides


def read_config(run_dir: Path) -> tuple[dict, str]:
    """The resolved config (or Hydra's composed one); ``({}, why)`` when neither is readable."""
    why = ""
    for path in (run_dir / "config.yaml", run_dir / ".hydra" / "config.yaml"):
        if not path.is_file():
            continue
        try:
            config = read_yaml(path)
        except Exception as exc:  # YAML, decoding and OS errors alike: report, don't stop
            why = why or why_unreadable(path, exc)
            continue
        if isinstance(config, dict):
            return config, ""
        why = why or f"{path.name} is not a mapping"
    return {}, why


def group_name(config: dict, group: str) -> str | None:
    node = config.get(group)
    return str(node["name"]) if isinstance(node, dict) and "name" in node else None


def count_samples(records: Sequence[dict], config: dict) -> int | None:
    """Completions sampled for training, counted from the metrics (when the summary has none).

    Sampling stages (self-training's sample_and_filter, PrefixRL's trace collection) log their
    own ``samples_drawn``; each RL or online step (a record with ``train/reward_mean``) samples
    ``method.batch_size`` questions times ``method.rollouts_per_query``. That is exact except
    for a short last batch of a pass over the training set; evaluation samples are left out.
    ``None`` when the run logged neither, or RL steps without the config to size them.
    """
    by_stages = sum(
        r["samples_drawn"] for r in records if isinstance(r.get("samples_drawn"), int | float)
    )
    logged_by_stages = any("samples_drawn" in r for r in records)
    steps = sum("train/reward_mean" in r for r in records)
    if not steps:
        return int(by_stages) if logged_by_stages else None
    method = config.get("method")
    if not isinstance(method, dict) or "batch_size" not in method:
        return None
    per_step = int(method["batch_size"]) * int(method.get("rollouts_per_query", 1))
    return int(by_stages) + steps * per_step


def last_log_line(run_dir: Path) -> str:
    """The last non-empty line of the job's log (Hydra writes `TASK.log` in the run dir)."""
    for log in sorted(run_dir.glob("*.log")):
        try:
            lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines()]
        except OSError:
            continue
        lines = [ln for ln in lines if ln]
        if lines:
            return lines[-1][:MAX_LOG_LINE]
    return ""


def fill_done(run: RunResult, summary: dict) -> None:
    run.status = DONE
    for key, value in summary.items():
        if key in ("test_accuracy", "warmup_test_accuracy") or key.startswith(
            EXTRA_ACCURACY_PREFIXES
        ):
            if isinstance(value, int | float) and not isinstance(value, bool):
                run.accuracies[key] = float(value)
    if isinstance(summary.get("wall_time_s"), int | float):
        run.wall_time_s = float(summary["wall_time_s"])
    if isinstance(summary.get("samples_drawn"), int | float):
        run.samples_drawn, run.samples_source = int(summary["samples_drawn"]), "summary"
    for group in GROUPS:
        if summary.get(group) is not None:
            run.names[group] = str(summary[group])


def finished_stages(run_dir: Path) -> list[str]:
    try:
        progress = read_json(run_dir / "progress.json")
        return list(progress["completed"])
    except Exception:  # progress.json is optional detail for the note
        return []


def fill_partial(run: RunResult) -> None:
    """Where a run without a summary stopped: last step and stage, last evaluation."""
    run.status = PARTIAL
    last = run.records[-1]
    run.last_step, run.last_stage = last.get("step"), last.get("stage")
    note = f"stopped at step {run.last_step} in {run.last_stage}"
    evals = [r for r in run.records if isinstance(r.get("eval/accuracy"), int | float)]
    if evals:
        run.last_eval_accuracy = float(evals[-1]["eval/accuracy"])
        note += f"; last eval {format_percent(run.last_eval_accuracy)} at step {evals[-1]['step']}"
    stages = finished_stages(run.run_dir)
    if stages:
        note += f"; finished: {', '.join(stages)}"
    run.note = note


def read_run(run_dir: Path, root: Path) -> RunResult:
    """Read one run dir; every problem becomes the run's status and note, never an exception."""
    name = str(run_dir.relative_to(root)) if run_dir != root else run_dir.name
    run = RunResult(name=name, run_dir=run_dir)
    config, config_why = read_config(run_dir)
    run.config = config
    run.names = {group: group_name(config, group) for group in GROUPS}
    problems = [config_why] if config_why else []
    overrides_path = run_dir / ".hydra" / "overrides.yaml"
    if overrides_path.is_file():
        try:
            run.overrides = parse_overrides(read_yaml(overrides_path) or [])
        except Exception as exc:
            problems.append(why_unreadable(overrides_path, exc))

    metrics_path = run_dir / "metrics.jsonl"
    try:
        run.records = read_metrics(run_dir)
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(why_unreadable(metrics_path, exc))
    if run.records:
        run.samples_drawn = count_samples(run.records, config)
        run.samples_source = "metrics" if run.samples_drawn is not None else ""

    summary_path = run_dir / "summary.json"
    summary: Any = None
    if summary_path.exists():
        try:
            summary = read_json(summary_path)
        except Exception as exc:
            problems.append(why_unreadable(summary_path, exc))
        else:
            if not isinstance(summary, dict) or "test_accuracy" not in summary:
                problems.append("summary.json has no test_accuracy")
                summary = None
    if summary is not None:
        fill_done(run, summary)
    elif run.records and not summary_path.exists():
        fill_partial(run)
    else:
        if not problems:
            problems.append(
                "metrics.jsonl holds no complete line"
                if metrics_path.exists()
                else "no summary.json or metrics.jsonl (stopped before its first logged step)"
            )
        log_line = last_log_line(run_dir)
        run.note = "; ".join(problems) + (f"; log: {log_line}" if log_line else "")
        return run
    if problems:
        run.note = "; ".join([run.note, *problems]) if run.note else "; ".join(problems)
    return run


def config_value(config: dict, key: str) -> str | None:
    """The value of a dotted key in a run's config as an override would spell it; for a group
    (`method`) its option name. ``None`` if the config does not have it."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, dict):
        return str(node["name"]) if "name" in node else None
    if isinstance(node, bool) or node is None:
        return {True: "true", False: "false", None: "null"}[node]
    return str(node)


def knob_value(run: RunResult, key: str) -> str | None:
    """What the run set ``key`` to: its override, else its config (a default left alone)."""
    if run.overrides is not None and key in run.overrides:
        return run.overrides[key]
    return config_value(run.config, key)


def as_number(value: str) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def canonical(value: str | None) -> Any:
    """The value two spellings share: `1e-4` and `0.0001` are one learning rate."""
    number = as_number(value) if value is not None else None
    return value if number is None else number


def swept_knobs(runs: Sequence[RunResult]) -> list[str]:
    """Override keys whose values differ between runs (all overrides of a lone run).

    A run that does not override a key counts with its config's value, so runs from different
    command lines compare on what they actually ran with.
    """
    known = [run.overrides for run in runs if run.overrides is not None]
    keys = list(dict.fromkeys(key for overrides in known for key in overrides))
    if len(runs) == 1:
        return keys
    return [key for key in keys if len({canonical(knob_value(r, key)) for r in runs}) > 1]


def fill_knob_values(runs: Sequence[RunResult], knobs: Sequence[str]) -> None:
    """Each run's value of each knob, spelled the same way for equal values ("" if unknown)."""
    for key in knobs:
        spelling: dict[Any, str] = {}
        for run in runs:
            value = knob_value(run, key)
            run.knob_values[key] = (
                "" if value is None else spelling.setdefault(canonical(value), value)
            )


def count_sweep_jobs(sweep_dir: Path) -> int | None:
    """How many jobs a Hydra sweep's multirun.yaml asks for (as Hydra's basic sweeper counts
    them: the product of the sweep sizes, the last override of a key winning); ``None`` if
    that cannot be told (no or unreadable file, a sweep type that needs the config)."""
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        hydra_cfg = read_yaml(sweep_dir / "multirun.yaml")["hydra"]
        params = (hydra_cfg.get("sweeper") or {}).get("params") or {}
        lines = [f"{key}={value}" for key, value in params.items()]
        lines += list(hydra_cfg["overrides"]["task"])
        sizes = {}
        for override in OverridesParser.create().parse_overrides(lines):
            sweep = override.is_sweep_override()
            sizes[override.get_key_element()] = (
                len(list(override.sweep_string_iterator())) if sweep else 1
            )
        return math.prod(sizes.values())
    except Exception:  # best effort: the report stands without this check
        return None


def find_missing_jobs(sweep_dir: Path, run_dirs: Sequence[Path]) -> str:
    """A note naming the jobs of a sweep that have no run dir (never started), or ``""``."""
    expected = count_sweep_jobs(sweep_dir)
    if expected is None:
        return ""
    numbers = {
        int(match.group(1))
        for run_dir in run_dirs
        if run_dir.parent == sweep_dir and (match := re.match(r"^(\d+)(_|$)", run_dir.name))
    }
    missing = sorted(set(range(expected)) - numbers)
    if not missing:
        return ""
    shown = ", ".join(map(str, missing[:MAX_JOBS_SHOWN]))
    more = f" and {len(missing) - MAX_JOBS_SHOWN} more" if len(missing) > MAX_JOBS_SHOWN else ""
    return (
        f"warning: {sweep_dir} asks for {expected} jobs; job(s) {shown}{more} have no run dir "
        "(not started yet, or lost)"
    )


def collect(root: Path) -> Report:
    """Read every run below ``root``; ``ReftlabError`` if ``root`` holds none."""
    if not root.exists():
        raise ReftlabError(f"{root}: no such file or folder")
    if not root.is_dir():
        raise ReftlabError(f"{root} is not a folder; give a run dir or a sweep dir")
    run_dirs = find_run_dirs(root)
    if not run_dirs:
        expected = count_sweep_jobs(root)
        asked = f"; its multirun.yaml asks for {expected} job(s)" if expected else ""
        raise ReftlabError(
            f"{root}: no run dir below it (a run dir holds config.yaml or .hydra/config.yaml)"
            + asked
        )
    runs = [read_run(run_dir, root) for run_dir in run_dirs]
    report = Report(root=root, runs=runs, knobs=swept_knobs(runs))
    fill_knob_values(runs, report.knobs)
    sweep_dirs = {d.parent for d in run_dirs if (d.parent / "multirun.yaml").is_file()}
    for sweep_dir in sorted(sweep_dirs):
        note = find_missing_jobs(sweep_dir, run_dirs)
        if note:
            report.notes.append(note)
    return report


# --- tables -------------------------------------------------------------------------------


def format_percent(fraction: float | None) -> str:
    return "" if fraction is None else f"{fraction * 100:.1f}%"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def extra_accuracy_keys(runs: Sequence[RunResult]) -> list[str]:
    keys = {key for run in runs for key in run.accuracies}
    extras = [key for key in keys if key.startswith(EXTRA_ACCURACY_PREFIXES)]
    return sorted(extras, key=natural_key)


def short_run_name(name: str) -> str:
    """A Hydra sweep job `3_method.kl_coef=0.1,...` is shown as `3`: the knobs have columns."""
    match = re.match(r"^(\d+)_.*=", Path(name).name)
    return match.group(1) if match and "/" not in name else name


def table_knobs(knobs: Sequence[str]) -> list[str]:
    """The knobs that get a column: a swept group (`method=a,b`) has its own column already."""
    return [knob for knob in knobs if knob not in GROUPS]


def csv_rows(report: Report) -> list[dict[str, Any]]:
    """One dict per run, with raw values: fractions, seconds, counts."""
    extras = extra_accuracy_keys(report.runs)
    rows = []
    for run in report.runs:
        row: dict[str, Any] = {"run": run.name, "status": run.status, **run.names}
        for knob in table_knobs(report.knobs):
            row[knob] = run.knob_values[knob]
        for key in ("test_accuracy", "warmup_test_accuracy", *extras):
            row[key] = run.accuracies.get(key, "")
        row.update(
            wall_time_s=run.wall_time_s,
            samples_drawn=run.samples_drawn,
            samples_source=run.samples_source,
            last_step=run.last_step,
            last_stage=run.last_stage,
            last_eval_accuracy=run.last_eval_accuracy,
            note=run.note,
            run_dir=str(run.run_dir),
        )
        rows.append({key: "" if value is None else value for key, value in row.items()})
    return rows


def display_rows(report: Report) -> tuple[list[str], list[list[str]], set[int]]:
    """Headers, cells (percentages, durations) and right-aligned columns; empty columns dropped."""
    extras = extra_accuracy_keys(report.runs)
    knobs = table_knobs(report.knobs)
    headers = ["run", "status", *GROUPS, *knobs]
    headers += ["test", "warm-up", *(key.removeprefix("eval/") for key in extras)]
    headers += ["wall", "samples", "note"]
    numeric = set(range(2 + len(GROUPS) + len(knobs), len(headers) - 1))
    cells = []
    for run in report.runs:
        row = [short_run_name(run.name) if len(report.runs) > 1 else run.name, run.status]
        row += [run.names.get(group) or "" for group in GROUPS]
        row += [run.knob_values[knob] for knob in knobs]
        accuracy_keys = ("test_accuracy", "warmup_test_accuracy", *extras)
        row += [format_percent(run.accuracies.get(key)) for key in accuracy_keys]
        row.append(format_duration(run.wall_time_s))
        row.append("" if run.samples_drawn is None else str(run.samples_drawn))
        row.append(run.note)
        cells.append(row)
    keep = [i for i, h in enumerate(headers) if i < 2 or h == "test" or any(r[i] for r in cells)]
    right = {keep.index(i) for i in numeric if i in keep}
    return [headers[i] for i in keep], [[r[i] for i in keep] for r in cells], right


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """A plain-text table with columns padded to their widest cell."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def format_markdown(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    def escape(cell: str) -> str:
        return cell.replace("|", "\\|")

    align = ["---:" if i in right else "---" for i in range(len(headers))]
    lines = [headers, align, *rows]
    return "\n".join("| " + " | ".join(escape(c) for c in cells) + " |" for cells in lines)


def count_statuses(runs: Sequence[RunResult]) -> str:
    counts = {s: sum(r.status == s for r in runs) for s in (DONE, PARTIAL, FAILED)}
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n)


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def write_markdown(path: Path, report: Report, plots: Sequence[Path]) -> None:
    headers, rows, right = display_rows(report)
    knobs_title = "Swept" if len(report.runs) > 1 else "Overrides"
    lines = [
        f"# reftlab report: {report.root}",
        "",
        " ".join(
            [f"{len(report.runs)} run(s): {count_statuses(report.runs)}."]
            + [f"{knobs_title}: {', '.join(f'`{k}`' for k in report.knobs)}."] * bool(report.knobs)
        ),
        "",
        format_markdown(headers, rows, right),
        "",
    ]
    lines += [f"![{plot.stem}]({plot.name})\n" for plot in plots]
    lines += [f"- {note}" for note in report.notes]
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")


# --- the verb -----------------------------------------------------------------------------


def prepare_out_dir(out_dir: Path) -> None:
    """Create ``out_dir``; ``ReftlabError`` in one line if the report cannot be written there."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".{CSV_NAME}.probe"
        probe.write_text("", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        raise ReftlabError(f"cannot write the report to {out_dir} ({exc.strerror})") from None


def draw(plot, report: Report, out_dir: Path) -> Path | None:
    """Run one plot function; a plot that fails becomes a note, the tables are still written."""
    try:
        return plot(report, out_dir)
    except OSError:
        raise
    except Exception as exc:  # matplotlib on data we did not foresee: keep the report
        report.notes.append(f"{plot.__name__} failed: {type(exc).__name__}: {exc}")
        return None


def make_report(root: Path, out_dir: Path | None = None, plots: bool = True) -> Report:
    """Read the runs below ``root`` and write report.csv, report.md and the plots to ``out_dir``."""
    report = collect(root)
    out_dir = out_dir or root
    prepare_out_dir(out_dir)
    try:
        from reftlab.report.plots import plot_accuracy, plot_curves

        drawn = [draw(plot, report, out_dir) for plot in (plot_curves, plot_accuracy) if plots]
        pngs = [path for path in drawn if path is not None]
        write_csv(out_dir / CSV_NAME, csv_rows(report))
        write_markdown(out_dir / MARKDOWN_NAME, report, pngs)
    except OSError as exc:
        raise ReftlabError(f"cannot write the report to {out_dir} ({exc.strerror})") from None
    report.files = [out_dir / CSV_NAME, out_dir / MARKDOWN_NAME, *pngs]
    return report


def format_report(report: Report) -> str:
    """What the terminal shows: a summary line, the table, the files written and any notes."""
    headers, rows, right = display_rows(report)
    swept = f"; swept: {', '.join(report.knobs)}" if report.knobs and len(report.runs) > 1 else ""
    if len(rows) == 1:  # one run reads better as a column of fields than as one wide row
        pairs = [(h, c) for h, c in zip(headers, rows[0], strict=True) if c]
        table = format_table(["field", "value"], pairs, right=set())
    else:
        table = format_table(headers, rows, right)
    lines = [
        f"{report.root}: {len(report.runs)} run(s), {count_statuses(report.runs)}{swept}",
        "",
        table,
        "",
        *(f"wrote {path}" for path in report.files),
        *report.notes,
    ]
    return "\n".join(lines)
