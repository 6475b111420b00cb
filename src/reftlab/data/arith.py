"""``arith``: a synthetic, seeded word-problem set with natural and program solutions.

It is the embedded default data for a tiny model trained from scratch on a CPU, so the language
is small (four names, five objects, five verbs), numbers are mostly one or two digits, answers
are non-negative integers, and chains of thought are one short equation per step::

    Tom has 12 apples. He buys 5 more. He gives away 4. How many apples does Tom have now?
    cot:      12 + 5 = 17.\\n17 - 4 = 13.\\nThe answer is 13.
    program:  def solution():
                  apples = 12
                  bought = 5
                  total = apples + bought
                  given = 4
                  left = total - given
                  return left
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from reftlab.data.records import Example

NAMES = (("Tom", "He"), ("Ben", "He"), ("Ann", "She"), ("Mia", "She"))
OBJECTS = ("apples", "pens", "cards", "eggs", "books")
# Share of one-, two- and three-step problems: graded, so a small model learns the easy ones
# first and still sees longer chains.
STEP_WEIGHTS = (0.4, 0.4, 0.2)
MAX_START = 30
# Running values stay at or below this, so answers are at most three digits.
MAX_VALUE = 120
# Largest number added or taken away in one step.
MAX_OPERAND = 20
MAX_CONSECUTIVE_REPEATS = 1000


@dataclass(frozen=True)
class Limits:
    """The number ranges of a problem: start in ``[2, max_start]``, each added or taken-away
    amount in ``[1, max_operand]``, every running value in ``[1, max_value]``."""

    max_start: int
    max_operand: int
    max_value: int


@dataclass(frozen=True)
class Step:
    """One operation on the running count: ``result = value <op> operand``."""

    op: str
    operand: int
    sentence: str
    operand_name: str
    result_name: str


@dataclass(frozen=True)
class Problem:
    """A generated problem before it is rendered as text and program."""

    name: str
    pronoun: str
    obj: str
    start: int
    steps: tuple[Step, ...]
    # Sentences about someone else, to be ignored: (index of the step they precede, sentence).
    distractors: tuple[tuple[int, str], ...] = ()


def generate_arith(
    n: int,
    seed: int,
    max_steps: int = 3,
    step_weights: Sequence[float] = STEP_WEIGHTS,
    verbose_cot: bool = False,
    id_prefix: str = "arith",
    max_start: int | None = None,
    max_operand: int | None = None,
    max_value: int | None = None,
    distractor_rate: float = 0.0,
    direct_answer_rate: float = 0.0,
) -> list[Example]:
    """Generate ``n`` distinct problems, deterministically for a given ``seed``.

    ``max_steps`` (1-3) caps the number of operations; ``step_weights[k]`` is the relative share
    of ``k + 1``-step problems. ``verbose_cot`` restates each sentence before its equation
    (longer, more natural). Ids are ``<id_prefix>_<index>``. ``max_start``, ``max_operand`` and
    ``max_value`` bound the numbers (defaults: ``MAX_START``, ``MAX_OPERAND``, ``MAX_VALUE``);
    smaller numbers mean fewer arithmetic facts to learn. ``distractor_rate`` is the chance that
    a problem gets one sentence about another person (``Ben has 7 cards.``) that the solution
    must ignore: a procedural skill shared by all problems, unlike the arithmetic facts.
    ``direct_answer_rate`` is the share of solutions that state the answer with no working
    (``The answer is 13.``, a program that returns the number), as in corpora that mix worked
    and bare answers; the problems themselves do not depend on it.
    """
    if not 1 <= max_steps <= len(step_weights):
        raise ValueError(f"max_steps must be between 1 and {len(step_weights)}, got {max_steps}")
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    rates = {"distractor_rate": distractor_rate, "direct_answer_rate": direct_answer_rate}
    for knob, rate in rates.items():
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{knob} must be in [0, 1], got {rate}")
    limits = make_limits(max_start, max_operand, max_value)
    rng = random.Random(seed)
    style_rng = random.Random(seed + 1_000_003)
    weights = list(step_weights[:max_steps])
    seen: set[str] = set()
    examples: list[Example] = []
    misses = 0
    while len(examples) < n:
        n_steps = rng.choices(range(1, max_steps + 1), weights=weights)[0]
        problem = sample_problem(rng, n_steps, limits, distractor_rate)
        question = format_question(problem)
        if question in seen:
            # Tens of thousands of problems exist per step count; a long run of repeats means
            # the request exceeds the question space (e.g. a million one-step problems).
            misses += 1
            if misses > MAX_CONSECUTIVE_REPEATS:
                raise ValueError(
                    f"could only generate {len(examples)} distinct problems with "
                    f"max_steps={max_steps}, asked for {n}"
                )
            continue
        misses = 0
        seen.add(question)
        # Its own generator: the problems are the same whatever the rate.
        direct = style_rng.random() < direct_answer_rate
        example_id = f"{id_prefix}_{len(examples)}"
        examples.append(to_example(problem, example_id, question, direct, verbose_cot))
    return examples


def make_limits(max_start: int | None, max_operand: int | None, max_value: int | None) -> Limits:
    """The number bounds, with the generator's defaults for those left None."""
    limits = Limits(
        MAX_START if max_start is None else max_start,
        MAX_OPERAND if max_operand is None else max_operand,
        MAX_VALUE if max_value is None else max_value,
    )
    if not 2 <= limits.max_start <= limits.max_value or limits.max_operand < 1:
        raise ValueError(f"need 2 <= max_start <= max_value and max_operand >= 1, got {limits}")
    return limits


