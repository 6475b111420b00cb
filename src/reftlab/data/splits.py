"""From the `dataset` config to train and test `Example` lists: generated, local files or Hub."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reftlab.config import RunConfig
from reftlab.data import (
    DataError,
    Example,
    generate_arith_splits,
    load_examples_with_stats,
    load_from_hub,
    resolve_split_file,
)

SPLITS = ("train", "test")


@dataclass(frozen=True)
class Splits:
    train: list[Example]
    test: list[Example]
    # Where each split came from, for the log and the plan.
    sources: dict[str, str]


def _local_file(run: RunConfig, split: str) -> Path | None:
    d = run.dataset
    named = d.train_file if split == "train" else d.test_file
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise DataError(f"dataset.{split}_file={named}: no such file")
        return path
    if d.path:
        return resolve_split_file(Path(d.path).expanduser(), split, d.name, run.cot.name)
    return None


def _load_split(run: RunConfig, split: str) -> tuple[list[Example], str]:
    d = run.dataset
    path = _local_file(run, split)
    if path is not None:
        examples, stats = load_examples_with_stats(
            path, d.name, answer_type=d.answer_type, split=split
        )
        note = f" ({stats.n_blank_lines} blank lines skipped)" if stats.n_blank_lines else ""
        return examples, f"{path}{note}"
    if d.train_file or d.test_file:
        raise DataError(
            f"dataset={d.name}: no {split} file given; set dataset.{split}_file=FILE as well"
        )
    if not d.hub_id:
        raise DataError(
            f"dataset={d.name} has no Hub copy; set dataset.path or dataset.{split}_file"
        )
    return load_from_hub(d.hub_id, split, d.hub_config, d.name, answer_type=d.answer_type), d.hub_id


def _cap(examples: list[Example], cap: int | None) -> list[Example]:
    return examples if cap is None else examples[:cap]


def load_splits(run: RunConfig, need_train: bool = True) -> Splits:
    """The run's train and test examples, cut to the budget's caps (the first N, in file order)."""
    d, b = run.dataset, run.budget
    if d.name == "arith":
        train, test = generate_arith_splits(
            d.train_size,
            d.test_size,
            seed=d.generator_seed,
            max_steps=d.max_steps,
            max_start=d.max_start,
            max_operand=d.max_operand,
            max_value=d.max_value,
            distractor_rate=d.distractor_rate,
            direct_answer_rate=d.direct_answer_rate,
        )
        sources = {s: f"arith (generated, seed {d.generator_seed})" for s in SPLITS}
    else:
        train, sources = [], {}
        if need_train:
            train, sources["train"] = _load_split(run, "train")
        test, sources["test"] = _load_split(run, "test")
    return Splits(_cap(train, b.max_train_examples), _cap(test, b.max_test_examples), sources)


def count_local_examples(run: RunConfig) -> dict[str, int]:
    """Sizes of the local splits a run names (for the dry-run plan)."""
    sizes = {}
    for split in SPLITS:
        try:
            path = _local_file(run, split)
        except DataError:
            continue
        if path is not None:
            sizes[split] = len(
                load_examples_with_stats(
                    path, run.dataset.name, answer_type=run.dataset.answer_type
                )[0]
            )
    return sizes
