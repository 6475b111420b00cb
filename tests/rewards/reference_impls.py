"""A batch scorer over the pure reward functions, for tests.

``score_completions`` scores a batch with ``reftlab.rewards.score`` alone (no config, no
sandbox pool of its own): what a run does through ``reftlab.rewards.scorer.Scorer``, without
the run's config.
"""

from __future__ import annotations

from collections.abc import Sequence

from reftlab.data.records import Example
from reftlab.rewards.choices import DEFAULT_OPTION_REL_TOL
from reftlab.rewards.extract import DEFAULT_MARKERS, LAST_NUMBER
from reftlab.rewards.numbers import DEFAULT_ABS_TOL, DEFAULT_REL_TOL
from reftlab.rewards.programs import extract_program
from reftlab.rewards.score import (
    DEFAULT_PARTIAL_REWARD,
    NATURAL,
    PROGRAM,
    Score,
    score_natural,
    score_program,
)
from reftlab.sandbox.result import RunPrograms

COT_KINDS = (NATURAL, PROGRAM)


def score_completions(
    completions: Sequence[str],
    examples: Sequence[Example],
    *,
    cot: str,
    run_programs: RunPrograms | None = None,
    partial_reward: float = DEFAULT_PARTIAL_REWARD,
    markers: Sequence[str] = DEFAULT_MARKERS,
    fallback: str = LAST_NUMBER,
    rel_tol: float = DEFAULT_REL_TOL,
    abs_tol: float = DEFAULT_ABS_TOL,
    rounding: bool = True,
    option_rel_tol: float = DEFAULT_OPTION_REL_TOL,
) -> list[Score]:
    """Score a batch: ``completions[i]`` answers ``examples[i]``.

    ``cot="natural"`` extracts answers from text. ``cot="program"`` cuts each completion down
    to its ``def solution():`` program (``extract_program``) and runs them all in one call to
    ``run_programs`` (e.g. a ``SandboxPool``). The completion must hold the whole program: when
    the prompt already wrote ``def solution():``, prepend it before scoring.
    """
    if len(completions) != len(examples):
        raise ValueError(f"{len(completions)} completions for {len(examples)} examples")
    tolerances = {"rel_tol": rel_tol, "abs_tol": abs_tol, "rounding": rounding}
    if cot == NATURAL:
        return [
            score_natural(
                completion,
                example,
                partial_reward=partial_reward,
                markers=markers,
                fallback=fallback,
                option_rel_tol=option_rel_tol,
                **tolerances,
            )
            for completion, example in zip(completions, examples, strict=True)
        ]
    if cot == PROGRAM:
        if run_programs is None:
            raise ValueError("cot='program' needs run_programs (e.g. a SandboxPool)")
        results = run_programs([extract_program(completion) for completion in completions])
        return [
            score_program(
                result,
                example,
                partial_reward=partial_reward,
                option_rel_tol=option_rel_tol,
                **tolerances,
            )
            for result, example in zip(results, examples, strict=True)
        ]
    raise ValueError(f"unknown cot {cot!r}; known: {', '.join(COT_KINDS)}")
