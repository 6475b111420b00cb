"""ReFT (Luong et al., 2024): SFT warm-up, then PPO against the partial-credit outcome reward.

    base --sft warm-up--> policy_0 --PPO (value head, KL to policy_0 in the reward, GAE)--> policy
    evaluate policy_0 and policy on the test split

One rollout per question, ppo_epochs clipped passes per batch; see conf/method/reft.yaml.
"""

from __future__ import annotations

from reftlab.methods.common import (
    Env,
    evaluate_final,
    finish_stage,
    frozen_copy,
    rl_settings,
    warmup,
    with_value_head,
)
from reftlab.stages.rl import train_rl


def run(env: Env, model) -> dict:
    model, warmup_metrics = warmup(env, model)

    def ppo() -> dict:
        policy = with_value_head(env, model)
        reference = frozen_copy(model)
        settings = rl_settings(env, len(env.splits.train))
        train_rl(
            policy,
            reference,
            env.tokenizer,
            env.splits.train,
            env.prompt,
            env.scorer,
            settings,
            env.ctx,
            env.accelerator,
            "ppo",
        )
        return finish_stage(env, "ppo", policy)

    trained = env.ctx.stage("ppo", ppo)
    return evaluate_final(env, trained, warmup_metrics)
