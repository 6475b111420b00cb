"""Evaluation on the test split: greedy top-1 accuracy, and with k samples majority voting and pass@k.

Every number can be traced to outputs: `predictions/<name>.jsonl` holds one line per question
with the completion(s), the extracted answer(s), the reward and whether it was right.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from reftlab.data import Example
from reftlab.rollout import generate
from reftlab.scoring import Scorer


def majority_vote(answers: Sequence[str | None], key: Callable[[str], object] = str) -> str | None:
    """The most frequent extracted answer (ties: the one seen first); None if nothing extracted.

    `key` maps an answer to its equivalence class (e.g. the parsed number, so that "18" and
    "18.0" vote together).
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
    for answer in answers:  # earliest among the most voted
        if answer is not None and counts[key(answer)] == best:
            return first[key(answer)]
    return None


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
    predictions_path: Path | None = None,
    desc: str = "evaluate",
    show_progress: bool = True,
) -> dict[str, float]:
    """Greedy accuracy on `examples`; with `samples` k > 1 also `maj@k` and `pass@k`.

    Returns metrics named `eval/accuracy`, `eval/mean_reward`, `eval/extracted_rate`, and for
    k > 1 `eval/maj@k`, `eval/pass@k`.
    """
    records = []
    bar = tqdm(
        total=len(examples), desc=desc, unit="q", dynamic_ncols=True, disable=not show_progress
    )
    correct = 0
    for start in range(0, len(examples), batch_size):
        chunk = list(examples[start : start + batch_size])
        prompts = [make_prompt(e) for e in chunk]
        greedy = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, do_sample=False)
        greedy_scores = scorer.score(greedy.texts, chunk)
        sampled_texts: list[list[str]] = [[] for _ in chunk]
        sampled_scores: list[list] = [[] for _ in chunk]
        if samples > 1:
            batch = generate(
                model,
                tokenizer,
                prompts,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                do_sample=True,
                num_return_sequences=samples,
                seed=seed + start,
            )
            flat_examples = [e for e in chunk for _ in range(samples)]
            flat_scores = scorer.score(batch.texts, flat_examples)
            for i in range(len(chunk)):
                sampled_texts[i] = batch.texts[i * samples : (i + 1) * samples]
                sampled_scores[i] = flat_scores[i * samples : (i + 1) * samples]
        for i, example in enumerate(chunk):
            record = {
                "id": example.id,
                "answer": example.answer,
                "completion": greedy.texts[i],
                "extracted": greedy_scores[i].extracted,
                "reward": greedy_scores[i].reward,
                "correct": greedy_scores[i].correct,
            }
            if samples > 1:
                answers = [s.extracted for s in sampled_scores[i]]
                voted = majority_vote(answers, key=scorer.answer_key)
                record["samples"] = sampled_texts[i]
                record["sample_answers"] = answers
                record["voted"] = voted
                record["voted_correct"] = voted is not None and scorer.is_correct(voted, example)
                record["pass"] = any(s.correct for s in sampled_scores[i])
            records.append(record)
            correct += record["correct"]
        bar.update(len(chunk))
        bar.set_postfix(acc=f"{correct / len(records):.3f}")
    bar.close()

    n = max(1, len(records))
    metrics = {
        "eval/accuracy": sum(r["correct"] for r in records) / n,
        "eval/mean_reward": sum(r["reward"] for r in records) / n,
        "eval/extracted_rate": sum(r["extracted"] is not None for r in records) / n,
        "eval/n": len(records),
    }
    if samples > 1:
        metrics[f"eval/maj@{samples}"] = sum(r["voted_correct"] for r in records) / n
        metrics[f"eval/pass@{samples}"] = sum(r["pass"] for r in records) / n
    if predictions_path is not None:
        predictions_path.parent.mkdir(parents=True, exist_ok=True)
        with predictions_path.open("w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record) + "\n")
    return metrics
