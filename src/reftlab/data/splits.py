"""From a `dataset` config node to train and test `Example` lists: generated, local files or Hub."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reftlab.data.arith import generate_arith_splits
from reftlab.data.errors import DataError
from reftlab.data.loaders import load_examples_with_stats, load_from_hub, resolve_split_file
from reftlab.data.records import Example
from reftlab.data.registry import get_spec

if TYPE_CHECKING:
    from reftlab.config import DatasetConfig

SPLITS = ("train", "test")


@dataclass(frozen=True)
class Splits:
    train: list[Example]
    test: list[Example]
    # Where each split came from, for the log and the plan.
    sources: dict[str, str]
    # `number` or `choice` (multiple choice, where the hacking check applies).
    answer_type: str

    def texts(self) -> list[str]:
        """The training questions and solutions (the test ones if there is no training split):
        what the tiny model's tokenizer is trained on."""
        texts = []
        for example in self.train or self.test:
            texts.append(example.question)
            texts.extend(t for t in (example.cot, example.program) if t)
        return texts


def answer_type_of(d: DatasetConfig) -> str:
    """`dataset.answer_type`, or the data set's own from its registry entry."""
    return d.answer_type or get_spec(d.name).answer_type


def _local_file(d: DatasetConfig, cot: str, split: str) -> Path | None:
    named = d.train_file if split == "train" else d.test_file
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise DataError(f"dataset.{split}_file={named}: no such file")
        return path
    if d.path:
        return resolve_split_file(Path(d.path).expanduser(), split, d.name, cot)
    return None


def _load_split(d: DatasetConfig, cot: str, split: str) -> tuple[list[Example], str]:
    path = _local_file(d, cot, split)
    answer_type = answer_type_of(d)
    if path is not None:
        examples, stats = load_examples_with_stats(
            path, d.name, answer_type=answer_type, split=split
        )
        return examples, f"{path}{stats.skipped_note()}"
    if d.train_file or d.test_file:
        raise DataError(
            f"dataset={d.name}: no {split} file given; set dataset.{split}_file=FILE as well"
        )
    spec = get_spec(d.name)
    hub_id, hub_config = d.hub_id or spec.hub_id, d.hub_config or spec.hub_config
    if not hub_id:
        raise DataError(
            f"dataset={d.name} has no Hub copy; set dataset.path or dataset.{split}_file"
        )
    return load_from_hub(hub_id, split, hub_config, d.name, answer_type=answer_type), hub_id


def _cap(examples: list[Example], cap: int | None) -> list[Example]:
    return examples if cap is None else examples[:cap]


def load_splits(
    d: DatasetConfig,
    cot: str,
    max_train: int | None = None,
    max_test: int | None = None,
    need_train: bool = True,
) -> Splits:
    """The train and test examples of data set `d` for chain-of-thought type `cot`, cut to
    the first `max_train` / `max_test` in file order."""
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
            train, sources["train"] = _load_split(d, cot, "train")
        test, sources["test"] = _load_split(d, cot, "test")
    return Splits(_cap(train, max_train), _cap(test, max_test), sources, answer_type_of(d))


def count_local_examples(d: DatasetConfig, cot: str) -> dict[str, int]:
    """Sizes of the local splits a dataset node names (for the dry-run plan)."""
    sizes = {}
    for split in SPLITS:
        try:
            path = _local_file(d, cot, split)
        except DataError:
            continue
        if path is not None:
            sizes[split] = len(
                load_examples_with_stats(path, d.name, answer_type=answer_type_of(d))[0]
            )
    return sizes
