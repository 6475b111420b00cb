"""The reward of a run: one object that scores completions, built from the `cot` settings.

N-CoT completions are scored in-process with the configured reading (``fallback``: ``strict``,
``none`` or ``last_number``, see ``rewards.extract``); P-CoT completions are programs, run in a
batch by the sandbox pool (created on first use, closed with the scorer).
"""

from __future__ import annotations

from collections.abc import Sequence

from reftlab.data import Example
from reftlab.rewards.extract import LAST_NUMBER, STRICT, check_fallback
from reftlab.rewards.numbers import parse_number
from reftlab.rewards.programs import extract_program
from reftlab.rewards.score import Score, is_choice, score_natural, score_number, score_program
from reftlab.sandbox.result import ExecResult


class Scorer:
    """Scores completions against examples; one per run, used by training and evaluation."""

    def __init__(
        self,
        cot: str,
        partial_reward: float,
        markers: Sequence[str],
        fallback: str,
        program_timeout_s: float,
        workers: int | None = None,
    ):
        check_fallback(fallback)
        self.cot = cot
        self.partial_reward = partial_reward
        self.markers = tuple(markers)
        self.fallback = fallback
        self.program_timeout_s = program_timeout_s
        self.workers = workers
        self._pool = None

    def _sandbox(self):
        if self._pool is None:
            from reftlab.sandbox.pool import SandboxPool

            self._pool = SandboxPool(self.workers, timeout_s=self.program_timeout_s)
        return self._pool

    def score(self, completions: Sequence[str], examples: Sequence[Example]) -> list[Score]:
        return self.score_with_results(completions, examples)[0]

    def score_with_results(
        self, completions: Sequence[str], examples: Sequence[Example]
    ) -> tuple[list[Score], list[ExecResult] | None]:
        """Scores, and for programs the sandbox results (the reward-hacking check reads them)."""
        if len(completions) != len(examples):
            raise ValueError(f"{len(completions)} completions for {len(examples)} examples")
        if self.cot == "program":
            results = self._sandbox().run([extract_program(c) for c in completions])
            return [
                score_program(r, e, partial_reward=self.partial_reward)
                for r, e in zip(results, examples, strict=True)
            ], results
        return [
            score_natural(
                c,
                e,
                partial_reward=self.partial_reward,
                markers=self.markers,
                fallback=self.fallback,
            )
            for c, e in zip(completions, examples, strict=True)
        ], None

    def correct_by_reading(
        self, completions: Sequence[str], examples: Sequence[Example]
    ) -> dict[str, list[bool]]:
        """Whether each N-CoT completion is right when read ``strict`` (the paper's format only)
        and ``flexible`` (everything the reader knows, down to the last number), whatever the
        run's own reading: the gap between the two is what a model loses to format rather
        than to arithmetic. Empty for programs, whose answer is what they return."""
        if self.cot == "program":
            return {}
        readings = {"strict": STRICT, "flexible": LAST_NUMBER}
        return {
            name: [
                score_natural(c, e, markers=self.markers, fallback=fallback).correct
                for c, e in zip(completions, examples, strict=True)
            ]
            for name, fallback in readings.items()
        }

    def answer_key(self, answer: str) -> object:
        """Equivalence class of an extracted answer, for voting ("18" and "18.0" vote together)."""
        number = parse_number(answer)
        return round(number.value, 6) if number is not None else answer.strip().lower()

    def is_correct(self, answer: str, example: Example) -> bool:
        """Whether an already extracted answer is right (used for the voted answer)."""
        if is_choice(example):
            return answer.strip().lower() == example.answer.strip().lower()
        return score_number(parse_number(answer), example).correct

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
