"""PrefixRL's stages: collect successful off-policy traces, pick the hard problems, and build
the RL pool of prefixed and plain problems.

Hard problems. PrefixRL spends off-policy compute on the problems the on-policy model rarely
solves, and conditions on prefixes of the successful traces found there. Here:

- ``trace_source=rejection``: ``rejection_samples`` solutions per training problem are drawn
  from the warm-up model (the policy RL starts from). A problem is *hard* when its pass rate
  among those samples is above 0 (a trace exists to cut) and at most ``hard_max_pass_rate``;
  its distinct correct samples are its traces. A problem the samples always solve gains little
  from a prefix, and one they never solve has no trace.
- ``trace_source=file``: the traces come from elsewhere (a stronger model, a bigger sampling
  budget); every training problem with a trace in the file is hard, because whoever wrote the
  file chose those problems. No on-policy samples are drawn.

A prefixed problem is the question's prompt followed by the first ``floor(f * n)`` tokens of one
of its traces (``f`` uniform in ``[prefix_min_frac, prefix_max_frac]``, ``n`` the trace's
tokens); the cut is drawn once, when the pool is built. The prefix is *prompt*: the policy
samples only the continuation, so no log-prob, advantage or loss ever falls on a prefix token.
The reward scores prefix + continuation, the whole solution (for P-CoT only the whole program
runs).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from reftlab.data import DataError, Example
from reftlab.data.traces import read_trace_file, select_targets, write_trace_file
from reftlab.rewards.scorer import Scorer
from reftlab.rl.prefix import cut_trace, draw_fraction, draw_pool
from reftlab.stages.engines import HF, RolloutEngine
from reftlab.stages.sampling import SamplingSettings, sample_solutions


def traces_from_samples(
    model,
    tokenizer,
    examples: Sequence[Example],
    make_prompt: Callable[[Example], str],
    scorer: Scorer,
    sampling: SamplingSettings,
    hard_max_pass_rate: float,
    show_progress: bool = True,
    engine: RolloutEngine = HF,
) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Rejection sampling: the distinct correct samples of the hard problems, and the counts."""
    drawn = sample_solutions(
        model,
        tokenizer,
        examples,
        make_prompt,
        scorer,
        sampling,
        desc="collect_traces",
        show_progress=show_progress,
        engine=engine,
    )
    traces = {}
    for example, samples in zip(examples, drawn, strict=True):
        if 0.0 < samples.pass_rate <= hard_max_pass_rate:
            traces[example.id] = select_targets(samples.texts, samples.correct, len(samples.texts))
    counts = {
        "samples_drawn": sum(len(s.texts) for s in drawn),
        "problems_solved": sum(s.pass_rate > 0 for s in drawn),
        "hard_problems": len(traces),
    }
    return traces, counts


def traces_from_file(
    path: str, examples: Sequence[Example], lead: str
) -> tuple[dict[str, list[str]], dict[str, int]]:
    """The file's traces of training problems; ``lead`` is put before a completion that does
    not start with whitespace (N-CoT completions follow "Answer:" after a space)."""
    known = {e.id for e in examples}
    found = read_trace_file(path)
    traces = {
        i: [t if t[:1].isspace() else lead + t for t in texts]
        for i, texts in found.items()
        if i in known
    }
    if found and not traces:
        example = next(iter(found))
        raise DataError(
            f"trace file {path}: none of its {len(found)} ids (e.g. {example!r}) is the id of a "
            f"training example (e.g. {examples[0].id!r})"
        )
    return traces, {
        "samples_drawn": 0,
        "problems_solved": len(traces),
        "hard_problems": len(traces),
    }


def save_traces(path: Path, traces: dict[str, list[str]], counts: dict[str, int]) -> dict:
    """Write the hard problems' traces (trace-file format, reusable as ``trace_file``)."""
    write_trace_file(path, traces)
    return {"traces_path": str(path), "traces": sum(map(len, traces.values())), **counts}


@dataclass(frozen=True)
class PrefixPool:
    """The RL problems: plain examples and prefixed copies (id ``<id>#prefix<k>``)."""

    items: list[Example]
    # Item id -> the prefix text appended to its prompt; plain items are absent.
    prefixes: dict[str, str]


def build_pool(
    examples: Sequence[Example],
    traces: dict[str, list[str]],
    tokenizer,
    size: int,
    plain_fraction: float,
    min_frac: float,
    max_frac: float,
    seed: int,
) -> PrefixPool:
    """``size`` RL problems, a ``1 - plain_fraction`` share prefixed (see the module docstring)."""
    rng = random.Random(seed)
    by_id = {e.id: e for e in examples}
    items, prefixes = [], {}
    drawn = draw_pool([e.id for e in examples], sorted(traces), size, plain_fraction, rng)
    for k, (problem_id, prefixed) in enumerate(drawn):
        example = by_id[problem_id]
        if not prefixed:
            items.append(example)
            continue
        trace_ids = tokenizer(rng.choice(traces[problem_id]), add_special_tokens=False)
        prefix_ids, _ = cut_trace(trace_ids["input_ids"], draw_fraction(rng, min_frac, max_frac))
        item = dataclasses.replace(example, id=f"{problem_id}#prefix{k}")
        prefixes[item.id] = tokenizer.decode(prefix_ids)
        items.append(item)
    return PrefixPool(items, prefixes)


def prompt_with_prefix(
    make_prompt: Callable[[Example], str], prefixes: dict[str, str]
) -> Callable[[Example], str]:
    """The prompt function of the RL loop: the question's prompt, then the item's prefix."""
    return lambda example: make_prompt(example) + prefixes.get(example.id, "")


class PrefixScorer:
    """The run's scorer applied to prefix + completion, the whole solution the reward judges."""

    def __init__(self, scorer: Scorer, prefixes: dict[str, str]):
        self.scorer = scorer
        self.prefixes = prefixes

    def score(self, completions: Sequence[str], examples: Sequence[Example]):
        whole = [
            self.prefixes.get(e.id, "") + c for c, e in zip(completions, examples, strict=True)
        ]
        return self.scorer.score(whole, examples)


class RewardSplit:
    """Per-step mean reward on prefixed and on plain rollouts (a metric hook of ``train_rl``),
    and the running totals over the stage."""

    def __init__(self, prefixes: dict[str, str]):
        self.prefixes = prefixes
        self.sums = {"prefixed": 0.0, "plain": 0.0}
        self.counts = {"prefixed": 0, "plain": 0}

    def __call__(self, examples: Sequence[Example], scores: torch.Tensor) -> dict[str, float]:
        metrics = {}
        is_prefixed = torch.tensor([e.id in self.prefixes for e in examples])
        for kind, rows in (("prefixed", is_prefixed), ("plain", ~is_prefixed)):
            if rows.any():  # a step without rows of a kind logs no (nan) value for it
                metrics[f"train/reward_{kind}"] = scores[rows].mean().item()
                self.sums[kind] += scores[rows].sum().item()
                self.counts[kind] += int(rows.sum())
        return metrics

    def means(self) -> dict[str, float]:
        return {
            f"train_reward_{k}": self.sums[k] / self.counts[k] for k in self.sums if self.counts[k]
        }
