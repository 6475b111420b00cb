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

from reftlab.methods.common import Env, evaluate, finish_stage, sft_settings, warmup
from reftlab.models.checkpoints import load_base_model, load_checkpoint
from reftlab.stages.sampling import SamplingSettings
from reftlab.stages.selftrain import read_pairs, sample_and_filter
from reftlab.stages.sft import train_sft


def run(env: Env, model) -> dict:
    m, s = env.run.method, env.schedule
    model, warmup_metrics = warmup(env, model)

    def sample() -> dict:
        sampling = SamplingSettings(
            samples=s.samples_per_question,
            temperature=m.temperature,
            top_p=m.top_p,
            max_new_tokens=s.max_new_tokens,
            seed=env.run.seed,
            questions_per_batch=env.run.eval.batch_size,
        )
        path = env.run_dir / "samples" / "offline_st.jsonl"
        counts = sample_and_filter(
            model,
            env.tokenizer,
            env.splits.train,
            env.prompt,
            env.target,
            env.scorer,
            sampling,
            m.keep_correct,
            path,
            env.ctx.is_main,
        )
        env.ctx.log(counts)
        return {"path": str(path), **counts}

    kept = env.ctx.stage("sample_and_filter", sample)

    def sft_on_samples() -> dict:
        if m.restart_from == "base":  # the warm-up trained the base model in place: reload it
            start = load_base_model(env.run, env.splits)[0].to(env.accelerator.device)
        else:
            start = model
        prompts, targets = read_pairs(Path(kept["path"]), env.splits.train, env.prompt)
        train_sft(
            start,
            env.tokenizer,
            prompts,
            targets,
            sft_settings(env, s.rl_epochs),
            env.ctx,
            env.accelerator,
            "sft_on_samples",
        )
        return finish_stage(env, "sft_on_samples", start)

    trained = env.ctx.stage("sft_on_samples", sft_on_samples)
    policy = load_checkpoint(trained["model_dir"], env.accelerator.device)
    test = env.ctx.stage("evaluate", lambda: evaluate(env, policy, "evaluate"))
    env.ctx.log(test, stage="evaluate")
    counts = {k: v for k, v in kept.items() if k != "path"}
    return {
        "test_accuracy": test["eval/accuracy"],
        "warmup_test_accuracy": warmup_metrics["eval/accuracy"],
        **test,
        **counts,
    }
