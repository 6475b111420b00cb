"""Cutting the ``def solution():`` program out of a P-CoT completion."""

from __future__ import annotations

ENTRY = "def solution"


def extract_program(completion: str) -> str:
    """The imports before ``def solution():`` and the function itself, without trailing text.

    The function ends at the first non-blank line that is not indented (a model that keeps
    generating after the program writes unindented text). Blank lines inside the body are
    kept. ReFT's executor cuts a program at its first blank line, after stripping the
    completion: on PAL's 1,319 GSM-hard programs, stripped first as ReFT does, its engine still
    solves 1,315 (only 14 if they were not stripped, since each file starts with a blank line).
    Without ``def solution`` the completion is returned unchanged, and running it reports that
    no solution() is defined.
    """
    lines = completion.split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith(ENTRY)), None)
    if start is None:
        return completion
    imports = [line for line in lines[:start] if line.startswith(("import ", "from "))]
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end][0] in " \t"):
        end += 1
    return "\n".join([*imports, *lines[start:end]]).rstrip() + "\n"
