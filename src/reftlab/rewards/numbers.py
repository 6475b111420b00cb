"""Reading numbers as people and models write them, and deciding when two are the same answer.

Choices made here (the reward depends on them):

- Thousands separators are dropped (``850,000`` is 850000); ``203.0`` equals ``203``.
- Fractions and mixed numbers are exact values (``3/4``, ``15 / 8``, ``2 1/2``).
- A percentage is read as written (``45%`` is 45) and matches a gold written either way, as
  the data sets mean them: GSM8K and MathQA write "what percent" golds as 45, MathQA-numeric
  writes probabilities as 0.45; ``45%`` matches both.
- Scientific notation (``1.5e6``, ``2E-3``) is read; ``x 10^6`` is not.
- Numbers in words (``eighteen``, ``two hundred and five``) are read by ``parse_number_words``
  only where an answer is expected to start (``The answer is eighteen.``), never in running
  text, where ``one of them`` is no answer.
- Two numbers match when they differ by at most ``max(abs_tol, rel_tol * |gold|)``; defaults
  1e-9 absorb float noise only, so 1234568 never passes for 1234567.
- Written precision (``rounding=True``): a number written with at least two decimals and at
  least two significant digits stands for every value that rounds to it, i.e. it matches within
  half a unit of its last digit; with three or more significant digits also for the values it
  cuts off (a whole unit: ``0.4166`` and ``16.66`` for 5/12 and 50/3). The allowance is thus at
  most 5% of the number itself, which makes it relative for small golds: ``0.42`` matches
  0.4166666666666667 (MathQA-numeric) and ``0.016`` matches 0.01616, while ``0.02`` (one
  significant digit) does not match 0.01616 nor ``0.00`` 0.002. One decimal is not enough, so
  that a float's ``repr`` (``"9.0"``) stays exact: ``0.4`` does not match 0.41666, nor ``0.41``
  (two digits: rounding only) nor ``3.54`` 3.5. Either side's precision counts, so a rounded
  gold (ReFT's SVAMP files write ``3.333``) accepts any value that rounds to it.
- ReFT's own comparison is ``abs(pred - gold) <= 1e-2``: pass ``rel_tol=0, abs_tol=1e-2,
  rounding=False`` to reproduce it exactly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

DEFAULT_REL_TOL = 1e-9
DEFAULT_ABS_TOL = 1e-9

_NUMBER = re.compile(
    r"""
    (?<!\w)(?<!\d\.)                                  # not inside a word or another number
    (?P<sign>[-+\u2212]?)
    (?:
        (?P<whole>\d+)[ \t]+(?P<mnum>\d+)[ \t]*/[ \t]*(?P<mden>\d+)(?![\d.,]\d)   # 2 1/2
      | (?P<num>\d+)[ \t]*/[ \t]*(?P<den>\d+)(?![\d.,]\d)                         # 3/4, 15 / 8
      | (?=\.?\d)
        (?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)?
        (?:\.(?P<frac>\d+))?
        (?:[eE](?P<exp>[-+]?\d+)(?!\w))?
    )
    (?P<pct>[ \t]*%)?
    """,
    re.VERBOSE,
)


_UNIT_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS_WORDS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_WORD_VALUES = {
    **{word: value for value, word in enumerate(_UNIT_WORDS)},
    **{word: 10 * (index + 2) for index, word in enumerate(_TENS_WORDS)},
}
_SCALE_WORDS = {"thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_WORD = re.compile(r"[a-z]+", re.IGNORECASE)
_WORD_GAP = re.compile(r"[\s-]*")


@dataclass(frozen=True)
class WrittenNumber:
    """A number found in text: its value and how precisely it was written.

    ``text`` is a canonical spelling without thousands separators (``"850000"``, ``"-3/4"``,
    ``"45%"``). ``decimals`` counts the digits written after the point (``"0.420"`` -> 3,
    ``"9.0"`` -> 1; fractions and exponents -> 0). ``significant`` counts the digits from the
    first non-zero one on, for decimals only (``"0.016"`` -> 2, ``"0.00"`` -> 0, ``"12.50"``
    -> 4; integers, fractions and exponents -> 0).
    """

    value: float
    text: str
    decimals: int = 0
    significant: int = 0

    @property
    def is_percent(self) -> bool:
        return self.text.endswith("%")

    def per_hundred(self) -> WrittenNumber:
        """``45%`` as the fraction 0.45, with its written precision moved two places along."""
        decimals = self.decimals + 2 if self.decimals else 0
        return WrittenNumber(self.value / 100, f"{self.text[:-1]}/100", decimals, self.significant)


def _build(match: re.Match[str]) -> WrittenNumber | None:
    sign = -1.0 if match["sign"] in ("-", "\u2212") else 1.0
    prefix = "-" if sign < 0 else ""
    suffix = "%" if match["pct"] else ""
    if match["mden"] is not None or match["den"] is not None:
        whole = int(match["whole"] or 0)
        num = int(match["mnum"] or match["num"])
        den = int(match["mden"] or match["den"])
        if den == 0:
            return None
        body = f"{whole} {num}/{den}" if match["whole"] else f"{num}/{den}"
        return WrittenNumber(sign * (whole + num / den), f"{prefix}{body}{suffix}")
    digits = (match["int"] or "0").replace(",", "")
    frac, exp = match["frac"] or "", match["exp"]
    body = digits + (f".{frac}" if frac else "") + (f"e{exp}" if exp else "")
    try:
        value = float(body)
    except OverflowError:
        return None
    if not math.isfinite(value):
        return None
    decimals = 0 if exp or not frac else len(frac)
    significant = len((digits + frac).lstrip("0")) if decimals else 0
    return WrittenNumber(sign * value, f"{prefix}{body}{suffix}", decimals, significant)


def iter_numbers(text: str) -> Iterator[tuple[WrittenNumber, int, int]]:
    """Every number in ``text`` with its ``(start, end)`` character span, left to right.

    A sign counts only when glued to the digits and not preceded by a word character, so
    ``20-12`` gives 20 and 12, while ``-12`` and ``(-12)`` give -12.
    """
    for match in _NUMBER.finditer(text):
        if match.group().strip():
            number = _build(match)
            if number is not None:
                yield number, match.start(), match.end()


def find_numbers(text: str) -> list[WrittenNumber]:
    """Every number in ``text``, left to right (see ``iter_numbers``)."""
    return [number for number, _, _ in iter_numbers(text)]


def parse_number(text: str) -> WrittenNumber | None:
    """The first number in ``text`` (``"$1,200.50"`` -> 1200.5, ``"<203>."`` -> 203), or None."""
    return next((number for number, _, _ in iter_numbers(text)), None)


def parse_number_words(text: str) -> WrittenNumber | None:
    """The number spelled in words at the start of ``text`` (``eighteen dollars`` -> 18,
    ``two hundred and five`` -> 205, ``forty-two`` -> 42), or None."""
    total = current = 0
    read = False
    position = _WORD_GAP.match(text).end()
    while (word := _WORD.match(text, position)) is not None:
        name = word.group().lower()
        if name in _WORD_VALUES:
            current += _WORD_VALUES[name]
        elif name == "hundred" and read:
            current *= 100
        elif name in _SCALE_WORDS and read:
            total, current = total + current * _SCALE_WORDS[name], 0
        elif name != "and" or not read:
            break
        read = True
        position = _WORD_GAP.match(text, word.end()).end()
    if not read:
        return None
    value = total + current
    return WrittenNumber(float(value), str(value))


def rounding_slack(number: WrittenNumber) -> float:
    """What a number written with two or more decimals stands for beyond itself: half a unit of
    its last digit with two significant digits (rounded), a whole unit with three or more
    (rounded or cut off: ``0.4166`` for 5/12); so never more than 5% of the number."""
    if number.decimals < 2 or number.significant < 2:
        return 0.0
    unit = 10.0**-number.decimals
    return unit if number.significant >= 3 else 0.5 * unit


def numbers_match(
    pred: WrittenNumber,
    gold: WrittenNumber,
    *,
    rel_tol: float = DEFAULT_REL_TOL,
    abs_tol: float = DEFAULT_ABS_TOL,
    rounding: bool = True,
) -> bool:
    """Whether ``pred`` is the same answer as ``gold`` (see the module docstring for the rules)."""
    readings = [pred]
    if pred.is_percent and not gold.is_percent:
        readings.append(pred.per_hundred())
    return any(_same_value(p, gold, rel_tol, abs_tol, rounding) for p in readings)


def _same_value(
    pred: WrittenNumber, gold: WrittenNumber, rel_tol: float, abs_tol: float, rounding: bool
) -> bool:
    diff = abs(pred.value - gold.value)
    if diff <= max(abs_tol, rel_tol * abs(gold.value)):
        return True
    if not rounding:
        return False
    slack = max(rounding_slack(pred), rounding_slack(gold))
    # The relative epsilon keeps exact half-way cases (0.33335 vs 0.3333) on the inside.
    return diff <= slack * (1 + 1e-9)
