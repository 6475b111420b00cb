"""Evaluation on the test split: greedy top-1 accuracy; with k samples, majority voting (maj@k),
pass@k and, given a reward model, reranking (rerank@k); on multiple choice, reward hacking.
For N-CoT the greedy accuracy is also given read strictly (the paper's format only) and flexibly
(every phrasing the reader knows), as the common evaluation harnesses do.

Every number can be traced to outputs: `predictions/<name>.jsonl` holds one line per question
with the greedy completion, its extracted answer, reward and correctness, and with k samples the
samples, their answers and correctness, the voted answer, and the reward model's scores and pick.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from reftlab.data import Example
from reftlab.rewards import check_choice_hacking
from reftlab.rewards.scorer import Scorer
from reftlab.runtime.progress import progress_bar
from reftlab.sandbox.result import ExecResult
from reftlab.stages.engines import HF, RolloutEngine
from reftlab.stages.reward_model import pick_top

# rerank(prompts, completions) -> one score per completion, higher is better.
Reranker = Callable[[Sequence[str], Sequence[str]], list[float]]


def majority_vote(answers: Sequence[str | None], key: Callable[[str], object] = str) -> str | None:
    """The most frequent extracted answer (ties: the one seen first); None if nothing extracted.

    `key` maps an answer to its equivalence class (e.g. the parsed number, so that "18" and
    "18.0" vote together); the answer returned is the class's first spelling.
    """
    counts: Counter = Counter()
    first: dict[object, str] = {}
    for answer in answers:
        if answer is None:
            continue
        k = key(answer)
        counts[k] += 1
        first.setdefault(k, answer)
    if not counts:
        return None
    best = max(counts.values())
    # `first` keeps insertion order, so this is the earliest class among the most voted.
    return next(answer for k, answer in first.items() if counts[k] == best)


def greedy_records(examples, completions, scores, by_reading: dict[str, list[bool]]) -> list:
    """`greedy_record` for each question of a batch, with its strict/flexible verdicts."""
    return [
        greedy_record(e, text, score, **{k: v[i] for k, v in by_reading.items()})
        for i, (e, text, score) in enumerate(zip(examples, completions, scores, strict=True))
    ]


def greedy_record(example: Example, completion: str, score, **by_reading: bool) -> dict:
    """One question's greedy prediction; `by_reading` adds `correct_strict`/`correct_flexible`."""
    return {
        "id": example.id,
        "answer": example.answer,
        "completion": completion,
        "extracted": score.extracted,
        "reward": score.reward,
        "correct": score.correct,
        **{f"correct_{name}": correct for name, correct in by_reading.items()},
    }


def sample_fields(example: Example, texts: Sequence[str], scores: Sequence, scorer: Scorer) -> dict:
    """The k samples of one question, their answers, the vote and whether any was right."""
    answers = [s.extracted for s in scores]
    voted = majority_vote(answers, key=scorer.answer_key)
    return {
        "samples": list(texts),
        "sample_answers": answers,
        "sample_correct": [s.correct for s in scores],
        "voted": voted,
        "voted_correct": voted is not None and scorer.is_correct(voted, example),
        "pass": any(s.correct for s in scores),
    }


def rerank_fields(rm_scores: Sequence[float], sample_correct: Sequence[bool]) -> dict:
    """The reward model's scores of one question's samples, its pick and whether it is right."""
    top = pick_top(rm_scores)
    return {"rm_scores": list(rm_scores), "reranked": top, "reranked_correct": sample_correct[top]}


def summarise(records: Sequence[dict], samples: int) -> dict[str, float]:
    """Metrics over the per-question records (`eval/...`; the k-sample ones for k > 1)."""
    n = max(1, len(records))
    metrics = {
        "eval/accuracy": sum(r["correct"] for r in records) / n,
        "eval/mean_reward": sum(r["reward"] for r in records) / n,
        "eval/extracted_rate": sum(r["extracted"] is not None for r in records) / n,
        "eval/n": len(records),
    }
    for reading in ("strict", "flexible"):
        if records and f"correct_{reading}" in records[0]:
            metrics[f"eval/accuracy_{reading}"] = sum(r[f"correct_{reading}"] for r in records) / n
    if samples > 1:
        metrics[f"eval/maj@{samples}"] = sum(r["voted_correct"] for r in records) / n
        metrics[f"eval/pass@{samples}"] = sum(r["pass"] for r in records) / n
        if records and "reranked_correct" in records[0]:
            metrics[f"eval/rerank@{samples}"] = sum(r["reranked_correct"] for r in records) / n
    return metrics


def hacking_metrics(
    completions: Sequence[str],
    examples: Sequence[Example],
    results: Sequence[ExecResult] | None,
    scorer: Scorer,
) -> tuple[dict[str, float], tuple[int, ...]]:
    """Reward-hacking counts and rates of multiple-choice completions, and the flagged indices.

    `eval/hacking_rate` is the share of right letters whose own computed value matches another
    option (`rewards.hacking`); `eval/hacking/*` holds every count and rate of the check.
    """
    report = check_choice_hacking(
        completions, examples, cot=scorer.cot, exec_results=results, markers=scorer.markers
    )
    rates = report.rates()
    counts = {k: v for k, v in dataclasses.asdict(report).items() if k != "flagged"}
    metrics = {"eval/hacking_rate": rates["hack_rate_of_correct"]}
    metrics.update({f"eval/hacking/{k}": v for k, v in {**counts, **rates}.items()})
    return metrics, report.flagged


