"""Turning the LaTeX and Markdown around a model's answer into plain text that numbers are read from.

Models trained on LaTeX-heavy data write ``$\\frac{1}{3}$``, ``$1{,}000$``, ``\\(\\boxed{C}\\)``,
``\\textbf{(C)}``, ``\\$18``, ``45\\%`` and ``**Final Answer:** 18``. ``to_plain`` rewrites them as
``1/3``, ``1,000``, ``C``, ``(C)``, `` 18``, ``45%`` and ``Final Answer: 18``: math delimiters and
dollar signs become spaces (a dollar sign is never part of an answer), Markdown emphasis goes.
``last_boxed`` finds the contents of the last ``\\boxed{...}`` (and ``\\fbox{...}``), nested braces
matched.

Every rewrite is a regular expression without backtracking or a single left-to-right scan, so
long junk completions cost linear time.
"""

from __future__ import annotations

import re

BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOXES_TRIED = 8
_BOXED_CHARS = 1000
# Commands whose argument is text to keep: \text{dollars} -> dollars.
_WRAPPERS = re.compile(
    r"\\(?:text(?:bf|it|rm|normal)?|math(?:rm|bf|it)|bm|emph|operatorname|boxed|fbox)\s*\{"
    r"([^{}]*)\}"
)
_FRACTION = re.compile(r"(-?)\\[dt]?frac\s*(?:\{([^{}]*)\}|(\d))\s*(?:\{([^{}]*)\}|(\d))")
# \sqrt{324} -> sqrt(324): kept readable, so that it is not taken for the number 324.
_SQRT = re.compile(r"\\sqrt\s*\{([^{}]*)\}")
_SYMBOLS = (
    ("{,}", ","),
    ("\\%", "%"),
    ("\\$", "$"),
    ("\\times", " * "),
    ("\\cdot", " * "),
    ("\\ast", " * "),
    ("\\div", " / "),
    ("\\approx", " = "),
    ("\u2248", " = "),
    ("\u00d7", " * "),
    ("\u00f7", " / "),
    ("\\left", ""),
    ("\\right", ""),
    ("\\{", ""),
    ("\\}", ""),
    ("^\\circ", "\u00b0"),
    ("^{\\circ}", "\u00b0"),
    ("\\degree", "\u00b0"),
)
# Math delimiters and spacing commands: \( \) \[ \] $ \, \! \; \quad.
_DELIMITERS = re.compile(r"\\[()\[\]]|\$|\\[,!;:]|\\q?quad\b")
# A space that LaTeX or typography puts inside a number: 1\,000 or 1 000 (thin spaces).
_DIGIT_GAP = re.compile(r"(?<=\d)(?:\\[,!;]|[\u2009\u202f\u00a0])(?=\d{3}\b)")
_EMPHASIS = re.compile(r"\*\*|__|`")


def _fraction(match: re.Match[str]) -> str:
    sign, num, den = match[1], match[2] or match[3], match[4] or match[5]
    # After a digit it is a mixed number (2\frac{1}{2}): keep a space so it reads 2 1/2.
    lead = " " if match.start() > 0 and match.string[match.start() - 1].isdigit() else ""
    return f"{lead}{sign}{num.strip()}/{den.strip()}"


def to_plain(text: str) -> str:
    """``text`` with LaTeX commands and Markdown emphasis rewritten as plain text."""
    text = _DIGIT_GAP.sub("", text)
    if "\\" in text or "{" in text:
        for _ in range(3):  # nested wrappers: \boxed{\text{18}}, \frac inside \boxed
            text = _FRACTION.sub(_fraction, _WRAPPERS.sub(r"\1", text))
        text = _SQRT.sub(r"sqrt(\1)", text)
        for latex, plain in _SYMBOLS:
            text = text.replace(latex, plain)
    text = _DELIMITERS.sub(" ", text)
    return _EMPHASIS.sub("", text).replace("{", "").replace("}", "")


def last_boxed(text: str) -> str | None:
    """The contents of the last closed ``\\boxed{...}`` in ``text``, nested braces matched."""
    # From the end, and only a few tries: junk made of unclosed boxes stays cheap.
    for match in list(BOXED.finditer(text))[-_BOXES_TRIED:][::-1]:
        depth, start = 1, match.end()
        for index in range(start, min(len(text), start + _BOXED_CHARS)):
            depth += {"{": 1, "}": -1}.get(text[index], 0)
            if depth == 0:
                return text[start:index]
    return None
