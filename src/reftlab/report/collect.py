"""Find the run dirs at or below a path and read each into a `RunResult`: a `Report`.

A run dir is any folder holding `config.yaml` or `.hydra/config.yaml` (a single run, or one job
of a sweep in `multirun/DATE/TIME/N_OVERRIDES/`). Each run is `done` (it wrote summary.json),
`partial` (metrics.jsonl but no summary: killed, preempted or still running) or `failed`
(nothing usable, or unreadable files), so that no run of a sweep goes missing from the table.

The swept knobs are the override keys (`.hydra/overrides.yaml`) whose values differ between the
runs; for a single run, all of its overrides.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reftlab.errors import ReftlabError
from reftlab.report.types import (
    DONE,
    EXTRA_ACCURACY_PREFIXES,
    GAIN_KEYS,
    GROUPS,
    PARTIAL,
    Report,
    RunResult,
    as_number,
    format_percent,
    natural_key,
)
from reftlab.runtime.tracking import read_metrics

# Overrides that never make two runs different experiments.
IGNORED_OVERRIDES = ("resume", "dry_run", "output_dir")
# Missing sweep jobs named in a note before "and N more".
MAX_JOBS_SHOWN = 10
# Longest log line quoted in a failed run's note.
MAX_LOG_LINE = 120


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


def samples_per_step(config: dict) -> int | None:
    """Completions one RL or online step samples: ``method.batch_size`` questions times
    ``method.rollouts_per_query``; ``None`` without the config to size it."""
    method = config.get("method")
    if not isinstance(method, dict) or "batch_size" not in method:
        return None
    return int(method["batch_size"]) * int(method.get("rollouts_per_query", 1))


def running_samples(records: Sequence[dict], config: dict) -> list[int] | None:
    """Completions sampled for training up to and including each record (see `count_samples`);
    ``None`` when the run logged RL steps that its config cannot size."""
    per_step = samples_per_step(config)
    total, counts = 0, []
    for record in records:
        if isinstance(record.get("samples_drawn"), int | float):
            total += int(record["samples_drawn"])
        if "train/reward_mean" in record:
            if per_step is None:
                return None
            total += per_step
        counts.append(total)
    return counts


def count_samples(records: Sequence[dict], config: dict) -> int | None:
    """Completions sampled for training, counted from the metrics (when the summary has none).

    Sampling stages (self-training's sample_and_filter, PrefixRL's trace collection) log their
    own ``samples_drawn``; each RL or online step (a record with ``train/reward_mean``) samples
    ``method.batch_size`` questions times ``method.rollouts_per_query``. That is exact except
    for a short last batch of a pass over the training set; evaluation samples are left out.
    ``None`` when the run logged neither, or RL steps without the config to size them.
    """
    sampled = any("samples_drawn" in r or "train/reward_mean" in r for r in records)
    counts = running_samples(records, config) if sampled else None
    return counts[-1] if counts else None


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
    gain = [summary.get(key) for key in GAIN_KEYS]
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in gain):
        run.gain = (float(gain[0]), float(gain[1]), float(gain[2]))
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


def running_stage(run_dir: Path) -> str | None:
    """The stage progress.json names as running: where a killed run stopped, even when that
    stage (an evaluation) logged nothing yet."""
    try:
        running = read_json(run_dir / "progress.json").get("running") or {}
        return str(running["stage"]) if running.get("stage") else None
    except Exception:  # progress.json is optional detail for the note
        return None


def fill_partial(run: RunResult) -> None:
    """Where a run without a summary stopped: last step and stage, last evaluation."""
    run.status = PARTIAL
    last = run.records[-1]
    run.last_step = last.get("step")
    run.last_stage = running_stage(run.run_dir) or last.get("stage")
    note = f"stopped at step {run.last_step} in {run.last_stage}"
    evals = [r for r in run.records if isinstance(r.get("eval/accuracy"), int | float)]
    if evals:
        run.last_eval_accuracy = float(evals[-1]["eval/accuracy"])
        note += f"; last eval {format_percent(run.last_eval_accuracy)} at step {evals[-1]['step']}"
    stages = finished_stages(run.run_dir)
    if stages:
        note += f"; finished: {', '.join(stages)}"
    run.note = note


def read_overrides(run_dir: Path, problems: list[str]) -> dict[str, str] | None:
    """The run's overrides (``.hydra/overrides.yaml``); ``None`` when there are none to read."""
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    try:
        return parse_overrides(read_yaml(path) or [])
    except Exception as exc:
        problems.append(why_unreadable(path, exc))
        return None


def read_records(run_dir: Path, problems: list[str]) -> list[dict[str, Any]]:
    """The complete lines of metrics.jsonl (a torn last line is left out)."""
    try:
        return read_metrics(run_dir)
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(why_unreadable(run_dir / "metrics.jsonl", exc))
        return []


def read_summary(run_dir: Path, problems: list[str]) -> dict | None:
    """summary.json if it is readable and has a test accuracy (the run is done), else ``None``."""
    path = run_dir / "summary.json"
    if not path.exists():
        return None
    try:
        summary = read_json(path)
    except Exception as exc:
        problems.append(why_unreadable(path, exc))
        return None
    if not isinstance(summary, dict) or "test_accuracy" not in summary:
        problems.append("summary.json has no test_accuracy")
        return None
    return summary


def failure_note(run_dir: Path, problems: list[str]) -> str:
    """Why a run has nothing usable: its problems, else what is missing; then its last log line."""
    if not problems:
        problems = [
            "metrics.jsonl holds no complete line"
            if (run_dir / "metrics.jsonl").exists()
            else "no summary.json or metrics.jsonl (stopped before its first logged step)"
        ]
    log_line = last_log_line(run_dir)
    return "; ".join(problems) + (f"; log: {log_line}" if log_line else "")


def read_run(run_dir: Path, root: Path) -> RunResult:
    """Read one run dir; every problem becomes the run's status and note, never an exception."""
    name = str(run_dir.relative_to(root)) if run_dir != root else run_dir.name
    run = RunResult(name=name, run_dir=run_dir)
    run.config, config_why = read_config(run_dir)
    run.names = {group: group_name(run.config, group) for group in GROUPS}
    problems = [config_why] if config_why else []
    run.overrides = read_overrides(run_dir, problems)
    run.records = read_records(run_dir, problems)
    if run.records:
        run.samples_drawn = count_samples(run.records, run.config)
        run.samples_source = "metrics" if run.samples_drawn is not None else ""

    summary = read_summary(run_dir, problems)
    if summary is not None:
        fill_done(run, summary)
    elif run.records and not (run_dir / "summary.json").exists():
        fill_partial(run)
    else:  # failed: the status a RunResult starts with
        run.note = failure_note(run_dir, problems)
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
