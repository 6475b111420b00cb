"""ReFT (Luong et al., 2024): SFT warm-up, then PPO against the partial-credit outcome reward.

    base --sft warm-up--> policy_0 --PPO (value head, KL to policy_0 in the reward, GAE)--> policy
    evaluate policy_0 and policy on the test split

One rollout per question, ppo_epochs clipped passes per batch; see conf/method/reft.yaml.
"""

from __future__ import annotations

from reftlab.methods.env import Env, finish_stage, frozen_copy, rl_settings, with_value_head
from reftlab.methods.evaluation import evaluate_final, periodic_evaluation
from reftlab.methods.warmup import warmup
from reftlab.stages.rl import train_rl


def train_and_evaluate(env: Env, model) -> dict:
    warm = warmup(env, model)
    model = warm.model

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
            engine=env.engine,
            periodic=periodic_evaluation(env, "ppo"),
        )
        return finish_stage(env, "ppo", policy)

    trained = env.ctx.stage("ppo", ppo)
    return evaluate_final(env, trained, warm)
