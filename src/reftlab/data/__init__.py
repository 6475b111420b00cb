"""Data layer: load any source into ``Example`` records, generate ``arith``, format prompts."""

from reftlab.data.arith import generate_arith, generate_arith_splits
from reftlab.data.errors import DataError
from reftlab.data.loaders import (
    LoadStats,
    examples_from_rows,
    load_examples,
    load_examples_with_stats,
    load_from_hub,
    resolve_split_file,
)
from reftlab.data.prompts import DEFAULT_TEMPLATES, format_prompt, format_target
from reftlab.data.records import CHOICE, NUMBER, Example
from reftlab.data.registry import DATASETS, DatasetSpec, get_spec

__all__ = [
    "CHOICE",
    "DATASETS",
    "DEFAULT_TEMPLATES",
    "NUMBER",
    "DataError",
    "DatasetSpec",
    "Example",
    "LoadStats",
    "examples_from_rows",
    "format_prompt",
    "format_target",
    "generate_arith",
    "generate_arith_splits",
    "get_spec",
    "load_examples",
    "load_examples_with_stats",
    "load_from_hub",
    "resolve_split_file",
]
