"""Map one raw record of each known source format to an ``Example``.

Formats (the names accepted by ``fmt``):

- ``openai_gsm8k``: ``{"question", "answer"}``; the answer is a worked solution with
  ``<<48/2=24>>`` calculator annotations and a last line ``#### 72``.
- ``reft``: ReFT's ``{"item_id", "question", "answer_value", "answer_cot"?}``; ``answer_cot`` is
  either natural text ending ``Therefore, the answer is <203>.`` or a ``def solution():``
  program. For multiple-choice sets the question's last line holds the options.
- ``pal``: PAL's ``{"input", "code", "target"}``.
- ``mathqa_original``: MathQA's ``{"Problem", "Rationale", "options", "correct", ...}``.
- ``svamp_original``: SVAMP's ``{"Body", "Question", "Equation", "Answer", "ID"?}``.

Decisions worth knowing:

- Answers keep the source's spelling minus thousands commas (``"203.0"`` stays ``"203.0"``,
  ``#### 850,000`` becomes ``"850000"``); JSON numbers are written with ``repr``.
- A natural chain of thought always ends with ``The answer is <x>.``. GSM8K's ``#### x`` line and
  ReFT's ``Therefore, the answer is <x>.`` sentence are rewritten to it; ``x`` is the text the
  source wrote there (ReFT's ``<6%>`` keeps its ``%``), so the chain stays self-consistent.
- MathQA options are split off the question into ``Example.options``; ``prompts.format_prompt``
  puts them back. MathQA's ``Rationale`` is not used as a chain of thought: it is a quoted,
  mojibake-laden free text without a final-answer sentence.
- Ids: a string id field (``item_id``, ``ID``, ``id``) is kept verbatim; an integer id becomes
  ``<dataset>_<n>``; without an id field the id is ``<dataset>_<split>_<index>`` with the
  0-based record index.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from reftlab.data.errors import RecordError
from reftlab.data.options import CHOICE_LETTERS, parse_options
from reftlab.data.records import CHOICE, NUMBER, Example

OPENAI_GSM8K = "openai_gsm8k"
REFT = "reft"
PAL = "pal"
MATHQA_ORIGINAL = "mathqa_original"
SVAMP_ORIGINAL = "svamp_original"

# The keys that identify each format, checked in this order by ``detect_format``.
FORMAT_KEYS: dict[str, frozenset[str]] = {
    REFT: frozenset({"item_id", "question", "answer_value"}),
    OPENAI_GSM8K: frozenset({"question", "answer"}),
    PAL: frozenset({"input", "code", "target"}),
    MATHQA_ORIGINAL: frozenset({"Problem", "options", "correct"}),
    SVAMP_ORIGINAL: frozenset({"Body", "Question", "Answer"}),
}

ID_FIELDS = ("item_id", "ID", "id")

_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_CALCULATOR_ANNOTATION = re.compile(r"<<.*?>>")
_GSM8K_FINAL_LINE = re.compile(r"\n?####\s*(\S[^\n]*?)\s*$")
# ReFT ends with "Therefore, the answer is <203>." (a few records drop "Therefore, "); the
# lead's convention "The answer is 203." matches too, so normalising twice changes nothing.
_FINAL_SENTENCE = re.compile(
    r"(?:therefore,?\s*)?the answer is:?\s*(?:<\s*([^<>\n]*?)\s*>|(\S+?))\s*\.?\s*$",
    re.IGNORECASE,
)
_PROGRAM = re.compile(r"^def solution\(\s*\)\s*:", re.MULTILINE)


def detect_format(record: Mapping[str, Any]) -> str:
    """Name the format of a raw record from its keys (see ``FORMAT_KEYS``)."""
    for fmt, keys in FORMAT_KEYS.items():
        if keys <= record.keys():
            return fmt
    known = "; ".join(f"{fmt}: {sorted(keys)}" for fmt, keys in FORMAT_KEYS.items())
    raise RecordError(
        f"cannot tell the format from the keys {sorted(record)}; known formats need {known}. "
        "Pass fmt=... explicitly if the file is in one of them."
    )


def to_example(
    record: Mapping[str, Any], fmt: str, dataset: str, split: str, index: int, answer_type: str
) -> Example:
    """Map one raw record in format ``fmt`` to an ``Example``; raise ``RecordError`` if malformed.

    ``dataset``, ``split`` and ``index`` (0-based) only build the id of records without one.
    """
    if not isinstance(record, Mapping):
        raise RecordError(f"expected a JSON object, got {type(record).__name__}")
    if fmt not in _MAPPERS:
        raise RecordError(f"unknown format {fmt!r}; known formats: {sorted(_MAPPERS)}")
    if answer_type not in (NUMBER, CHOICE):
        raise RecordError(f"unknown answer type {answer_type!r}; use {NUMBER!r} or {CHOICE!r}")
    missing = sorted(FORMAT_KEYS[fmt] - {"item_id"} - record.keys())
    if missing:
        raise RecordError(f"missing field(s) {missing} for format {fmt!r} (has {sorted(record)})")
    example_id = read_id(record, dataset, split, index)
    example = _MAPPERS[fmt](record, example_id, answer_type)
    check_answer(example, answer_type)
    return example


def read_id(record: Mapping[str, Any], dataset: str, split: str, index: int) -> str:
    """The record's own id if it has one, else the stable ``<dataset>_<split>_<index>``."""
    for key in ID_FIELDS:
        value = record.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{dataset}_{value}"
    return f"{dataset}_{split}_{index}"


