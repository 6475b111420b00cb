"""Offline self-training (ReFT's baseline, after Yuan et al. 2023's rejection-sampling FT):

    base --sft warm-up--> policy_0
    policy_0 samples samples_per_question CoTs per training question (temperature 1)
    keep the gold CoT + up to keep_correct distinct correct samples per question
    restart_from (base: the paper | warmup) --sft on the kept pairs, rl_epochs epochs--> policy
    evaluate policy_0 and policy on the test split

The kept pairs are written to samples/offline_st.jsonl; how many samples were drawn, correct
and kept is logged and lands in summary.json.
"""

from __future__ import annotations

from pathlib import Path

from reftlab.methods.env import (
    Env,
    finish_stage,
    load_run_model,
    sampling_settings,
    sft_settings,
)
from reftlab.methods.evaluation import evaluate_final, periodic_evaluation
from reftlab.methods.warmup import warmup
from reftlab.stages.selftrain import read_pairs, sample_and_filter
from reftlab.stages.sft import train_sft


def sample(env: Env, model) -> dict:
    """Sample from the warm-up, keep the gold and the distinct correct samples, write them."""
    path = env.run_dir / "samples" / "offline_st.jsonl"
    counts = sample_and_filter(
        model,
        env.tokenizer,
        env.splits.train,
        env.prompt,
        env.target,
        env.scorer,
        sampling_settings(env, env.schedule.samples_per_question),
        env.run.method.keep_correct,
        path,
        env.ctx.is_main,
        engine=env.engine,
    )
    env.ctx.log(counts)
    return {"path": str(path), **counts}


def sft_on_samples(env: Env, warmed, kept: dict) -> dict:
    if env.run.method.restart_from == "base":  # the warm-up trained the base model in place
        start = load_run_model(env.run, env.splits)[0].to(env.accelerator.device)
    else:
        start = warmed
    prompts, targets = read_pairs(Path(kept["path"]), env.splits.train, env.prompt)
    train_sft(
        start,
        env.tokenizer,
        prompts,
        targets,
        sft_settings(env, env.schedule.rl_epochs),
        env.ctx,
        env.accelerator,
        "sft_on_samples",
        periodic=periodic_evaluation(env, "sft_on_samples"),
    )
    return finish_stage(env, "sft_on_samples", start)


def train_and_evaluate(env: Env, model) -> dict:
    warm = warmup(env, model)
    kept = env.ctx.stage("sample_and_filter", lambda: sample(env, warm.model))
    trained = env.ctx.stage("sft_on_samples", lambda: sft_on_samples(env, warm.model, kept))
    counts = {k: v for k, v in kept.items() if k != "path"}
    return {**evaluate_final(env, trained, warm), **counts}
