"""Online self-training (ReFT's online baseline): SFT warm-up, then a loop that samples from
the current policy, keeps the correct samples and takes NLL steps on them.

    base --sft warm-up--> policy_0
    for each step: rollouts_per_query samples per question from the policy; keep the distinct
        correct ones (+ the gold CoT when mix_gold); NLL steps on them, mini_batch_size a step
    evaluate policy_0 and policy on the test split
"""

from __future__ import annotations

from reftlab.methods.env import Env, finish_stage, settings_from
from reftlab.methods.evaluation import evaluate_final, periodic_evaluation
from reftlab.methods.schedule import rl_steps_for
from reftlab.methods.warmup import warmup
from reftlab.stages.selftrain import OnlineSTSettings, train_online_st


def online_settings(env: Env) -> OnlineSTSettings:
    m, s = env.run.method, env.schedule
    return settings_from(
        m,
        OnlineSTSettings,
        steps=rl_steps_for(len(env.splits.train), m.batch_size, s.rl_epochs, s.max_rl_steps),
        lr=m.rl_lr,
        max_new_tokens=s.max_new_tokens,
        max_length=env.run.model.max_length,
        seed=env.run.seed,
    )


def train_and_evaluate(env: Env, model) -> dict:
    warm = warmup(env, model)
    model = warm.model

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
            engine=env.engine,
            periodic=periodic_evaluation(env, "online_self_training"),
        )
        return finish_stage(env, "online_self_training", model)

    trained = env.ctx.stage("online_self_training", self_train)
    return evaluate_final(env, trained, warm)
