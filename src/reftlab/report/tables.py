"""The report's tables: rows per run, the terminal table, Markdown and CSV.

The CSV holds raw values (accuracies as fractions, as in summary.json; seconds; counts); the
terminal and Markdown tables show percentages with one decimal and durations, and leave out
the columns no run fills.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reftlab.report.types import (
    DONE,
    EXTRA_ACCURACY_PREFIXES,
    FAILED,
    GAIN_KEYS,
    GROUPS,
    PARTIAL,
    Report,
    RunResult,
    Section,
    format_percent,
    natural_key,
    short_run_name,
)


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
        for key, value in zip(GAIN_KEYS, run.gain or ("", "", ""), strict=True):
            row[key.removeprefix("eval/")] = value
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
    headers += ["test", "warm-up", "gain", *(key.removeprefix("eval/") for key in extras)]
    headers += ["wall", "samples", "note"]
    numeric = set(range(2 + len(GROUPS) + len(knobs), len(headers) - 1))
    cells = []
    for run in report.runs:
        row = [short_run_name(run.name) if len(report.runs) > 1 else run.name, run.status]
        row += [run.names.get(group) or "" for group in GROUPS]
        row += [run.knob_values[knob] for knob in knobs]
        row += [
            format_percent(run.accuracies.get(k)) for k in ("test_accuracy", "warmup_test_accuracy")
        ]
        row.append(format_gain(run.gain))
        row += [format_percent(run.accuracies.get(key)) for key in extras]
        row.append(format_duration(run.wall_time_s))
        row.append("" if run.samples_drawn is None else str(run.samples_drawn))
        row.append(run.note)
        cells.append(row)
    keep = [i for i, h in enumerate(headers) if i < 2 or h == "test" or any(r[i] for r in cells)]
    right = {keep.index(i) for i in numeric if i in keep}
    return [headers[i] for i in keep], [[r[i] for i in keep] for r in cells], right


def format_gain(gain: tuple[float, float, float] | None) -> str:
    """`+4.3 [+1.0, +7.7]`: points over the warm-up, with the 95% interval."""
    if gain is None:
        return ""
    return "{:+.1f} [{:+.1f}, {:+.1f}]".format(*(100 * value for value in gain))


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


def section_markdown(section: Section) -> list[str]:
    """An experiment's heading, table, claims with their verdicts, notes and plot links."""
    lines = [
        f"## Experiment `{section.experiment}`",
        "",
        format_markdown(section.headers, section.rows, section.right),
        "",
        *(f"- {line}" for line in section.verdicts),
        *(f"- note: {line}" for line in section.notes),
        "",
    ]
    return lines + [f"![{plot.stem}]({plot.name})\n" for plot in section.plots]


def section_lines(section: Section) -> list[str]:
    """What the terminal shows of an experiment: its table, then claims, verdicts and notes."""
    return [
        f"experiment {section.experiment}:",
        "",
        format_table(section.headers, section.rows, section.right),
        "",
        *section.verdicts,
        *(f"note: {line}" for line in section.notes),
        "",
    ]


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
    lines += section_markdown(report.section) if report.section else []
    lines += [f"- {note}" for note in report.notes]
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")


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
        *(section_lines(report.section) if report.section else []),
        *(f"wrote {path}" for path in report.files),
        *report.notes,
    ]
    return "\n".join(lines)
