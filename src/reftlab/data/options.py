"""MathQA multiple-choice options: parse both source layouts, render the canonical one."""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence

from reftlab.data.errors import RecordError

CHOICE_LETTERS = "abcde"

# A letter opens an option at the start of the text or right after the " , " separator, so a
# comma or a letter inside an option's own text ("1 , 000", "15 / 8 ohms") never splits it.
_OPTION_START = re.compile(r"(?:^|\s*,\s*)([a-e])\s*\)\s*")
# One item of the Python-list layout: "a ) 38".
_LIST_ITEM = re.compile(r"^\s*([a-e])\s*\)\s*(.*?)\s*$", re.S)


def parse_options(raw: str | Sequence[str]) -> dict[str, str]:
    """Parse MathQA options into ``{"a": "38", "b": "27.675", ...}``.

    Accepts the two layouts found in the real files: the plain line
    ``"a ) 38 , b ) 27.675 , c ) 30"`` and a Python-list string (or an actual list)
    ``"['a ) 38', 'b ) 27.675', 'c ) 30']"``. Letters must run a, b, c, ... in order.
    """
    if isinstance(raw, str) and raw.lstrip().startswith("["):
        try:
            raw = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError) as exc:
            raise RecordError(f"options look like a list but do not parse: {raw!r}") from exc
    if isinstance(raw, str):
        options = _parse_options_line(raw)
    elif isinstance(raw, Sequence) and all(isinstance(item, str) for item in raw):
        options = _parse_options_list(raw)
    else:
        raise RecordError(f"options must be a string or a list of strings, got {raw!r}")
    _check_letters(options, raw)
    return options


def format_options(options: Mapping[str, str]) -> str:
    """Render options the way ReFT's MathQA files write them: ``"a ) 38 , b ) 27.675"``."""
    return " , ".join(f"{letter} ) {text}" for letter, text in options.items())


def _parse_options_line(line: str) -> dict[str, str]:
    # re.split with one group gives ["", "a", "38", "b", "27.675", ...].
    parts = _OPTION_START.split(line.strip())
    if len(parts) < 3 or parts[0].strip():
        raise RecordError(f"options do not start with 'a )': {line!r}")
    letters, texts = parts[1::2], parts[2::2]
    return {letter: text.strip() for letter, text in zip(letters, texts, strict=True)}


def _parse_options_list(items: Sequence[str]) -> dict[str, str]:
    options = {}
    for item in items:
        match = _LIST_ITEM.match(item)
        if match is None:
            raise RecordError(f"option {item!r} does not look like 'a ) text'")
        options[match.group(1)] = match.group(2)
    return options


def _check_letters(options: dict[str, str], raw: object) -> None:
    expected = CHOICE_LETTERS[: len(options)]
    if len(options) < 2 or "".join(options) != expected:
        raise RecordError(
            f"options must be lettered a, b, c, ... in order; got letters "
            f"{''.join(options) or 'none'} from {raw!r}"
        )