def write_predictions(path: Path, records: Sequence[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")


def evaluate_model(
    model,
    tokenizer,
    examples: Sequence[Example],
    make_prompt: Callable[[Example], str],
    scorer: Scorer,
    *,
    batch_size: int,
    max_new_tokens: int,
    samples: int = 1,
    temperature: float = 1.0,
    seed: int = 0,
    rerank: Reranker | None = None,
    check_hacking: bool = False,
    predictions_path: Path | None = None,
    desc: str = "evaluate",
    show_progress: bool = True,
    engine: RolloutEngine = HF,
) -> dict[str, float]:
    """Greedy accuracy on `examples`; with `samples` k > 1 also `maj@k` and `pass@k`, and with a
    `rerank` scorer `rerank@k`; with `check_hacking` (multiple choice) the hacking check of the
    greedy completions.

    Returns metrics named `eval/accuracy`, `eval/mean_reward`, `eval/extracted_rate`, `eval/n`;
    for N-CoT `eval/accuracy_strict` and `eval/accuracy_flexible`; for k > 1 `eval/maj@k`, `eval/pass@k` (and `eval/rerank@k`); with the check
    `eval/hacking_rate` and `eval/hacking/*`.
    """
    predictions = predict(
        model,
        tokenizer,
        examples,
        make_prompt,
        scorer,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        samples=samples,
        temperature=temperature,
        seed=seed,
        rerank=rerank,
        desc=desc,
        show_progress=show_progress,
        engine=engine,
    )
    return summarise_predictions(
        predictions, examples, scorer, samples, check_hacking, predictions_path
    )


@dataclasses.dataclass
class Predictions:
    """Per-question records, and the greedy completions with their program results (if any)."""

    records: list[dict]
    greedy_texts: list[str]
    exec_results: list[ExecResult]

    @classmethod
    def concatenate(cls, parts: Sequence[Predictions]) -> Predictions:
        """The predictions of consecutive slices of a test split (one per process), in order."""
        return cls(
            [r for p in parts for r in p.records],
            [t for p in parts for t in p.greedy_texts],
            [x for p in parts for x in p.exec_results],
        )


def summarise_predictions(
    predictions: Predictions,
    examples: Sequence[Example],
    scorer: Scorer,
    samples: int,
    check_hacking: bool,
    predictions_path: Path | None,
) -> dict[str, float]:
    """The metrics of `evaluate_model` from the predictions of all of `examples`; writes the
    predictions file when a path is given."""
    records = predictions.records
    metrics = summarise(records, samples)
    if check_hacking:
        results = predictions.exec_results if scorer.cot == "program" else None
        hacking, flagged = hacking_metrics(predictions.greedy_texts, examples, results, scorer)
        metrics.update(hacking)
        suspected = set(flagged)
        for i, record in enumerate(records):
            record["hack_suspected"] = i in suspected
    if predictions_path is not None:
        write_predictions(predictions_path, records)
    return metrics


def add_sample_fields(
    records: list[dict],
    chunk: Sequence[Example],
    prompts: Sequence[str],
    texts: Sequence[str],
    scorer: Scorer,
    rerank: Reranker | None,
) -> None:
    """Add to each question's record its k samples' votes and pass@k (and reranking), from
    `texts`, k samples per question in order."""
    samples = len(texts) // len(chunk)
    flat_scores = scorer.score(texts, [e for e in chunk for _ in range(samples)])
    rm_scores = (
        rerank([p for p in prompts for _ in range(samples)], texts) if rerank is not None else None
    )
    for i, record in enumerate(records):
        rows = slice(i * samples, (i + 1) * samples)
        record.update(sample_fields(chunk[i], texts[rows], flat_scores[rows], scorer))
        if rm_scores is not None:
            record.update(rerank_fields(rm_scores[rows], record["sample_correct"]))


def predict(
    model,
    tokenizer,
    examples: Sequence[Example],
    make_prompt: Callable[[Example], str],
    scorer: Scorer,
    *,
    batch_size: int,
    max_new_tokens: int,
    samples: int = 1,
    temperature: float = 1.0,
    seed: int = 0,
    first_index: int = 0,
    rerank: Reranker | None = None,
    desc: str = "evaluate",
    show_progress: bool = True,
    engine: RolloutEngine = HF,
) -> Predictions:
    """Greedy (and with k > 1 sampled, voted, reranked) completions of `examples`, scored.

    `first_index` is the position of `examples[0]` in the whole test split: a batch's sampling
    seed is `seed` plus the split position of its first question, so a slice evaluated by one
    process of several draws what the same batch draws in one process.
    """
    records: list[dict] = []
    greedy_texts: list[str] = []
    exec_results: list[ExecResult] = []
    bar = progress_bar(len(examples), desc, unit="q", disable=not show_progress)
    for start in range(0, len(examples), batch_size):
        chunk = list(examples[start : start + batch_size])
        prompts = [make_prompt(e) for e in chunk]
        greedy = engine.generate(
            model, tokenizer, prompts, max_new_tokens=max_new_tokens, do_sample=False
        )
        greedy_scores, results = scorer.score_with_results(greedy.texts, chunk)
        by_reading = scorer.correct_by_reading(greedy.texts, chunk)
        greedy_texts += greedy.texts
        exec_results += results or []
        batch_records = greedy_records(chunk, greedy.texts, greedy_scores, by_reading)
        if samples > 1:
            sampled = engine.generate(
                model,
                tokenizer,
                prompts,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                do_sample=True,
                num_return_sequences=samples,
                seed=seed + first_index + start,
            )
            add_sample_fields(batch_records, chunk, prompts, sampled.texts, scorer, rerank)
        records += batch_records
        # The postfix first: a plain bar prints its last line on the update that completes it.
        bar.set_postfix(acc=f"{sum(r['correct'] for r in records) / len(records):.3f}")
        bar.update(len(chunk))
    bar.close()
    return Predictions(records, greedy_texts, exec_results)
