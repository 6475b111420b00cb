"""Turn an ``Example`` into the prompt a model sees and the completion it is trained on.

Training (SFT targets, RL rollouts) and evaluation both call these two functions, so a prompt
never differs between the phases of a run. The templates themselves come from the ``cot``
config group; the constants below are the defaults it mirrors.
"""

from __future__ import annotations

import string

from reftlab.data.errors import DataError
from reftlab.data.options import format_options
from reftlab.data.records import Example

NATURAL = "natural"
PROGRAM = "program"
COT_TYPES = (NATURAL, PROGRAM)

NATURAL_TEMPLATE = "Question: {question}\nAnswer:"
PROGRAM_TEMPLATE = "Question: {question}\nWrite a Python program that solves it.\n"
DEFAULT_TEMPLATES = {NATURAL: NATURAL_TEMPLATE, PROGRAM: PROGRAM_TEMPLATE}
PLACEHOLDERS = ("question", "options")
# The natural prompt ends with "Answer:", so its completion starts with a space; the program
# prompt ends with a newline, so the program starts right after it.
TARGET_PREFIX = {NATURAL: " ", PROGRAM: ""}


def format_prompt(template: str, example: Example) -> str:
    """Fill ``{question}`` and ``{options}`` (rendered ``a ) 38 , b ) 27.675``).

    A template without ``{options}`` still shows a multiple-choice example's options: they
    follow the question on its own line, as in ReFT's MathQA files. An unknown placeholder
    raises ``ValueError`` naming it.
    """
    fields = template_fields(template)
    unknown = sorted(fields - set(PLACEHOLDERS))
    if unknown:
        raise ValueError(
            f"prompt template has unknown placeholder(s) {unknown}; allowed: {list(PLACEHOLDERS)}"
        )
    options = format_options(example.options)
    question = example.question
    if options and "options" not in fields:
        question = f"{question}\n{options}"
    return template.format(question=question, options=options)


def format_target(example: Example, cot_type: str) -> str:
    """The completion to train on: ``" " + cot`` (natural) or the program (program)."""
    if cot_type not in COT_TYPES:
        raise ValueError(f"unknown cot type {cot_type!r}; use one of {list(COT_TYPES)}")
    solution = example.cot if cot_type == NATURAL else example.program
    if solution is None:
        field = "cot" if cot_type == NATURAL else "program"
        raise DataError(
            f"example {example.id!r} has no {field}, so it cannot be a {cot_type} training "
            f"target; use a training file with {cot_type} solutions or the other cot type"
        )
    return TARGET_PREFIX[cot_type] + solution


def template_fields(template: str) -> set[str]:
    """The placeholder names a ``str.format`` template uses; ``ValueError`` if it is malformed."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ValueError(f"malformed prompt template {template!r}: {exc}") from None
