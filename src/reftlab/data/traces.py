"""Solution traces: choosing which sampled solutions to train on, and trace files.

Self-training (ReFT's offline and online baselines) fine-tunes on the model's own correct
samples; PrefixRL conditions on prefixes of successful off-policy traces. Both keep a set of
*distinct* correct solutions per question; this module decides which, and reads and writes the
JSONL trace files (one ``{"id": ..., "completion": ...}`` object a line, several lines per id
allowed) that carry traces from one run, or another source, to the next.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from reftlab.data.errors import DataError


def normalise_solution(text: str) -> str:
    """The key two solutions are compared by: whitespace runs collapsed, ends stripped.

    Samples that differ only in spacing or a trailing newline teach nothing new, so they count
    as one.
    """
    return " ".join(text.split())


def select_targets(
    samples: Sequence[str], correct: Sequence[bool], keep: int, gold: str | None = None
) -> list[str]:
    """The completions to train on for one question: ``gold`` (if given) and then up to ``keep``
    distinct correct samples, in the order they were drawn.

    A sample equal to ``gold`` (or to an earlier kept sample) after ``normalise_solution`` is
    a duplicate and is skipped, so it does not use up one of the ``keep`` places. ReFT's
    offline self-training keeps the distinct correct samples plus the gold CoT.
    """
    if len(samples) != len(correct):
        raise ValueError(f"{len(samples)} samples but {len(correct)} correctness flags")
    targets = [] if gold is None else [gold]
    seen = {normalise_solution(t) for t in targets}
    kept = 0
    for text, ok in zip(samples, correct, strict=True):
        if kept >= keep:
            break
        key = normalise_solution(text)
        if not ok or key in seen:
            continue
        seen.add(key)
        targets.append(text)
        kept += 1
    return targets


def parse_trace_lines(lines: Iterable[str], source: str) -> dict[str, list[str]]:
    """``{id: [completion, ...]}`` from JSONL lines; blank lines are skipped.

    A malformed line raises ``DataError`` naming ``source`` and the line (1-based).
    """
    traces: dict[str, list[str]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{source}, line {number}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{source}, line {number}: expected an object with id and completion")
        trace_id, completion = record.get("id"), record.get("completion")
        if trace_id is None or not isinstance(completion, str) or not completion.strip():
            raise DataError(
                f'{source}, line {number}: a trace needs "id" and a non-empty string '
                f'"completion" (got keys {sorted(record)})'
            )
        traces.setdefault(str(trace_id), []).append(completion)
    return traces


def read_trace_file(path: str | Path) -> dict[str, list[str]]:
    """Read a JSONL trace file; a missing file raises ``DataError`` naming it."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"trace file {path}: no such file")
    with path.open(encoding="utf-8") as f:
        return parse_trace_lines(f, str(path))


def write_trace_file(path: str | Path, traces: Mapping[str, Sequence[str]]) -> None:
    """Write ``{id: [completion, ...]}`` as JSONL, one trace a line (what ``read_trace_file``
    reads back)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for trace_id, completions in traces.items():
            for completion in completions:
                f.write(json.dumps({"id": trace_id, "completion": completion}) + "\n")
