"""The verbs beside training: `reftlab score ...` and `reftlab report PATH`."""

from __future__ import annotations

from collections.abc import Sequence

from reftlab.errors import ReftlabError


def score(argv: Sequence[str]) -> int:
    """Score a JSONL of completions against a data set's test split."""
    raise ReftlabError("`reftlab score` is not available yet")


def report(argv: Sequence[str]) -> int:
    """Results table and plots of a run or sweep directory."""
    raise ReftlabError("`reftlab report` is not available yet")
