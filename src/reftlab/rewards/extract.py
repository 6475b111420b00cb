"""Finding the final answer in a natural-language chain of thought (N-CoT).

Two readings, chosen with ``fallback`` (``cot.answer_fallback``):

- ``"strict"``: the paper's format only. The answer is what follows the last final-answer marker
  (``the answer is`` and GSM8K's ``####`` by default, any case) on its line, and it must come
  first there: ``Therefore, the answer is: 18``, ``The answer is <203>.``, ``#### 72``,
  ``The answer is $1,200 dollars``. ``The answer is: 9 * 2 = 18`` reads 9.
- ``"none"`` and ``"last_number"``: flexible. Candidate answers in one order of precedence, the
  first that reads an answer winning:

  1. ``marker``: the text after the last marker, on its line (or the next non-empty line); a
     marker that starts with ``the answer`` also counts qualified (``the final answer is``,
     ``the correct answer is``), so that a corrected statement wins over the first one;
  2. ``boxed``: the last ``\\boxed{...}``;
  3. ``phrase``: the last known phrasing: ``Answer:``, ``Final answer:``, ``the correct answer
     is``, ``the correct option is``, ``(C) is the right choice``; ``the result|total|solution
     is`` only in the last line; a last line that is a lone choice letter (``(C)``);
  4. ``last_number`` (only with ``fallback="last_number"``): the last number written.

  LaTeX and Markdown around the answer are read through (``rewards.latex``), a completion that
  goes on to a new ``Question:`` is cut there, and inside a candidate the answer is read as a
  person would (``read_number``): the result of an expression (``9 * 2 = 18`` reads 18) and the
  correction of a negated or retracted value (``isn't 20, it's 18``, ``20. Wait, no, 18``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from reftlab.rewards.latex import last_boxed, to_plain
from reftlab.rewards.numbers import WrittenNumber, iter_numbers, parse_number_words

DEFAULT_MARKERS = ("the answer is", "####")
LAST_NUMBER = "last_number"
NO_FALLBACK = "none"
STRICT = "strict"
FALLBACKS = (LAST_NUMBER, NO_FALLBACK, STRICT)
# Where a flexible reading found its answer (then LAST_NUMBER), in the order of precedence.
MARKER, BOXED, PHRASE = "marker", "boxed", "phrase"

T = TypeVar("T")
# An answer is read from the start of a candidate; the rest of a long line cannot hold it.
_SPAN_CHARS = 300
# Words that may qualify a marker starting with "the answer" (see ``with_qualified``).
_QUALIFIERS = ("final", "correct", "right", "actual", "real", "true")
# Decorations around an answer in the paper's format that are not part of it: <203>, **18**.
_DECORATION = re.compile(r"\\boxed\{|[<>{}*`]")
_STRICT_LEAD = re.compile(r"[\s:=<*`$(]*")
# The model starts a new problem of its own: what follows is not an answer to this one.
_CONTINUATION = re.compile(
    r"\n[ \t#*]*(?:question|problem|human|user|instruction|q)[ \t]*\d*[ \t]*[:.]", re.IGNORECASE
)
_ANSWER_PHRASE = re.compile(
    r"\b(?:(?:final|correct|right|my)\s+)?answer(?:\s+(?:is|would\s+be|will\s+be|should\s+be|equals)\b|\s*[:=])"
    r"|\b(?:correct|right|final)\s+(?:option|choice)(?:\s+(?:is|would\s+be)\b|\s*[:=])"
    r"|^[ \t#>]*(?:the\s+)?(?:final\s+)?answer[ \t]*$"
    r"|\bi\s+(?:would\s+|will\s+)?(?:choose|pick|select|go\s+with)\b",
    re.IGNORECASE | re.MULTILINE,
)
# "(c) is correct", "option C is right", "18 is the correct answer".
_CHOSEN_FIRST = re.compile(
    r"(?<!\S)(?:option\s+|choice\s+)?(\(?[a-e]\)?)\s+is\s+(?:the\s+)?(?:correct|right)\b"
    r"|(?<!\S)(\S{1,20})\s+is\s+the\s+(?:correct|right|final)\s+(?:answer|option|choice)",
    re.IGNORECASE,
)
_RESULT_PHRASE = re.compile(
    r"\b(?:result|total|solution|sum|amount)\s+(?:is|comes\s+to|would\s+be|will\s+be|=)",
    re.IGNORECASE,
)
_LONE_LETTER = re.compile(
    r"[\s.:(\[]*(?:option|choice|answer)?[\s.:(\[]*[a-e][\s.:)\]]*", re.IGNORECASE
)
# "isn't 20, it's 18", "not (A) but (C)": the negated value and the words up to the next one.
_NEGATED = re.compile(
    r"\s*(?:n['\u2019]t|not)\s+(?:equal\s+to\s+|option\s+|choice\s+)?", re.IGNORECASE
)
_NEGATED_LETTER = re.compile(r"\(?[a-e]\)?(?![\w.])|\(?[a-e]\)?\.(?!\d)", re.IGNORECASE)
_CORRECTION = re.compile(
    r"\b(?:wait|no|actually|correction|sorry|oops|i\s+mean|rather|make\s+that)\b[\s,:;.!\-\u2013\u2014]*",
    re.IGNORECASE,
)
# What may follow a correction cue for it to count: a number soon after, or (choices) a letter.
_CORRECTED_NUMBER = re.compile(r"[^\d\n]{0,40}?[-\u2212$]?\d")
_CORRECTED_LETTER = re.compile(r"[^\n]{0,30}?\(?\b[a-e]\b\)?(?=[\s.,;)]|$)", re.IGNORECASE)
_LEAD_IN = re.compile(
    r"(?:[\s,;:]|\b(?:but|it['\u2019]?s|it\s+is|that['\u2019]?s|should\s+be|the\s+answer\s+is|is|"
    r"instead|rather|the\s+(?:correct\s+)?(?:option|choice)\s+is)\b)*",
    re.IGNORECASE,
)
# Between two numbers of one expression: operators, brackets and at most one unit word
# (``9 eggs * $2 = $18``).
_OPERATOR = re.compile(
    r"[\s()\[\]]*(?:[a-z]+[\s()\[\]]*)?(?:[-+*/^=\u2212]|\bx\b)[\s()\[\]\-+*/^=x\u2212]*",
    re.IGNORECASE,
)


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


def _line_after(text: str, end: int, strip: Callable[[str], str] = str.strip) -> str:
    """The text after ``end`` to the end of its line, else the next non-empty line."""
    lines = (strip(line).strip(" \t:=") for line in text[end : end + 4 * _SPAN_CHARS].split("\n"))
    return next((line for line in lines if line), "")[:_SPAN_CHARS]


def answer_span(completion: str, markers: Sequence[str] = DEFAULT_MARKERS) -> str | None:
    """The paper-format answer: the text after the last marker, decorations removed; None
    without a marker. When the marker ends its line (``The answer is:\\n18``), the next
    non-empty line is used."""
    found = find_marker(completion, markers)
    if found is None:
        return None
    return _line_after(completion, found[1], lambda line: _DECORATION.sub(" ", line).strip())


def with_qualified(markers: Sequence[str]) -> tuple[str, ...]:
    """The markers and their qualified forms: ``the answer is`` also as ``the final answer is``,
    ``the correct answer is``..., so that ``The answer is 20. Hmm, no: the correct answer is
    18.`` reads the later statement."""
    qualified = [
        f"the {word} {marker[4:]}"
        for marker in markers
        if marker.lower().startswith("the answer")
        for word in _QUALIFIERS
    ]
    return (*markers, *qualified)


def cut_continuation(completion: str) -> str:
    """The completion up to a new problem the model starts on its own (``\\nQuestion: ...``)."""
    for match in _CONTINUATION.finditer(completion):
        if completion[: match.start()].strip():
            return completion[: match.start()]
    return completion


def _last_phrase(plain: str) -> str | None:
    """The answer span of the last known phrasing (see the module docstring), or None."""
    found = [m for m in _ANSWER_PHRASE.finditer(plain)]
    chosen = [m for m in _CHOSEN_FIRST.finditer(plain)]
    if chosen and (not found or chosen[-1].start() > found[-1].start()):
        return chosen[-1].group(1) or chosen[-1].group(2)
    if found:
        return _line_after(plain, found[-1].end())
    lines = [line for line in plain.split("\n") if line.strip()]
    last = lines[-1] if lines else ""
    result = list(_RESULT_PHRASE.finditer(last))
    if result:
        return last[result[-1].end() :][:_SPAN_CHARS]
    return last if _LONE_LETTER.fullmatch(last) else None


def candidate_spans(
    completion: str, markers: Sequence[str], fallback: str
) -> Iterator[tuple[str, str]]:
    """``(source, text)`` of each flexible candidate, in the order of precedence."""
    text = cut_continuation(completion)
    plain = to_plain(text)
    found = find_marker(plain, with_qualified(markers))
    if found is not None:
        yield MARKER, _line_after(plain, found[1])
    boxed = last_boxed(text)
    if boxed is not None:
        yield BOXED, to_plain(boxed)
    phrase = _last_phrase(plain)
    if phrase is not None:
        yield PHRASE, phrase
    if fallback == LAST_NUMBER:
        last = None
        for last in iter_numbers(plain):  # noqa: B007 - only the last one is kept
            pass
        if last is not None:
            yield LAST_NUMBER, plain[last[1] : last[2]]


def read_first(
    completion: str, read: Callable[[str], T | None], markers: Sequence[str], fallback: str
) -> tuple[T, str] | None:
    """The first flexible candidate that ``read`` turns into an answer, with its source."""
    for source, span in candidate_spans(completion, markers, fallback):
        answer = read(span)
        if answer is not None:
            return answer, source
    return None


def corrected(span: str, letters: bool = False) -> str:
    """The part of ``span`` that holds the answer once a negated or retracted value is dropped:
    ``n't 20, it's 18`` and ``20. Wait, no, it's 18`` give ``18``; with ``letters`` (choices),
    ``not (a) but (c)`` gives ``(c)``."""
    negated = _NEGATED.match(span)
    if negated:
        first = next(iter_numbers(span[negated.end() :]), None)
        letter = _NEGATED_LETTER.match(span, negated.end())
        if first is not None and not span[negated.end() : negated.end() + first[1]].strip(" $"):
            span = span[negated.end() + first[2] :]
        elif letters and letter is not None:
            span = span[letter.end() :]
    cues = [
        m
        for m in _CORRECTION.finditer(span)
        if _CORRECTED_NUMBER.match(span, m.end())
        or (letters and _CORRECTED_LETTER.match(span, m.end()))
    ]
    if cues:
        span = span[cues[-1].end() :]
    return span[_LEAD_IN.match(span).end() :]


def read_number(span: str) -> WrittenNumber | None:
    """The number a flexible candidate gives: after corrections, a number in words that opens it
    (``eighteen``), else the first number, or the result of an expression that starts with it
    (``9 * 2 = 18`` -> 18; ``18 = 9 * 2`` -> 18)."""
    span = corrected(span)
    in_words = parse_number_words(span)
    if in_words is not None:
        return in_words
    run: list[tuple[WrittenNumber, bool]] = []  # the expression's numbers, and "after an ="
    previous_end = None
    for number, start, end in iter_numbers(span):
        if previous_end is not None:
            gap = _OPERATOR.fullmatch(span, previous_end, start)
            if gap is None:
                break
            run.append((number, "=" in gap.group()))
        else:
            run.append((number, False))
        previous_end = end
    if not run:
        return None
    equals = [i for i, (_, after_equals) in enumerate(run) if after_equals]
    if equals and equals[-1] == len(run) - 1:
        return run[-1][0]
    return run[0][0]


def read_strict_number(span: str) -> WrittenNumber | None:
    """The number that opens a paper-format answer span (``<203>.``, ``$1,200``), or None."""
    start = _STRICT_LEAD.match(span).end()
    first = next(iter_numbers(span[start:]), None)
    return first[0] if first is not None and first[1] == 0 else None


def extract_number(
    completion: str,
    *,
    markers: Sequence[str] = DEFAULT_MARKERS,
    fallback: str = LAST_NUMBER,
) -> WrittenNumber | None:
    """The final numeric answer of an N-CoT completion, or None (see the module docstring)."""
    check_fallback(fallback)
    if fallback == STRICT:
        span = answer_span(completion, markers)
        return read_strict_number(span) if span is not None else None
    found = read_first(completion, read_number, markers, fallback)
    return found[0] if found is not None else None
