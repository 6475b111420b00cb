"""Online self-training (ReFT's online baseline): SFT warm-up, then a loop that samples from
the current policy, keeps the correct samples and takes NLL steps on them.

    base --sft warm-up--> policy_0
    for each step: rollouts_per_query samples per question from the policy; keep the distinct
        correct ones (+ the gold CoT when mix_gold); NLL steps on them, mini_batch_size a step
    evaluate policy_0 and policy on the test split
"""

from __future__ import annotations

from reftlab.methods.common import Env, evaluate_final, finish_stage, warmup
from reftlab.stages.rl import rl_steps_for
from reftlab.stages.selftrain import OnlineSTSettings, train_online_st


def online_settings(env: Env) -> OnlineSTSettings:
    m, s = env.run.method, env.schedule
    return OnlineSTSettings(
        steps=rl_steps_for(len(env.splits.train), m.batch_size, s.rl_epochs, s.max_rl_steps),
        batch_size=m.batch_size,
        mini_batch_size=m.mini_batch_size,
        rollouts_per_query=m.rollouts_per_query,
        lr=m.rl_lr,
        mix_gold=m.mix_gold,
        temperature=m.temperature,
        top_p=m.top_p,
        max_new_tokens=s.max_new_tokens,
        max_length=env.run.model.max_length,
        seed=env.run.seed,
    )


def run(env: Env, model) -> dict:
    model, warmup_metrics = warmup(env, model)

    def self_train() -> dict:
        train_online_st(
            model,
            env.tokenizer,
            env.splits.train,
            env.prompt,
            env.target,
            env.scorer,
            online_settings(env),
            env.ctx,
            env.accelerator,
            "online_self_training",
        )
        return finish_stage(env, "online_self_training", model)

    trained = env.ctx.stage("online_self_training", self_train)
    return evaluate_final(env, trained, warmup_metrics)
