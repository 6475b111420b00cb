"""Read data files, folders and Hub splits into ``Example`` records.

Every malformed record ends in one ``DataError`` naming the file and the record's place in it:
``line N`` (1-based) in a JSONL file, ``record N`` (0-based list index) in a JSON list, ``row N``
(0-based) in a Hub split. Nothing is skipped except blank JSONL lines and JSONL lines longer than
``lines.MAX_LINE_BYTES`` (never read into memory), which are counted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reftlab.data.errors import DataError, RecordError
from reftlab.data.formats import FORMAT_KEYS, detect_format, to_example
from reftlab.data.lines import MAX_LINE_BYTES, read_lines
from reftlab.data.prompts import COT_TYPES
from reftlab.data.records import Example
from reftlab.data.registry import DATASETS, get_spec

# ReFT's training files are named by chain-of-thought type.
_REFT_TRAIN_SUFFIX = {"natural": "nl", "program": "python_sdp"}


@dataclass(frozen=True)
class Skipped:
    """JSONL lines skipped while reading: blank ones, and those over ``MAX_LINE_BYTES``."""

    blank: int = 0
    long: int = 0


@dataclass(frozen=True)
class LoadStats:
    """What one load produced; ``n_blank_lines`` and ``n_long_lines`` count the blank JSONL
    lines and those over ``lines.MAX_LINE_BYTES`` that were skipped."""

    source: str
    fmt: str
    n_examples: int
    n_with_cot: int
    n_with_program: int
    n_with_options: int
    n_blank_lines: int = 0
    n_long_lines: int = 0

    def skipped_note(self) -> str:
        """` (2 blank lines skipped, 1 line over 1 MiB skipped)`, or '' when none were."""
        notes = []
        if self.n_blank_lines:
            notes.append(f"{self.n_blank_lines} blank lines skipped")
        if self.n_long_lines:
            mib = MAX_LINE_BYTES >> 20
            notes.append(f"{self.n_long_lines} line(s) over {mib} MiB skipped")
        return f" ({', '.join(notes)})" if notes else ""


def load_examples(
    path: Path,
    dataset: str,
    fmt: str | None = None,
    answer_type: str | None = None,
    split: str | None = None,
) -> list[Example]:
    """Load a ``.jsonl`` or ``.json`` file of any known format as ``Example`` records.

    ``fmt`` overrides format detection (see ``formats.FORMAT_KEYS``); ``answer_type``
    (``"number"`` or ``"choice"``) defaults to the registered data set's. ``split`` (default:
    the file's stem) only names records that carry no id: ``<dataset>_<split>_<index>``.
    """
    return load_examples_with_stats(path, dataset, fmt, answer_type, split)[0]


def load_examples_with_stats(
    path: Path,
    dataset: str,
    fmt: str | None = None,
    answer_type: str | None = None,
    split: str | None = None,
) -> tuple[list[Example], LoadStats]:
    """``load_examples``, also returning what was loaded and skipped."""
    path = Path(path)
    located, skipped = read_records(path)
    examples, fmt = map_records(
        located,
        source=str(path),
        dataset=dataset,
        split=split or path.stem,
        fmt=fmt,
        answer_type=answer_type or answer_type_of(dataset),
    )
    return examples, count_examples(examples, str(path), fmt, skipped)


def read_records(path: Path) -> tuple[list[tuple[str, Any]], Skipped]:
    """Read raw records with their place in the file, and the lines skipped.

    Returns ``([("line 1", {...}), ...], skipped)`` for JSONL and
    ``([("record 0", {...}), ...], Skipped())`` for a JSON list.
    """
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    if path.suffix == ".jsonl":
        return _read_jsonl(path)
    if path.suffix == ".json":
        return _read_json_list(path), Skipped()
    raise DataError(
        f"{path}: unsupported file type {path.suffix!r}; use .jsonl (one JSON object per line) "
        "or .json (a list of objects)"
    )


def examples_from_rows(
    rows: Iterable[Mapping[str, Any]],
    dataset: str,
    split: str,
    fmt: str | None = None,
    answer_type: str | None = None,
    source: str = "rows",
) -> list[Example]:
    """Map in-memory rows (e.g. a Hub split) to ``Example`` records, as ``load_examples`` does."""
    located = [(f"row {index}", row) for index, row in enumerate(rows)]
    examples, _ = map_records(
        located, source, dataset, split, fmt, answer_type or answer_type_of(dataset)
    )
    return examples


def load_from_hub(
    hub_id: str,
    split: str,
    config_name: str | None = None,
    dataset: str | None = None,
    fmt: str | None = None,
    answer_type: str | None = None,
) -> list[Example]:
    """Download one split from the Hugging Face Hub and map it to ``Example`` records.

    E.g. ``load_from_hub("openai/gsm8k", "train", "main", "gsm8k")``,
    ``load_from_hub("ChilleD/SVAMP", "test", dataset="svamp")``,
    ``load_from_hub("allenai/math_qa", "test", dataset="mathqa")``. ``dataset`` defaults to the
    registered data set whose ``hub_id`` this is.
    """
    # Imported here: the datasets library is slow to import and only this path needs it.
    from datasets import load_dataset

    dataset = dataset or _dataset_for_hub_id(hub_id)
    rows = load_dataset(hub_id, config_name, split=split)
    return examples_from_rows(rows, dataset, split, fmt, answer_type, source=f"{hub_id} [{split}]")


def resolve_split_file(
    directory: Path, split: str, dataset: str | None = None, cot_type: str = "natural"
) -> Path:
    """Find the file holding ``split`` in a folder, trying the usual names in order:

    1. ReFT's names when ``dataset`` is registered with a ``reft_stem``: ``<stem>_nl.json``
       (``cot_type="natural"``) or ``<stem>_python_sdp.json`` (``"program"``) for ``train``,
       ``<stem>_<split>_set.json`` otherwise;
    2. the data set's other usual names for that split (e.g. ``SVAMP.json`` for svamp test);
    3. ``<split>.jsonl``, then ``<split>.json``.
    """
    directory = Path(directory)
    if cot_type not in COT_TYPES:
        raise DataError(f"unknown cot type {cot_type!r}; use one of {', '.join(COT_TYPES)}")
    if not directory.is_dir():
        raise DataError(f"{directory}: no such data folder")
    candidates = candidate_file_names(split, dataset, cot_type)
    for name in candidates:
        if (directory / name).is_file():
            return directory / name
    present = sorted(p.name for p in directory.iterdir() if p.suffix in (".json", ".jsonl"))
    raise DataError(
        f"{directory}: no file for split {split!r} (tried {', '.join(candidates)}); "
        f"JSON files there: {', '.join(present[:20]) or 'none'}"
    )


def candidate_file_names(split: str, dataset: str | None, cot_type: str) -> list[str]:
    """The file names ``resolve_split_file`` tries, in order."""
    names = []
    spec = get_spec(dataset) if dataset is not None else None
    if spec is not None and spec.reft_stem is not None:
        if split == "train":
            names.append(f"{spec.reft_stem}_{_REFT_TRAIN_SUFFIX[cot_type]}.json")
        else:
            names.append(f"{spec.reft_stem}_{split}_set.json")
    if spec is not None:
        names.extend(spec.local_files.get(split, ()))
    names.extend([f"{split}.jsonl", f"{split}.json"])
    return names


def map_records(
    located: list[tuple[str, Any]],
    source: str,
    dataset: str,
    split: str,
    fmt: str | None,
    answer_type: str,
) -> tuple[list[Example], str]:
    """Map located raw records to examples; return them and the format used."""
    if not located:
        raise DataError(f"{source}: no records")
    if fmt is None:
        where, first = located[0]
        try:
            if not isinstance(first, Mapping):
                raise RecordError(f"expected a JSON object, got {type(first).__name__}")
            fmt = detect_format(first)
        except RecordError as exc:
            raise DataError(f"{source}, {where}: {exc}") from None
    elif fmt not in FORMAT_KEYS:
        raise DataError(f"{source}: unknown format {fmt!r}; known formats: {sorted(FORMAT_KEYS)}")
    examples: list[Example] = []
    first_place: dict[str, str] = {}
    for index, (where, record) in enumerate(located):
        try:
            example = to_example(record, fmt, dataset, split, index, answer_type)
        except RecordError as exc:
            raise DataError(f"{source}, {where}: {exc}") from None
        if example.id in first_place:
            raise DataError(
                f"{source}, {where}: duplicate id {example.id!r} (first at {first_place[example.id]})"
            )
        first_place[example.id] = where
        examples.append(example)
    return examples, fmt


def count_examples(
    examples: list[Example], source: str, fmt: str, skipped: Skipped | None = None
) -> LoadStats:
    """Summarise a load for the run's log."""
    return LoadStats(
        source=source,
        fmt=fmt,
        n_examples=len(examples),
        n_with_cot=sum(e.cot is not None for e in examples),
        n_with_program=sum(e.program is not None for e in examples),
        n_with_options=sum(bool(e.options) for e in examples),
        n_blank_lines=(skipped or Skipped()).blank,
        n_long_lines=(skipped or Skipped()).long,
    )


def answer_type_of(dataset: str) -> str:
    """The registered answer type of ``dataset``."""
    try:
        return get_spec(dataset).answer_type
    except DataError as exc:
        raise DataError(f"{exc}; or pass answer_type='number' or 'choice'") from None


def _read_jsonl(path: Path) -> tuple[list[tuple[str, Any]], Skipped]:
    located, blank, long = [], 0, 0
    for number, line in read_lines(path):
        if line is None:
            long += 1
            continue
        if not line.strip():
            blank += 1
            continue
        try:
            located.append((f"line {number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}, line {number}: invalid JSON ({exc.msg} at column {exc.colno})"
            ) from None
    return located, Skipped(blank, long)


def _read_json_list(path: Path) -> list[tuple[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); is it a binary file?"
        ) from None
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}, line {exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno}); "
            "a .json data file must hold one list of objects (use .jsonl for one per line)"
        ) from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return [(f"record {index}", record) for index, record in enumerate(data)]


def _dataset_for_hub_id(hub_id: str) -> str:
    for spec in DATASETS.values():
        if spec.hub_id == hub_id:
            return spec.name
    raise DataError(f"no registered dataset has hub id {hub_id!r}; pass dataset=... explicitly")
