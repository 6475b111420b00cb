"""PrefixRL: on-policy RL on hard problems conditioned on prefixes of successful off-policy
traces; evaluated on plain problems. See `reftlab.stages.prefix` for what "hard" means.

    base --sft warm-up--> policy_0
    collect_traces: rejection-sample rejection_samples per problem from policy_0 (or read
        trace_file); keep the successful traces of the hard problems -> traces/traces.jsonl
    prefix_rl: a pool of prefixed problems (prompt + the first f of a trace's tokens, f in
        [prefix_min_frac, prefix_max_frac]) and plain ones (plain_fraction of the pool);
        rollouts_per_query rollouts each, group-normalised advantages, clipped PG. The prefix
        is prompt, so no gradient flows through its tokens; the reward scores prefix + rollout.
    evaluate policy_0 and policy on the plain test problems

offpolicy_use=sft runs the paper's strongest baseline from the same traces instead: SFT of
policy_0 on them (the warm-up's epochs and learning rate), then plain RL with the same settings.
offpolicy_use=none is plain RL from policy_0: no traces are collected, no problem is prefixed.
"""

from __future__ import annotations

from reftlab.data.prompts import TARGET_PREFIX
from reftlab.data.traces import read_trace_file
from reftlab.methods.env import (
    Env,
    finish_stage,
    frozen_copy,
    rl_settings,
    sampling_settings,
    sft_settings,
    with_value_head,
)
from reftlab.methods.evaluation import evaluate_final, periodic_evaluation
from reftlab.methods.warmup import warmup
from reftlab.models.checkpoints import load_checkpoint
from reftlab.models.value import disable_dropout
from reftlab.stages.prefix import (
    PrefixScorer,
    RewardSplit,
    build_pool,
    prompt_with_prefix,
    save_traces,
    traces_from_file,
    traces_from_samples,
)
from reftlab.stages.rl import train_rl
from reftlab.stages.sft import train_sft


def collect_traces(env: Env, model) -> dict:
    m, s = env.run.method, env.schedule
    if m.trace_source == "file":
        traces, counts = traces_from_file(
            m.trace_file, env.splits.train, lead=TARGET_PREFIX[env.run.cot.name]
        )
    else:
        sampling = sampling_settings(env, s.rejection_samples)
        traces, counts = traces_from_samples(
            model,
            env.tokenizer,
            env.splits.train,
            env.prompt,
            env.scorer,
            sampling,
            m.hard_max_pass_rate,
            env.ctx.is_main,
            engine=env.engine,
        )
    if not traces:
        print(
            "[collect_traces] no hard problem has a successful trace: RL sees plain problems only",
            flush=True,
        )
    result = save_traces(env.run_dir / "traces" / "traces.jsonl", traces, counts)
    env.ctx.log({k: v for k, v in result.items() if k != "traces_path"})
    return result


def sft_on_traces(env: Env, model, traces: dict[str, list[str]]) -> dict:
    by_id = {e.id: e for e in env.splits.train}
    prompts = [env.prompt(by_id[i]) for i, texts in traces.items() for _ in texts]
    targets = [t for texts in traces.values() for t in texts]
    if not targets:
        print("[sft_on_traces] no traces: plain RL starts from the warm-up", flush=True)
        return finish_stage(env, "sft_on_traces", model)
    train_sft(
        model,
        env.tokenizer,
        prompts,
        targets,
        sft_settings(env, env.schedule.warmup_epochs),
        env.ctx,
        env.accelerator,
        "sft_on_traces",
        periodic=periodic_evaluation(env, "sft_on_traces"),
    )
    return finish_stage(env, "sft_on_traces", model)


def rl_on_pool(env: Env, model, traces: dict[str, list[str]], stage: str) -> dict:
    m = env.run.method
    pool = build_pool(
        env.splits.train,
        traces,
        env.tokenizer,
        len(env.splits.train),
        m.plain_fraction,
        m.prefix_min_frac,
        m.prefix_max_frac,
        env.run.seed,
    )
    settings = rl_settings(env, len(pool.items))
    policy = with_value_head(env, model) if settings.uses_values else model
    disable_dropout(policy)
    reference = frozen_copy(model) if settings.kl_coef > 0 else None
    split = RewardSplit(pool.prefixes)
    train_rl(
        policy,
        reference,
        env.tokenizer,
        pool.items,
        prompt_with_prefix(env.prompt, pool.prefixes),
        PrefixScorer(env.scorer, pool.prefixes),
        settings,
        env.ctx,
        env.accelerator,
        stage,
        extra_metrics=split,
        engine=env.engine,
        periodic=periodic_evaluation(env, stage),
    )
    return {
        **finish_stage(env, stage, policy),
        **split.means(),
        "prefixed_problems": len(pool.prefixes),
        "pool_size": len(pool.items),
    }


def train_and_evaluate(env: Env, model) -> dict:
    warm = warmup(env, model)
    model = warm.model
    use = env.run.method.offpolicy_use
    collected, traces = {}, {}
    if use != "none":
        collected = env.ctx.stage("collect_traces", lambda: collect_traces(env, model))
        traces = read_trace_file(collected["traces_path"]) if collected["traces"] else {}
    if use == "prefix":
        trained = env.ctx.stage("prefix_rl", lambda: rl_on_pool(env, model, traces, "prefix_rl"))
    else:
        if use == "sft":
            tuned = env.ctx.stage("sft_on_traces", lambda: sft_on_traces(env, model, traces))
            model = load_checkpoint(tuned["model_dir"], env.accelerator.device)
        trained = env.ctx.stage("rl", lambda: rl_on_pool(env, model, {}, "rl"))
    return {
        **evaluate_final(env, trained, warm),
        **trace_counts(collected),
        **{k: v for k, v in trained.items() if k != "model_dir"},
    }


def trace_counts(collected: dict) -> dict:
    """What trace collection counted, for the summary. Its samples are `trace_samples_drawn`:
    the off-policy share of the run's sampling, which RL's rollouts add to (`reftlab report`
    counts both from the metrics)."""
    counts = {k: v for k, v in collected.items() if k != "traces_path"}
    if "samples_drawn" in counts:
        counts["trace_samples_drawn"] = counts.pop("samples_drawn")
    return counts
