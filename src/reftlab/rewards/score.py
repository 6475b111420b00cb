"""Rewards for completions: correct 1.0, a wrong but well-formed answer ``partial_reward``,
nothing usable 0.0 -- ReFT's partial credit (Luong et al., 2024, sec. 3: 0.1 for an answer
that can be extracted but is wrong).

Well-formed means a number for numeric data sets and an option (a letter, an option text, or a
value that matches an option) for multiple choice. For a program (P-CoT) the sandbox result
decides: a program that fails, times out, or returns nothing usable gets 0; one that runs and
returns a number (or a valid choice) gets 1.0 or ``partial_reward``.

Whether an example is multiple choice is read from the record: it has options, or its answer
is a single letter a-e.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from reftlab.data.records import Example
from reftlab.rewards.choices import (
    DEFAULT_OPTION_REL_TOL,
    LETTERS,
    Choice,
    extract_choice,
    read_choice,
)
from reftlab.rewards.extract import DEFAULT_MARKERS, LAST_NUMBER, extract_number
from reftlab.rewards.numbers import (
    DEFAULT_ABS_TOL,
    DEFAULT_REL_TOL,
    WrittenNumber,
    iter_numbers,
    numbers_match,
    parse_number,
)
from reftlab.sandbox.result import OK, ExecResult

DEFAULT_PARTIAL_REWARD = 0.1
NATURAL, PROGRAM = "natural", "program"
# What may follow the number a program returns as a string: unit words, no second number.
_UNITS = re.compile(r"[^\W\d_]*(?:[\s./%\u00b0]+[^\W\d_]*)*\s*")


@dataclass(frozen=True)
class Score:
    """The reward of one completion and what it was based on.

    ``extracted`` is the answer read from the completion (a number as written, e.g. ``"0.42"``,
    or the chosen letter(s), e.g. ``"c"``), or None. ``exec_status`` is the sandbox status for
    programs and None for natural-language completions.
    """

    reward: float
    extracted: str | None
    correct: bool
    exec_status: str | None = None


def is_choice(example: Example) -> bool:
    """Whether the example is multiple choice (it has options, or a letter as its answer)."""
    answer = example.answer.strip().lower()
    return bool(example.options) or (len(answer) == 1 and answer in LETTERS)


def gold_number(example: Example) -> WrittenNumber:
    """The example's numeric answer; a clear error for a record whose answer is not a number."""
    gold = parse_number(example.answer)
    if gold is None:
        raise ValueError(f"example {example.id!r} has no numeric answer: {example.answer!r}")
    return gold


def _reward(correct: bool, extracted: bool, partial_reward: float) -> float:
    return 1.0 if correct else partial_reward if extracted else 0.0


def score_number(
    answer: WrittenNumber | None,
    example: Example,
    *,
    partial_reward: float = DEFAULT_PARTIAL_REWARD,
    rel_tol: float = DEFAULT_REL_TOL,
    abs_tol: float = DEFAULT_ABS_TOL,
    rounding: bool = True,
) -> Score:
    """Score an extracted number against a numeric example."""
    if answer is None:
        return Score(0.0, None, False)
    correct = numbers_match(
        answer, gold_number(example), rel_tol=rel_tol, abs_tol=abs_tol, rounding=rounding
    )
    return Score(_reward(correct, True, partial_reward), answer.text, correct)


def score_choice(
    choice: Choice | None, example: Example, *, partial_reward: float = DEFAULT_PARTIAL_REWARD
) -> Score:
    """Score a chosen option; a value equal to duplicate options is right if any is the gold."""
    if choice is None:
        return Score(0.0, None, False)
    gold = example.answer.strip().lower()
    correct = gold in choice.letters
    extracted = gold if correct else choice.letters[0]
    return Score(_reward(correct, True, partial_reward), extracted, correct)


def score_natural(
    completion: str,
    example: Example,
    *,
    partial_reward: float = DEFAULT_PARTIAL_REWARD,
    markers: Sequence[str] = DEFAULT_MARKERS,
    fallback: str = LAST_NUMBER,
    rel_tol: float = DEFAULT_REL_TOL,
    abs_tol: float = DEFAULT_ABS_TOL,
    rounding: bool = True,
    option_rel_tol: float = DEFAULT_OPTION_REL_TOL,
) -> Score:
    """Reward of a natural-language chain of thought (see the module docstring)."""
    if is_choice(example):
        choice = extract_choice(
            completion,
            example.options,
            markers=markers,
            fallback=fallback,
            option_rel_tol=option_rel_tol,
        )
        return score_choice(choice, example, partial_reward=partial_reward)
    answer = extract_number(completion, markers=markers, fallback=fallback)
    return score_number(
        answer,
        example,
        partial_reward=partial_reward,
        rel_tol=rel_tol,
        abs_tol=abs_tol,
        rounding=rounding,
    )


def score_program(
    result: ExecResult,
    example: Example,
    *,
    partial_reward: float = DEFAULT_PARTIAL_REWARD,
    rel_tol: float = DEFAULT_REL_TOL,
    abs_tol: float = DEFAULT_ABS_TOL,
    rounding: bool = True,
    option_rel_tol: float = DEFAULT_OPTION_REL_TOL,
) -> Score:
    """Reward of an executed program from its sandbox result (see the module docstring).

    A returned number is read from the value's text; for multiple choice the value may be a
    letter (``"c"``, ``"(c)"``), an option text, or a number matched to an option.
    """
    if result.status != OK or result.value is None:
        return Score(0.0, None, False, result.status)
    if is_choice(example):
        choice = read_choice(result.value, example.options, option_rel_tol=option_rel_tol)
        score = score_choice(choice, example, partial_reward=partial_reward)
    else:
        # A bool is an int to Python but not an answer to a word problem.
        answer = None if result.value_type == "bool" else read_returned_number(result.value)
        score = score_number(
            answer,
            example,
            partial_reward=partial_reward,
            rel_tol=rel_tol,
            abs_tol=abs_tol,
            rounding=rounding,
        )
    return Score(score.reward, score.extracted, score.correct, result.status)


def read_returned_number(value: str) -> WrittenNumber | None:
    """A returned value that is one number, alone or with its unit (``"18"``, ``"3/4"``,
    ``"1e+20"``, ``"$18"``, ``"18 dollars"``, ``"45%"``).

    Other text (``"x = 18"``, ``"18 or 20"``) is no well-formed answer, nor are ``"inf"`` and
    ``"nan"``; ReFT's ``float(value)`` rejects units too, which costs right programs nothing
    there only because its programs return numbers.
    """
    text = value.strip()
    first = next(iter_numbers(text), None)
    if first is None:
        return None
    number, start, end = first
    return number if text[:start].strip() in ("", "$") and _UNITS.fullmatch(text, end) else None
