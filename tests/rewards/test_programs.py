"""Cutting the program out of a P-CoT completion."""

from __future__ import annotations

import json
from pathlib import Path

from reftlab.rewards.programs import extract_program

PROGRAM = 'def solution():\n    """q"""\n    a = 2\n\n    b = 3\n    return a * b\n'


def test_blank_lines_inside_the_body_are_kept() -> None:
    assert extract_program(PROGRAM) == PROGRAM


def test_trailing_generation_is_cut_and_imports_kept() -> None:
    completion = "import math\n" + PROGRAM + "\n\nQuestion: Another problem?\ndef solution():"
    assert extract_program(completion) == "import math\n" + PROGRAM


def test_text_before_the_program_is_dropped_but_imports_stay() -> None:
    completion = "Here is the code:\nfrom fractions import Fraction\n" + PROGRAM
    assert extract_program(completion) == "from fractions import Fraction\n" + PROGRAM


def test_without_solution_the_completion_is_unchanged() -> None:
    assert extract_program("print(6)") == "print(6)"


def test_pal_gsm_hard_programs_survive_whole(shared_data: Path) -> None:
    """Every PAL program (1,304 with blank lines inside) is kept intact, junk after it cut."""
    lines = (shared_data / "pal" / "gsmhardv2.jsonl").read_text().splitlines()
    codes = [json.loads(line)["code"] for line in lines]
    with_blank_lines = sum("\n\n" in code.strip() for code in codes)
    for code in codes:
        body = code.strip() + "\n"
        assert extract_program(code) == body
        assert extract_program(code + "\nThe answer is 5.\n") == body
    assert with_blank_lines > 0
