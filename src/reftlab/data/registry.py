"""The data sets reftlab knows by name: answer type, Hub source and usual local file names."""

from __future__ import annotations

from dataclasses import dataclass, field

from reftlab.data.errors import DataError
from reftlab.data.records import CHOICE, NUMBER


@dataclass(frozen=True)
class DatasetSpec:
    """What the loaders need to know about one named data set.

    ``reft_stem`` is the prefix of the data set's files in ReFT's ``data/`` folder
    (``<stem>_nl.json`` and ``<stem>_python_sdp.json`` for training by chain-of-thought type,
    ``<stem>_test_set.json`` for testing). ``local_files`` lists other usual file names per
    split, tried after those. ``hub_id`` is ``None`` for sets with no Hub copy of that shape.
    """

    name: str
    answer_type: str
    hub_id: str | None = None
    hub_config: str | None = None
    reft_stem: str | None = None
    local_files: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Split sizes of the Hub copy, shown by a dry run without downloading anything.
    hub_sizes: dict[str, int] = field(default_factory=dict)


DATASETS: dict[str, DatasetSpec] = {
    "gsm8k": DatasetSpec(
        name="gsm8k",
        answer_type=NUMBER,
        hub_id="openai/gsm8k",
        hub_config="main",
        reft_stem="gsm8k",
        hub_sizes={"train": 7473, "test": 1319},
    ),
    "svamp": DatasetSpec(
        name="svamp",
        answer_type=NUMBER,
        hub_id="ChilleD/SVAMP",
        reft_stem="svamp",
        hub_sizes={"train": 700, "test": 300},
        # The original SVAMP release is one 1,000-problem challenge set, used for testing.
        local_files={"test": ("SVAMP.json",)},
    ),
    "mathqa": DatasetSpec(
        name="mathqa",
        answer_type=CHOICE,
        hub_id="allenai/math_qa",
        reft_stem="mathqa",
        hub_sizes={"train": 29837, "test": 2985},
        local_files={"test": ("mathqa_test_nodup_our_filtered.json",)},
    ),
    # MathQA's questions with numeric answers, as prepared by ReFT; it has no Hub copy.
    "mathqa_numeric": DatasetSpec(
        name="mathqa_numeric",
        answer_type=NUMBER,
        reft_stem="mathqa-numeric",
    ),
    # Generated in-process by reftlab.data.arith; nothing to load.
    "arith": DatasetSpec(name="arith", answer_type=NUMBER),
    # GSM-Hard (PAL): GSM8K's test questions with large numbers, with programs (the Hub copy
    # names its one split "train").
    "gsm_hard": DatasetSpec(
        name="gsm_hard",
        answer_type=NUMBER,
        hub_id="reasoning-machines/gsm-hard",
        local_files={"test": ("gsmhardv2.jsonl",)},
    ),
}


def get_spec(name: str) -> DatasetSpec:
    """The spec registered under ``name``; an unknown name fails with the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(
            f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))}"
        ) from None
