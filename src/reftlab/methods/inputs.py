"""What a run reads before any model: its data splits and its reward. Imports no torch, so the
`score` verb, which needs only these, starts in a second."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence

from reftlab.config import RunConfig
from reftlab.data import Example, format_prompt
from reftlab.data.errors import DataError
from reftlab.data.splits import Splits, load_splits
from reftlab.rewards.scorer import Scorer

# No tokenizer turns text into fewer tokens than one per this many characters, so a longer prompt
# is too long without being tokenized (a 50 MB record never reaches the tokenizer).
MAX_CHARS_PER_TOKEN = 64


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


def prompt_fits(tokenizer, max_length: int) -> Callable[[str], bool]:
    """Whether a prompt, tokenized as generation tokenizes it, has at most `max_length` tokens."""

    def fits(prompt: str) -> bool:
        if len(prompt) > max_length * MAX_CHARS_PER_TOKEN:
            return False
        return len(tokenizer(prompt)["input_ids"]) <= max_length

    return fits


def drop_long_prompts(
    examples: Sequence[Example], template: str, fits: Callable[[str], bool], where: str
) -> list[Example]:
    """The examples whose prompt `fits` the context; a warning line counts the others, and a
    `DataError` says what to change when none is left. `where`: `train split, model.max_length=N`."""
    kept = [e for e in examples if fits(format_prompt(template, e))]
    dropped = len(examples) - len(kept)
    split, _, limit = where.partition(", ")
    if dropped and not kept:
        raise DataError(
            f"{split}: every prompt ({dropped}) is longer than {limit} tokens; raise "
            "model.max_length or shorten the questions"
        )
    if dropped:
        print(
            f"[data] warning: {split}: dropped {dropped} of {len(examples)} examples whose "
            f"prompt is longer than {limit} tokens",
            file=sys.stderr,
            flush=True,
        )
    return kept


def fit_to_context(run: RunConfig, splits: Splits, tokenizer) -> Splits:
    """`splits` without the examples whose prompt is longer than the model's context
    (`model.max_length` tokens): they would reach a tensor of that length times the batch."""
    fits = prompt_fits(tokenizer, run.model.max_length)
    template, limit = run.cot.prompt_template, f"model.max_length={run.model.max_length}"
    train = drop_long_prompts(splits.train, template, fits, f"train split, {limit}")
    test = drop_long_prompts(splits.test, template, fits, f"test split, {limit}")
    return dataclasses.replace(splits, train=train, test=test)
