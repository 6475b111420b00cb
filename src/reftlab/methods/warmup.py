"""The SFT warm-up every method starts from, shared by the runs whose upstream settings match.

    base --sft on the gold CoTs--> policy_0, saved under cache_dir/stages/sft-<key>
    evaluate policy_0 on the test split (its predictions kept beside the weights)

A run whose warm-up key (everything the warm-up's weights and test accuracy depend on) matches
an earlier run's reuses that warm-up instead of training it again.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from reftlab.methods.env import Env, Warmup, WarmupSource, sft_pairs, sft_settings
from reftlab.methods.evaluation import (
    WARMUP_STAGE,
    evaluate,
    periodic_evaluation,
    predictions_file,
)
from reftlab.models.checkpoints import load_checkpoint, save_checkpoint
from reftlab.runtime import distributed
from reftlab.runtime.reuse import cached_stage, stage_key
from reftlab.stages.sft import train_sft

# The warm-up's per-problem test results, stored beside its cached weights.
CACHED_PREDICTIONS = "predictions.jsonl"


def warmup_key(env: Env, epochs: int) -> str:
    """Everything the warm-up's weights and its test accuracy depend on."""
    run = env.run
    m = run.method
    return stage_key(
        stage="sft_warmup",
        model=run.model,
        dataset=run.dataset,
        cot=run.cot,
        seed=run.seed,
        epochs=epochs,
        lr=m.sft_lr,
        batch_size=m.sft_batch_size,
        precision=run.precision,
        max_train=run.budget.max_train_examples,
        max_test=run.budget.max_test_examples,
        max_new_tokens=env.schedule.max_new_tokens,
        eval=run.eval,
    )


def sft_on_gold(env: Env, model, stage: str, epochs: int, at_start: bool = False) -> None:
    """`epochs` of SFT on the training split's gold CoTs, in place, as stage `stage`, evaluated
    every `budget.eval_every` steps (and with `at_start` before the first)."""
    prompts, targets = sft_pairs(env, env.splits.train)
    train_sft(
        model,
        env.tokenizer,
        prompts,
        targets,
        sft_settings(env, epochs),
        env.ctx,
        env.accelerator,
        stage,
        periodic=periodic_evaluation(env, stage, at_start),
    )


def train_and_cache(env: Env, model, stage: str, epochs: int, source: WarmupSource) -> dict:
    """Train the warm-up into `source.folder` and evaluate it; what `cached_stage` stores."""
    # From step 0: the untouched model's accuracy starts the curve.
    sft_on_gold(env, model, stage, epochs, at_start=True)
    distributed.check_replicas(model, stage)
    # Saved before evaluating: a reranked evaluation trains its reward model from it.
    if env.ctx.is_main:
        save_checkpoint(model, env.tokenizer, source.folder)
    distributed.barrier()
    metrics = evaluate(env, model, stage, source)
    if env.ctx.is_main:  # kept with the weights, for the runs that reuse them
        shutil.copyfile(predictions_file(env, stage), source.folder / CACHED_PREDICTIONS)
    return {"metrics": metrics, "global_step": env.ctx.global_step}


def bring_cached_predictions(env: Env, stage: str, folder: Path) -> None:
    """A reused warm-up's per-problem results, copied into this run's predictions."""
    cached, target = folder / CACHED_PREDICTIONS, predictions_file(env, stage)
    if env.ctx.is_main and cached.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, target)


def warmup(env: Env, model, stage: str = WARMUP_STAGE, epochs: int | None = None) -> Warmup:
    """SFT warm-up on the gold CoTs, then its test accuracy; reused from the cache when a run
    with identical upstream settings already trained it."""
    epochs = env.schedule.warmup_epochs if epochs is None else epochs
    key = warmup_key(env, epochs)

    def run_stage() -> dict[str, Any]:
        folder, info, reused = cached_stage(
            Path(env.run.cache_dir),
            "sft",
            key,
            lambda folder: train_and_cache(env, model, stage, epochs, WarmupSource(key, folder)),
        )
        if reused:
            env.ctx.global_step = max(env.ctx.global_step, info["global_step"])
            bring_cached_predictions(env, stage, folder)
            print(
                f"[{stage}] reusing the warm-up trained by an earlier run with identical "
                f"settings: {folder}",
                flush=True,
            )
        env.ctx.log({**info["metrics"], "reused": int(reused)}, stage=stage)
        return {"model_dir": str(folder), "metrics": info["metrics"], "reused": reused}

    result = env.ctx.stage(stage, run_stage)
    warmed = load_checkpoint(result["model_dir"], env.accelerator.device)
    return Warmup(warmed, result["metrics"], WarmupSource(key, Path(result["model_dir"])))