def to_example(
    problem: Problem, example_id: str, question: str, direct: bool, verbose_cot: bool
) -> Example:
    """The problem as an `Example`: worked solutions, or with `direct` the bare answer."""
    cot = format_direct_cot(problem) if direct else format_cot(problem, verbose_cot)
    program = format_direct_program(problem) if direct else format_program(problem)
    return Example(example_id, question, str(solve(problem)), cot, program)


def generate_arith_splits(
    n_train: int, n_test: int, seed: int, **kwargs
) -> tuple[list[Example], list[Example]]:
    """Train and test sets with no question in common (ids ``arith_train_i``, ``arith_test_i``).

    The test set is drawn first, so it stays the same when only ``n_train`` changes.
    ``kwargs`` go to ``generate_arith``.
    """
    examples = generate_arith(n_test + n_train, seed, **kwargs)
    test = [replace(e, id=f"arith_test_{i}") for i, e in enumerate(examples[:n_test])]
    train = [replace(e, id=f"arith_train_{i}") for i, e in enumerate(examples[n_test:])]
    return train, test


def sample_problem(
    rng: random.Random, n_steps: int, limits: Limits | None = None, distractor_rate: float = 0.0
) -> Problem:
    """Draw a start count and ``n_steps`` operations that keep the count in
    ``[1, limits.max_value]``, plus a distractor sentence with probability ``distractor_rate``."""
    limits = limits or Limits(MAX_START, MAX_OPERAND, MAX_VALUE)
    name, pronoun = rng.choice(NAMES)
    obj = rng.choice(OBJECTS)
    start = rng.randint(2, limits.max_start)
    value, steps, used = start, [], {obj}
    for _ in range(n_steps):
        step = sample_step(rng, value, pronoun, used, limits)
        used |= {step.operand_name, step.result_name}
        value = apply_step(value, step)
        steps.append(step)
    distractors: tuple[tuple[int, str], ...] = ()
    if distractor_rate and rng.random() < distractor_rate:
        # Someone referred to by the other pronoun, so "He"/"She" still names the subject.
        other = rng.choice([n for n, p in NAMES if p != pronoun])
        amount = rng.randint(2, limits.max_start)
        sentence = rng.choice(
            (f"{other} has {amount} {rng.choice(OBJECTS)}.", f"{other} buys {amount} {obj}.")
        )
        # Before the first step or after any step, never after the question.
        distractors = ((rng.randint(0, n_steps), sentence),)
    return Problem(name, pronoun, obj, start, tuple(steps), distractors)


