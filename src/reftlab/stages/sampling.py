"""Draw n solutions per question from a model and score them (offline self-training, and
PrefixRL's rejection sampling)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reftlab.data import Example
from reftlab.rewards.scorer import Scorer
from reftlab.runtime.progress import progress_bar
from reftlab.stages.engines import HF, RolloutEngine


@dataclass(frozen=True)
class SamplingSettings:
    samples: int
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int
    # Questions per generation call; generate() splits further to bound memory.
    questions_per_batch: int = 64


@dataclass(frozen=True)
class Samples:
    """One question's samples in the order drawn, and whether each is correct."""

    texts: list[str]
    correct: list[bool]

    @property
    def pass_rate(self) -> float:
        return sum(self.correct) / len(self.correct) if self.correct else 0.0


def sample_solutions(
    model,
    tokenizer,
    examples: Sequence[Example],
    make_prompt: Callable[[Example], str],
    scorer: Scorer,
    s: SamplingSettings,
    desc: str = "sample",
    show_progress: bool = True,
    engine: RolloutEngine = HF,
) -> list[Samples]:
    """``s.samples`` sampled completions per example, scored; one ``Samples`` per example.

    Each chunk of questions has its own seed, so the draw is reproducible and independent of
    how many chunks came before.
    """
    out: list[Samples] = []
    bar = progress_bar(len(examples), desc, unit="q", disable=not show_progress)
    for index, start in enumerate(range(0, len(examples), s.questions_per_batch)):
        chunk = list(examples[start : start + s.questions_per_batch])
        batch = engine.generate(
            model,
            tokenizer,
            [make_prompt(e) for e in chunk],
            max_new_tokens=s.max_new_tokens,
            temperature=s.temperature,
            top_p=s.top_p,
            do_sample=True,
            num_return_sequences=s.samples,
            seed=s.seed * 1_000_003 + index,
        )
        repeated = [e for e in chunk for _ in range(s.samples)]
        scores = scorer.score(batch.texts, repeated)
        for q in range(len(chunk)):
            rows = range(q * s.samples, (q + 1) * s.samples)
            out.append(Samples([batch.texts[i] for i in rows], [scores[i].correct for i in rows]))
        bar.update(len(chunk))
    bar.close()
    return out
