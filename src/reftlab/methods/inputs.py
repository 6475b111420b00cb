"""What a run reads before any model: its data splits and its reward. Imports no torch, so the
`score` verb, which needs only these, starts in a second."""

from __future__ import annotations

from reftlab.config import RunConfig
from reftlab.data.splits import Splits, load_splits
from reftlab.rewards.scorer import Scorer


def make_scorer(run: RunConfig) -> Scorer:
    """The run's reward: the `cot` settings and the method's reward shape."""
    m, c = run.method, run.cot
    partial = m.partial_reward if m.reward_shape == "partial" else 0.0
    return Scorer(c.name, partial, c.answer_markers, c.answer_fallback, c.program_timeout_s)


def load_run_splits(run: RunConfig, need_train: bool = True) -> Splits:
    """The run's data set, cut to the budget's caps."""
    b = run.budget
    return load_splits(
        run.dataset, run.cot.name, b.max_train_examples, b.max_test_examples, need_train
    )