def sample_step(
    rng: random.Random, value: int, pronoun: str, used: set[str], limits: Limits | None = None
) -> Step:
    """One operation allowed at ``value``; variable names avoid those in ``used``."""
    limits = limits or Limits(MAX_START, MAX_OPERAND, MAX_VALUE)
    top = limits.max_value
    choices = ["+"] if value < top else []
    if value >= 2:
        choices.append("-")
    if 2 * value <= top:
        choices.append("*")
    divisors = [d for d in range(2, 6) if value % d == 0]
    if divisors:
        choices.append("/")
    op = rng.choice(choices)
    if op == "+":
        b = rng.randint(1, min(limits.max_operand, top - value))
        return _step(op, b, f"{pronoun} buys {b} more.", "bought", "total", used)
    if op == "-":
        b = rng.randint(1, min(limits.max_operand, value - 1))
        verb, operand_name = rng.choice((("gives away", "given"), ("loses", "lost")))
        return _step(op, b, f"{pronoun} {verb} {b}.", operand_name, "left", used)
    if op == "*":
        b = rng.randint(2, min(5, top // value))
        return _step(op, b, f"{pronoun} then has {b} times as many.", "times", "total", used)
    b = rng.choice(divisors)
    sentence = f"{pronoun} shares them equally into {b} bags and keeps one."
    return _step(op, b, sentence, "bags", "kept", used)


def apply_step(value: int, step: Step) -> int:
    """The running count after ``step`` (division is exact by construction)."""
    if step.op == "+":
        return value + step.operand
    if step.op == "-":
        return value - step.operand
    if step.op == "*":
        return value * step.operand
    return value // step.operand


def solve(problem: Problem) -> int:
    """The answer: the count after every step."""
    value = problem.start
    for step in problem.steps:
        value = apply_step(value, step)
    return value


def format_question(problem: Problem) -> str:
    """``Tom has 12 apples. He buys 5 more. How many apples does Tom have now?``"""
    sentences = [f"{problem.name} has {problem.start} {problem.obj}."]
    extra = dict(problem.distractors)
    for index, step in enumerate(problem.steps):
        sentences += [extra[index]] if index in extra else []
        sentences.append(step.sentence)
    n_steps = len(problem.steps)
    sentences += [extra[n_steps]] if n_steps in extra else []
    sentences.append(f"How many {problem.obj} does {problem.name} have now?")
    return " ".join(sentences)


def format_cot(problem: Problem, verbose: bool = False) -> str:
    """One line per step, ``12 + 5 = 17.``, then ``The answer is 17.``; ``verbose`` restates the
    question's sentences before each equation."""
    lines = [f"{problem.name} has {problem.start} {problem.obj}."] if verbose else []
    value = problem.start
    for step in problem.steps:
        result = apply_step(value, step)
        equation = f"{value} {step.op} {step.operand} = {result}."
        lines.append(f"{step.sentence} {equation}" if verbose else equation)
        value = result
    lines.append(f"The answer is {value}.")
    return "\n".join(lines)


def format_direct_cot(problem: Problem) -> str:
    """The answer with no working: ``The answer is 13.``"""
    return f"The answer is {solve(problem)}."


def format_direct_program(problem: Problem) -> str:
    """A program that returns the answer as a literal, with no working."""
    return f"def solution():\n    return {solve(problem)}"


def format_program(problem: Problem) -> str:
    """A ``def solution():`` program with one named variable per quantity."""
    lines = ["def solution():", f"    {problem.obj} = {problem.start}"]
    current = problem.obj
    for step in problem.steps:
        # Integer division: the division is exact, and the answer stays an int.
        op = "//" if step.op == "/" else step.op
        lines.append(f"    {step.operand_name} = {step.operand}")
        lines.append(f"    {step.result_name} = {current} {op} {step.operand_name}")
        current = step.result_name
    lines.append(f"    return {current}")
    return "\n".join(lines)


def _step(
    op: str, operand: int, sentence: str, operand_name: str, result_name: str, used: set[str]
) -> Step:
    return Step(op, operand, sentence, _fresh(operand_name, used), _fresh(result_name, used))


def _fresh(name: str, used: set[str]) -> str:
    # A repeated operation gets total2, total3, ... so no variable is silently reassigned.
    if name not in used:
        return name
    suffix = 2
    while f"{name}{suffix}" in used:
        suffix += 1
    return f"{name}{suffix}"
