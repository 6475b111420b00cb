"""Finding the final answer in a natural-language chain of thought (N-CoT).

The answer is what follows the last final-answer marker (``the answer is`` and GSM8K's
``####`` by default, any case), read up to the end of that line: ``The answer is 18.``,
ReFT's ``Therefore, the answer is <203>.``, ``the answer is: $1,200``, ``#### 72``. When no
marker is present, ``fallback`` decides: ``"last_number"`` takes the last number anywhere in the
text, ``"none"`` extracts nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from reftlab.rewards.numbers import WrittenNumber, find_numbers, parse_number

DEFAULT_MARKERS = ("the answer is", "####")
LAST_NUMBER = "last_number"
NO_FALLBACK = "none"
FALLBACKS = (LAST_NUMBER, NO_FALLBACK)

# Decorations around an answer that are not part of it: <203>, \boxed{18}, **18**, a colon.
_DECORATION = re.compile(r"\\boxed\{|[<>{}*`]")


def check_fallback(fallback: str) -> None:
    """Fail with the list of known values for an unknown ``fallback``."""
    if fallback not in FALLBACKS:
        raise ValueError(f"unknown answer fallback {fallback!r}; known: {', '.join(FALLBACKS)}")


def find_marker(
    completion: str, markers: Sequence[str] = DEFAULT_MARKERS
) -> tuple[int, int] | None:
    """``(start, end)`` of the last occurrence of any marker (case-insensitive), or None."""
    lowered = completion.lower()
    best: tuple[int, int] | None = None
    for marker in markers:
        start = lowered.rfind(marker.lower())
        if start >= 0 and (best is None or start > best[0]):
            best = (start, start + len(marker))
    return best


def answer_span(completion: str, markers: Sequence[str] = DEFAULT_MARKERS) -> str | None:
    """The cleaned text after the last marker, up to the end of its line; None without marker.

    When the marker ends its line (``The answer is:\\n18``), the next non-empty line is used.
    """
    found = find_marker(completion, markers)
    if found is None:
        return None
    lines = [
        _DECORATION.sub(" ", line).strip(" \t:=") for line in completion[found[1] :].split("\n")
    ]
    return next((line for line in lines if line), "")


def extract_number(
    completion: str,
    *,
    markers: Sequence[str] = DEFAULT_MARKERS,
    fallback: str = LAST_NUMBER,
) -> WrittenNumber | None:
    """The final numeric answer of an N-CoT completion, or None when there is none.

    With a marker present, the first number after it (so ``The answer is 18 dollars.`` gives
    18); a marker followed by no number gives None, whatever the fallback.
    """
    check_fallback(fallback)
    span = answer_span(completion, markers)
    if span is not None:
        return parse_number(span)
    if fallback == LAST_NUMBER:
        numbers = find_numbers(completion)
        return numbers[-1] if numbers else None
    return None
