"""A run's effective schedule: the method's numbers with the budget's caps applied."""

from __future__ import annotations

import math
from dataclasses import dataclass

from reftlab.config import MethodConfig, RunConfig


def capped(value: int, cap: int | None) -> int:
    return value if cap is None else min(value, cap)


def rl_steps_for(n_questions: int, batch_size: int, epochs: int, cap: int | None) -> int:
    """Steps of an RL loop: `epochs` passes over the questions in batches, capped."""
    return capped(math.ceil(n_questions / batch_size) * epochs, cap)


@dataclass(frozen=True)
class Schedule:
    """The effective numbers of a run: the method's schedule with the budget's caps applied."""

    max_train_examples: int | None
    max_test_examples: int | None
    warmup_epochs: int
    max_rl_steps: int | None
    max_new_tokens: int
    eval_samples: int
    # None where the method has no such knob.
    rl_epochs: int | None = None
    samples_per_question: int | None = None
    rejection_samples: int | None = None
    continue_epochs: int | None = None


def make_schedule(run: RunConfig) -> Schedule:
    m, b = run.method, run.budget
    return Schedule(
        max_train_examples=b.max_train_examples,
        max_test_examples=b.max_test_examples,
        warmup_epochs=capped(m.warmup_epochs, b.max_epochs),
        max_rl_steps=b.max_rl_steps,
        max_new_tokens=capped(run.model.max_new_tokens, b.max_new_tokens),
        eval_samples=capped(run.eval.samples, b.max_samples_per_question),
        rl_epochs=capped_knob(m, "rl_epochs", b.max_epochs),
        samples_per_question=capped_knob(m, "samples_per_question", b.max_samples_per_question),
        rejection_samples=capped_knob(m, "rejection_samples", b.max_samples_per_question),
        continue_epochs=capped_knob(m, "continue_epochs", b.max_epochs),
    )


def capped_knob(method: MethodConfig, knob: str, cap: int | None) -> int | None:
    """A method knob under the budget's cap; None for a method whose schema has no such knob."""
    value = getattr(method, knob, None)
    return None if value is None else capped(value, cap)
