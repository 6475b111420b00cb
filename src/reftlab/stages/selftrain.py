"""Self-training stages: learn from the model's own correct samples by maximum likelihood.

Offline (ReFT's offline self-training baseline)::

    sample_and_filter: k samples per training question from the warm-up model, keep up to
        keep_correct distinct correct ones plus the gold CoT  -> a JSONL of training pairs
    (the method then runs train_sft on those pairs)

Online (ReFT's online self-training baseline, rejection-sampling fine-tuning inside the loop)::

    for each step:
        rollouts = sample(policy, questions, rollouts_per_query)
        kept     = distinct correct rollouts per question [+ the gold CoT when mix_gold]
        NLL steps on kept, in minibatches of mini_batch_size
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from reftlab.data import Example
from reftlab.data.traces import read_trace_file, select_targets, write_trace_file
from reftlab.models.value import unwrap_policy
from reftlab.rewards.scorer import Scorer
from reftlab.runtime.context import RunContext
from reftlab.runtime.loop import Periodic, Shown, TrainingLoop
from reftlab.stages.batches import (
    collate,
    completion_nll,
    encode_pairs,
    question_batch,
    step_seed,
)
from reftlab.stages.engines import HF, RolloutEngine
from reftlab.stages.sampling import SamplingSettings, sample_solutions


def sample_and_filter(
    model,
    tokenizer,
    examples: Sequence[Example],
    make_prompt: Callable[[Example], str],
    make_target: Callable[[Example], str],
    scorer: Scorer,
    sampling: SamplingSettings,
    keep_correct: int,
    path: Path,
    show_progress: bool = True,
    engine: RolloutEngine = HF,
) -> dict[str, float]:
    """Sample, keep the gold CoT plus up to ``keep_correct`` distinct correct samples per
    question, write them to ``path`` (trace JSONL) and return the counts."""
    drawn = sample_solutions(
        model,
        tokenizer,
        examples,
        make_prompt,
        scorer,
        sampling,
        desc="sample_and_filter",
        show_progress=show_progress,
        engine=engine,
    )
    kept: dict[str, list[str]] = {}
    for example, samples in zip(examples, drawn, strict=True):
        kept[example.id] = select_targets(
            samples.texts, samples.correct, keep_correct, gold=make_target(example)
        )
    write_trace_file(path, kept)
    n_kept = sum(len(targets) - 1 for targets in kept.values())  # minus the gold CoT
    return {
        "samples_drawn": sum(len(s.texts) for s in drawn),
        "samples_correct": sum(sum(s.correct) for s in drawn),
        "samples_kept": n_kept,
        "questions_with_kept": sum(len(targets) > 1 for targets in kept.values()),
        "training_pairs": n_kept + len(examples),
    }


def read_pairs(
    path: Path, examples: Sequence[Example], make_prompt: Callable[[Example], str]
) -> tuple[list[str], list[str]]:
    """(prompts, completions) of a trace file written by ``sample_and_filter``."""
    by_id = {e.id: e for e in examples}
    prompts, completions = [], []
    for trace_id, texts in read_trace_file(path).items():
        prompts += [make_prompt(by_id[trace_id])] * len(texts)
        completions += texts
    return prompts, completions


@dataclass(frozen=True)
class OnlineSTSettings:
    steps: int
    batch_size: int
    mini_batch_size: int
    rollouts_per_query: int
    lr: float
    mix_gold: bool
    temperature: float
    top_p: float
    max_new_tokens: int
    max_length: int
    seed: int
    max_grad_norm: float = 1.0


def nll_steps(
    policy,
    optimizer,
    accelerator,
    tokenizer,
    prompts: list[str],
    targets: list[str],
    s: OnlineSTSettings,
    generator: torch.Generator,
) -> dict[str, float]:
    """One pass of NLL minibatch steps over (prompt, target) pairs in a random order."""
    encoded = encode_pairs(tokenizer, prompts, targets, s.max_length)
    order = torch.randperm(len(encoded), generator=generator).tolist()
    losses, norms = [], []
    for start in range(0, len(order), s.mini_batch_size):
        rows = order[start : start + s.mini_batch_size]
        batch = collate([encoded[i] for i in rows], tokenizer.pad_token_id)
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        with accelerator.autocast():
            loss = completion_nll(policy, batch)
        accelerator.backward(loss)
        norms.append(float(accelerator.clip_grad_norm_(policy.parameters(), s.max_grad_norm)))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return {"train/nll_loss": sum(losses) / len(losses), "train/grad_norm": sum(norms) / len(norms)}


def kept_pairs(
    examples: Sequence[Example],
    texts: list[str],
    correct: list[bool],
    k: int,
    make_prompt: Callable[[Example], str],
    make_target: Callable[[Example], str],
    mix_gold: bool,
) -> tuple[list[str], list[str]]:
    """(prompts, targets) to learn from: each question's distinct correct samples among its `k`
    rows of `texts`, plus its gold CoT when `mix_gold`."""
    prompts, targets = [], []
    for q, example in enumerate(examples):
        gold = make_target(example) if mix_gold else None
        kept = select_targets(texts[q * k : (q + 1) * k], correct[q * k : (q + 1) * k], k, gold)
        prompts += [make_prompt(example)] * len(kept)
        targets += kept
    return prompts, targets


def train_online_st(
    policy,
    tokenizer,
    questions: Sequence[Example],
    make_prompt: Callable[[Example], str],
    make_target: Callable[[Example], str],
    scorer: Scorer,
    s: OnlineSTSettings,
    ctx: RunContext,
    accelerator,
    stage: str,
    engine: RolloutEngine = HF,
    periodic: Periodic | None = None,
) -> dict[str, float]:
    """Run ``s.steps`` online self-training steps, updating ``policy`` in place; return the
    last metrics. Checkpoints, resumes and evaluates between steps like ``train_rl``."""
    optimizer = torch.optim.AdamW(policy.parameters(), lr=s.lr, weight_decay=0.0)
    loop = TrainingLoop(stage, ctx, accelerator, policy, optimizer)
    policy = loop.model
    k = s.rollouts_per_query

    def step(index: int) -> dict[str, float]:
        examples = question_batch(questions, index, s.batch_size, s.seed)
        batch = engine.generate(
            unwrap_policy(accelerator.unwrap_model(policy)),
            tokenizer,
            [make_prompt(e) for e in examples],
            max_new_tokens=s.max_new_tokens,
            temperature=s.temperature,
            top_p=s.top_p,
            do_sample=True,
            num_return_sequences=k,
            seed=step_seed(s.seed, index),
        )
        scored = scorer.score(batch.texts, [e for e in examples for _ in range(k)])
        correct = [x.correct for x in scored]
        prompts, targets = kept_pairs(
            examples, batch.texts, correct, k, make_prompt, make_target, s.mix_gold
        )
        metrics = {
            "train/accuracy": sum(correct) / len(scored),
            "train/reward_mean": sum(x.reward for x in scored) / len(scored),
            "train/kept_samples": len(targets) - (len(examples) if s.mix_gold else 0),
            "train/response_length": batch.response_mask.sum(dim=1).float().mean().item(),
        }
        if targets:  # without gold and with no correct sample there is nothing to learn from
            policy.train()
            shuffle = torch.Generator().manual_seed(step_seed(s.seed, index))
            metrics.update(
                nll_steps(
                    policy, loop.optimizer, accelerator, tokenizer, prompts, targets, s, shuffle
                )
            )
            policy.eval()
        return metrics

    show = [Shown("acc", "train/accuracy", ".2f"), Shown("kept", "train/kept_samples", "d")]
    return loop.run(s.steps, step, show, periodic=periodic)