def normalise_number(value: Any) -> str:
    """A numeric answer as text without thousands commas: ``"850,000"`` -> ``"850000"``.

    JSON numbers are written with ``repr`` (``51.0`` -> ``"51.0"``). Anything that is not a
    finite number raises ``RecordError``.
    """
    if isinstance(value, bool):
        raise RecordError(f"answer {value!r} is not a number")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise RecordError(f"answer {value!r} is not a finite number")
        return repr(value)
    if not isinstance(value, str):
        raise RecordError(f"answer {value!r} is not a number")
    text = value.strip().replace(",", "")
    if not _NUMBER.fullmatch(text):
        raise RecordError(f"answer {value!r} is not a number")
    return text


def check_answer(example: Example, answer_type: str) -> None:
    """Raise ``RecordError`` unless the answer fits the data set's answer type."""
    if answer_type == NUMBER:
        normalise_number(example.answer)
        return
    if example.answer not in CHOICE_LETTERS:
        raise RecordError(f"answer {example.answer!r} is not a choice letter a-e")
    if not example.options:
        raise RecordError("a multiple-choice record has no options")
    if example.answer not in example.options:
        raise RecordError(
            f"answer {example.answer!r} is not one of the options {sorted(example.options)}"
        )


def normalise_cot(cot: str) -> str:
    """End a natural chain of thought with ``The answer is <x>.``, rewriting ReFT's
    ``Therefore, the answer is <x>.``; raise ``RecordError`` if it has no final-answer sentence."""
    match = _FINAL_SENTENCE.search(cot)
    if match is None or not (match.group(1) or match.group(2)):
        raise RecordError(
            f"natural chain of thought does not end with a final-answer sentence "
            f"('The answer is <x>.'): ...{cot[-80:]!r}"
        )
    body = cot[: match.start()].rstrip()
    # Keep the source's separator (ReFT puts a blank line before the final sentence).
    separator = cot[len(body) : match.start()] or (" " if body else "")
    return f"{body}{separator}The answer is {match.group(1) or match.group(2)}."


def is_program(solution: str) -> bool:
    """True when a chain of thought is a ``def solution():`` program rather than text."""
    return _PROGRAM.search(solution) is not None


def _map_openai_gsm8k(record: Mapping[str, Any], example_id: str, answer_type: str) -> Example:
    solution = _text(record, "answer")
    match = _GSM8K_FINAL_LINE.search(solution)
    if match is None:
        raise RecordError(f"answer has no final '#### <answer>' line: ...{solution[-80:]!r}")
    answer = _answer(match.group(1), answer_type)
    steps = _CALCULATOR_ANNOTATION.sub("", solution[: match.start()]).strip()
    cot = f"{steps}\nThe answer is {answer}." if steps else f"The answer is {answer}."
    return Example(
        id=example_id, question=_text(record, "question").strip(), answer=answer, cot=cot
    )


def _map_reft(record: Mapping[str, Any], example_id: str, answer_type: str) -> Example:
    question = _text(record, "question").strip()
    options: dict[str, str] = {}
    if answer_type == CHOICE:
        question, options = _split_question_options(question)
    answer = _answer(record["answer_value"], answer_type)
    cot = program = None
    if record.get("answer_cot") is not None:
        solution = _text(record, "answer_cot")
        if is_program(solution):
            program = _strip_program(solution)
        else:
            cot = normalise_cot(solution.strip())
    return Example(example_id, question, answer, cot=cot, program=program, options=options)


def _map_pal(record: Mapping[str, Any], example_id: str, answer_type: str) -> Example:
    code = _text(record, "code")
    if not is_program(code):
        raise RecordError("field 'code' holds no 'def solution():' program")
    answer = _answer(record["target"], answer_type)
    return Example(example_id, _text(record, "input").strip(), answer, program=_strip_program(code))


def _map_mathqa_original(record: Mapping[str, Any], example_id: str, answer_type: str) -> Example:
    options = parse_options(record["options"])
    question = _text(record, "Problem").strip()
    return Example(example_id, question, _answer(record["correct"], answer_type), options=options)


def _map_svamp_original(record: Mapping[str, Any], example_id: str, answer_type: str) -> Example:
    question = _join_svamp(_text(record, "Body"), _text(record, "Question"))
    return Example(example_id, question, _answer(record["Answer"], answer_type))


_MAPPERS: dict[str, Callable[[Mapping[str, Any], str, str], Example]] = {
    OPENAI_GSM8K: _map_openai_gsm8k,
    REFT: _map_reft,
    PAL: _map_pal,
    MATHQA_ORIGINAL: _map_mathqa_original,
    SVAMP_ORIGINAL: _map_svamp_original,
}


def _text(record: Mapping[str, Any], key: str) -> str:
    value = record[key]
    if not isinstance(value, str):
        raise RecordError(f"field {key!r} should be text, got {type(value).__name__}: {value!r}")
    return value


def _answer(value: Any, answer_type: str) -> str:
    if answer_type == NUMBER:
        return normalise_number(value)
    if not isinstance(value, str):
        raise RecordError(f"answer {value!r} is not a choice letter a-e")
    return value.strip().lower()


def _split_question_options(text: str) -> tuple[str, dict[str, str]]:
    # ReFT's MathQA puts the options on the question's last line.
    question, newline, options_line = text.rpartition("\n")
    if not newline:
        raise RecordError("multiple-choice question has no options line ('\\na ) ... , b ) ...')")
    return question.strip(), parse_options(options_line)


def _strip_program(code: str) -> str:
    # PAL's programs start with a blank line and end with several; the body keeps its own.
    return code.strip("\n").rstrip()


def _join_svamp(body: str, question: str) -> str:
    # A third of SVAMP's bodies end mid-sentence ("If he had $ 4 at the start") and the
    # question completes them ("How much did the candy bar cost?").
    body, question = body.strip(), question.strip()
    if not body or body[-1] in ".?!":
        return f"{body} {question}".strip()
    return f"{body}, {question[:1].lower()}{question[1:]}"
