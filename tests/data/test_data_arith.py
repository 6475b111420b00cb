"""The synthetic arith set: deterministic, disjoint splits, and every solution is right."""

from __future__ import annotations

import collections
import re

import pytest

from reftlab.data import arith, generate_arith, generate_arith_splits
from reftlab.data.arith import Problem, Step, format_cot, format_program, format_question

EQUATION = re.compile(r"^(\d+) ([-+*/]) (\d+) = (\d+)\.$")


def run_solution(program: str):
    namespace: dict = {}
    exec(program, namespace)
    return namespace["solution"]()


def check_cot(cot: str) -> int:
    """Re-do every equation of a chain of thought; return the stated final answer."""
    *equations, final = cot.split("\n")
    previous = None
    for line in equations:
        a, op, b, c = EQUATION.match(line).groups()
        a, b, c = int(a), int(b), int(c)
        assert previous is None or a == previous, f"step does not continue: {cot!r}"
        expected = {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op]
        assert c == expected and (op != "/" or a % b == 0), line
        previous = c
    (answer,) = re.fullmatch(r"The answer is (\d+)\.", final).groups()
    assert int(answer) == previous
    return int(answer)


def test_golden_problem_renders_question_cot_and_program():
    steps = (
        Step("+", 5, "He buys 5 more.", "bought", "total"),
        Step("-", 4, "He gives away 4.", "given", "left"),
    )
    problem = Problem("Tom", "He", "apples", 12, steps)
    assert format_question(problem) == (
        "Tom has 12 apples. He buys 5 more. He gives away 4. How many apples does Tom have now?"
    )
    # 12 + 5 = 17, 17 - 4 = 13
    assert format_cot(problem) == "12 + 5 = 17.\n17 - 4 = 13.\nThe answer is 13."
    assert format_cot(problem, verbose=True) == (
        "Tom has 12 apples.\nHe buys 5 more. 12 + 5 = 17.\nHe gives away 4. 17 - 4 = 13.\n"
        "The answer is 13."
    )
    assert format_program(problem) == (
        "def solution():\n    apples = 12\n    bought = 5\n    total = apples + bought\n"
        "    given = 4\n    left = total - given\n    return left"
    )
    assert run_solution(format_program(problem)) == 12 + 5 - 4


def test_same_seed_same_data_other_seed_other_data():
    assert generate_arith(200, seed=7) == generate_arith(200, seed=7)
    assert generate_arith(200, seed=7) != generate_arith(200, seed=8)
    # A longer run extends a shorter one with the same seed.
    assert generate_arith(300, seed=7)[:200] == generate_arith(200, seed=7)


def test_cot_and_program_both_reach_the_answer():
    for example in generate_arith(500, seed=0, verbose_cot=False):
        answer = int(example.answer)
        assert answer >= 0
        assert check_cot(example.cot) == answer
        assert run_solution(example.program) == answer
        assert isinstance(run_solution(example.program), int)


def test_verbose_cot_also_ends_with_the_answer():
    for example in generate_arith(100, seed=3, verbose_cot=True):
        assert example.cot.endswith(f"\nThe answer is {example.answer}.")
        assert example.cot.startswith(example.question.split(".")[0] + ".")


def test_questions_are_distinct_and_ids_stable():
    examples = generate_arith(1000, seed=1)
    assert len({e.question for e in examples}) == 1000
    assert [e.id for e in examples[:3]] == ["arith_0", "arith_1", "arith_2"]


def test_splits_are_disjoint_and_test_set_ignores_train_size():
    train, test = generate_arith_splits(800, 200, seed=5)
    assert (len(train), len(test)) == (800, 200)
    assert not {e.question for e in train} & {e.question for e in test}
    assert train[0].id == "arith_train_0" and test[0].id == "arith_test_0"
    _, same_test = generate_arith_splits(100, 200, seed=5)
    assert same_test == test


def test_step_mix_is_graded_and_cots_are_short():
    examples = generate_arith(2000, seed=2)
    steps = collections.Counter(e.cot.count("\n") for e in examples)
    # Default weights 0.4 / 0.4 / 0.2 over 2000 problems: 800 / 800 / 400, +-100 is > 5 sigma.
    assert abs(steps[1] - 800) < 100 and abs(steps[2] - 800) < 100 and abs(steps[3] - 400) < 100
    two_step = [len(e.cot) for e in examples if e.cot.count("\n") == 2]
    assert max(two_step) <= 50  # characters, e.g. "99 + 20 = 119.\n119 - 20 = 99.\n..."
    ops = collections.Counter(m for e in examples for m in re.findall(r" ([-+*/]) ", e.cot))
    assert set(ops) == {"+", "-", "*", "/"}
    assert all(int(e.answer) <= 120 for e in examples)


