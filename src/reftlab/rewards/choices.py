"""Multiple-choice answers (MathQA): a letter, or a value or a text matched to an option.

Option texts come as MathQA writes them: ``38``, ``15 / 8 ohms``, ``rs . 1200``, ``16.66 %``,
``- 1 / 6``, ``297 cm 2``, ``data inadequate``, sometimes with the label repeated
(``b ) 120 %``). ``option_value`` reads the number an option stands for, or None when the option
is text or more than one number (``30 , 10``, ``6 / π``, ``40 minutes 20 seconds``).

A written value selects the nearest option among those it matches. An option matches when the
value equals it under ``numbers_match`` with ``option_rel_tol`` (default 1e-4: MathQA options are
often rounded) or lies within one unit of the option's last written decimal, since MathQA also
truncates (``16.66 %`` for 16.666..., ``7.333`` for 22/3). Duplicate options (29 of MathQA's
1,605 test problems have two equal options) tie, and the choice then holds every tied letter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from reftlab.rewards.extract import (
    DEFAULT_MARKERS,
    LAST_NUMBER,
    STRICT,
    answer_span,
    check_fallback,
    corrected,
    find_marker,
    read_first,
    read_number,
)
from reftlab.rewards.numbers import (
    DEFAULT_ABS_TOL,
    WrittenNumber,
    find_numbers,
    iter_numbers,
    numbers_match,
    parse_number,
)

LETTERS = "abcde"
DEFAULT_OPTION_REL_TOL = 1e-4
BY_LETTER, BY_VALUE, BY_TEXT = "letter", "value", "text"

# "(c)", "[c]", "c )", "c)", "C.", "c:", "c" alone, optionally after "option"/"choice"/"letter".
_LETTER = re.compile(
    r"^(?:option|choice|letter)?\s*(?:[(\[]\s*([a-e])\s*[)\]]|([a-e])\s*\)|([a-e])(?:\s*[.:,;](?!\d)|\s*$))",
    re.IGNORECASE,
)
# A repeated label inside an option text: "b ) 120 %", "b . 120 %".
_LABEL = re.compile(r"^\s*[a-e]\s*[).]\s*(?=\S)", re.IGNORECASE)
# Negative options are written with a detached sign: "- 5", "\u2212 120", "- 1 / 6".
_DETACHED_SIGN = re.compile(r"^\s*([-\u2212])\s+(?=\d)")
# What may follow an option's number: unit words, possibly squared or cubed ("cm 2", "m ^ 3"),
# per-unit ("km / hr"), "%" and "°" and a final period. Anything else (a second number, "π",
# "+ ( 4 / 7 )") makes the option an expression rather than a value.
_UNIT_WORD = re.compile(r"[a-z\u00b0%$./]+", re.IGNORECASE)


@dataclass(frozen=True)
class Choice:
    """The option(s) an answer selects and how: ``"letter"``, ``"value"`` or ``"text"``."""

    letters: tuple[str, ...]
    by: str


def _normalise_text(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def _strip_label(text: str) -> str:
    return _LABEL.sub("", text, count=1).strip()


def option_value(text: str) -> WrittenNumber | None:
    """The number an option text stands for, or None for text and expression options."""
    body = _DETACHED_SIGN.sub(r"\1", _strip_label(text))
    first = next(iter_numbers(body), None)
    if first is None:
        return None
    number, start, end = first
    # Before the number only currency or a variable name ("rs .", "$", "q ="); after it units.
    if re.search(r"\d", body[:start]) or not _is_units(body[end:]):
        return None
    return number


def _is_units(tail: str) -> bool:
    previous = ""
    for token in tail.split():
        exponent = token in ("2", "3") and bool(_UNIT_WORD.fullmatch(previous.strip("^")))
        if not (_UNIT_WORD.fullmatch(token) or token == "^" or exponent):
            return False
        previous = token if token != "^" else previous
    return True


def _within_truncation(value: WrittenNumber, option: WrittenNumber) -> bool:
    return option.decimals >= 1 and abs(value.value - option.value) < 10.0**-option.decimals


def letters_for_value(
    value: WrittenNumber,
    options: Mapping[str, str],
    *,
    option_rel_tol: float = DEFAULT_OPTION_REL_TOL,
) -> tuple[str, ...]:
    """Letters of the nearest matching option(s) for a written or computed value; () if none."""
    matches: list[tuple[float, str]] = []
    for letter, text in sorted(options.items()):
        option = option_value(text)
        if option is None:
            continue
        if numbers_match(
            value, option, rel_tol=option_rel_tol, abs_tol=DEFAULT_ABS_TOL
        ) or _within_truncation(value, option):
            matches.append((abs(value.value - option.value), letter))
    if not matches:
        return ()
    nearest = min(distance for distance, _ in matches)
    return tuple(letter for distance, letter in matches if distance == nearest)


def letters_for_text(text: str, options: Mapping[str, str]) -> tuple[str, ...]:
    """Letters of text options (``none of these``) that ``text`` starts with, longest first."""
    written = _normalise_text(text)
    best: list[tuple[int, str]] = []
    for letter, option in sorted(options.items()):
        normalised = _normalise_text(_strip_label(option))
        if (
            normalised
            and option_value(option) is None
            and (written == normalised or written.startswith(normalised + " "))
        ):
            best.append((len(normalised), letter))
    if not best:
        return ()
    longest = max(length for length, _ in best)
    return tuple(letter for length, letter in best if length == longest)


def read_choice(
    text: str,
    options: Mapping[str, str],
    *,
    option_rel_tol: float = DEFAULT_OPTION_REL_TOL,
    read_value: Callable[[str], WrittenNumber | None] = parse_number,
) -> Choice | None:
    """Read a letter, else an option text, else a value matched to an option, from ``text``.

    ``text`` is an answer span or a program's returned string; ``read_value`` reads the value
    (the first number by default). A letter counts even when the options are unknown (empty
    mapping); values and texts need the options.
    """
    text = text.strip().strip("\"'").strip()
    letter = _LETTER.match(text)
    if letter:
        return Choice((next(group for group in letter.groups() if group).lower(),), BY_LETTER)
    by_text = letters_for_text(text, options)
    if by_text:
        return Choice(by_text, BY_TEXT)
    value = read_value(text)
    if value is not None:
        by_value = letters_for_value(value, options, option_rel_tol=option_rel_tol)
        if by_value:
            return Choice(by_value, BY_VALUE)
    return None


def extract_choice(
    completion: str,
    options: Mapping[str, str],
    *,
    markers: Sequence[str] = DEFAULT_MARKERS,
    fallback: str = LAST_NUMBER,
    option_rel_tol: float = DEFAULT_OPTION_REL_TOL,
) -> Choice | None:
    """The option an N-CoT completion chooses, or None.

    Read like numbers (``rewards.extract``), from each candidate in turn: ``(c)``, ``c )``,
    ``C.``, ``answer is c``, ``$\\boxed{C}$``, ``\\textbf{(C)}``, an option text, or a value
    matched to an option; the ``last_number`` fallback matches the last number to the options.
    ``fallback="strict"`` reads the paper's format only: the text after the last marker.
    """
    check_fallback(fallback)
    if fallback == STRICT:
        span = answer_span(completion, markers)
        return read_choice(span, options, option_rel_tol=option_rel_tol) if span else None

    def read(span: str) -> Choice | None:
        return read_choice(
            corrected(span, letters=True),
            options,
            option_rel_tol=option_rel_tol,
            read_value=read_number,
        )

    found = read_first(completion, read, markers, fallback)
    return found[0] if found is not None else None


def value_before_answer(
    completion: str, markers: Sequence[str] = DEFAULT_MARKERS
) -> WrittenNumber | None:
    """The last number written before the final-answer marker: what the reasoning computed."""
    found = find_marker(completion, markers)
    numbers = find_numbers(completion[: found[0]] if found else completion)
    return numbers[-1] if numbers else None
