"""The one normalised record every data set is turned into."""

from __future__ import annotations

from dataclasses import dataclass, field

# Answer types a data set can declare: a number compared with a tolerance, or a choice letter.
NUMBER = "number"
CHOICE = "choice"
ANSWER_TYPES = (NUMBER, CHOICE)


@dataclass(frozen=True)
class Example:
    """One math word problem, whatever file or hub it came from.

    ``answer`` is a string: a number as written by the source with thousands separators removed
    (``"850000"``, ``"-3"``, ``"0.4166666666666667"``) for numeric sets, or a lower-case choice
    letter (``"a"``..``"e"``) for multiple choice. ``options`` maps letters to option texts for
    multiple-choice sets and is empty otherwise. ``cot`` is a natural-language chain of thought
    that ends with the final-answer sentence the prompts teach; ``program`` is a
    ``def solution():`` program returning the answer. Either may be ``None`` (test splits).
    """

    id: str
    question: str
    answer: str
    cot: str | None = None
    program: str | None = None
    options: dict[str, str] = field(default_factory=dict)