def test_max_steps_knob():
    assert {e.cot.count("\n") for e in generate_arith(200, seed=0, max_steps=1)} == {1}
    assert {e.cot.count("\n") for e in generate_arith(200, seed=0, max_steps=2)} == {1, 2}
    with pytest.raises(ValueError, match="max_steps"):
        generate_arith(10, seed=0, max_steps=4)


def test_impossible_request_fails_instead_of_looping(monkeypatch):
    # Shrink the question space to one name, one object and a start of 2: the one-step problems
    # are then 20 buys + 1 gives away + 1 loses + 4 times + 1 share = 27.
    monkeypatch.setattr(arith, "NAMES", (("Tom", "He"),))
    monkeypatch.setattr(arith, "OBJECTS", ("apples",))
    monkeypatch.setattr(arith, "MAX_START", 2)
    assert len(generate_arith(27, seed=0, max_steps=1)) == 27
    with pytest.raises(ValueError, match="could only generate 27 distinct problems"):
        generate_arith(28, seed=0, max_steps=1)


def test_number_limits_bound_every_quantity():
    examples = generate_arith(500, seed=4, max_start=10, max_operand=5, max_value=30)
    for example in examples:
        start = int(example.question.split(" has ")[1].split(" ")[0])
        assert 2 <= start <= 10
        for a, op, b, c in (EQUATION.match(line).groups() for line in example.cot.split("\n")[:-1]):
            assert 1 <= int(c) <= 30 and int(a) <= 30
            if op in "+-":
                assert 1 <= int(b) <= 5
    with pytest.raises(ValueError, match="max_start"):
        generate_arith(10, seed=0, max_start=40, max_value=30)


def test_distractors_are_ignored_by_the_solution():
    plain = generate_arith(300, seed=6, distractor_rate=0.0)
    mixed = generate_arith(300, seed=6, distractor_rate=1.0)
    subject = re.compile(r"^(\w+) has \d+ (\w+)\.")
    for example in mixed:
        name, _ = subject.match(example.question).groups()
        others = [n for n, _ in arith.NAMES if n != name and f"{n} " in example.question]
        # Exactly one sentence about someone else, who never appears in the solution.
        assert len(others) == 1
        pronouns = {p for n, p in arith.NAMES}
        subject_pronoun = dict(arith.NAMES)[name]
        assert dict(arith.NAMES)[others[0]] == (pronouns - {subject_pronoun}).pop()
        assert check_cot(example.cot) == int(example.answer)
        assert run_solution(example.program) == int(example.answer)
    assert all(sum(f"{n} " in e.question for n, _ in arith.NAMES) == 1 for e in plain)
    with pytest.raises(ValueError, match="distractor_rate"):
        generate_arith(1, seed=0, distractor_rate=1.5)


def test_direct_answers_state_the_answer_without_working():
    worked = generate_arith(400, seed=8)
    mixed = generate_arith(400, seed=8, direct_answer_rate=0.5)
    # Same problems and answers; only the solutions' style changes.
    assert [(e.question, e.answer) for e in mixed] == [(e.question, e.answer) for e in worked]
    direct = [e for e in mixed if "=" not in e.cot]
    assert 150 < len(direct) < 250
    for example in direct:
        assert example.cot == f"The answer is {example.answer}."
        assert example.program == f"def solution():\n    return {example.answer}"
        assert run_solution(example.program) == int(example.answer)
    for example in mixed:
        if example not in direct:
            assert check_cot(example.cot) == int(example.answer)
    # Rate 0 draws nothing, so earlier seeds keep their problems and solutions.
    assert generate_arith(50, seed=8, direct_answer_rate=0.0) == worked[:50]
    with pytest.raises(ValueError, match="direct_answer_rate"):
        generate_arith(1, seed=0, direct_answer_rate=-0.1)


def test_golden_distractor_renders_in_place():
    steps = (Step("+", 5, "He buys 5 more.", "bought", "total"),)
    problem = Problem("Tom", "He", "apples", 12, steps, ((1, "Ann has 3 pens."),))
    assert format_question(problem) == (
        "Tom has 12 apples. He buys 5 more. Ann has 3 pens. How many apples does Tom have now?"
    )
    # 12 + 5 = 17; the 3 pens are someone else's
    assert format_cot(problem) == "12 + 5 = 17.\nThe answer is 17."
