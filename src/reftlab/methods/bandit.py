"""The bandit policy gradient ("RFT as batched contextual bandits"): SFT warm-up, then the
minimal RL update -- one rollout per question, its raw outcome reward as the weight of a plain
policy gradient, no baseline, no KL, no clipping, one gradient step per batch of 32 questions.

    base --sft warm-up--> policy_0 --REINFORCE--> policy
    evaluate policy_0 and policy on the test split

The loss of a batch is ``-sum_i r_i * sum_t log pi(y_it | x_i, y_i<t) / N`` (N: the response
tokens of the batch, `rl.losses.aggregate_loss`'s token mean). Every design choice the paper
ablates is an override (conf/method/bandit.yaml): method.advantage (none, batch_mean,
group_norm, rloo, gae), method.rollouts_per_query, method.kl_coef, method.clip_range (with
method.policy_loss=ppo_clip), method.reward_shape.
"""

from __future__ import annotations

from reftlab.methods.env import Env, finish_stage, frozen_copy, rl_settings, with_value_head
from reftlab.methods.evaluation import evaluate_final, periodic_evaluation
from reftlab.methods.warmup import warmup
from reftlab.models.value import disable_dropout
from reftlab.stages.rl import train_rl


def train_and_evaluate(env: Env, model) -> dict:
    warm = warmup(env, model)
    model = warm.model

    def policy_gradient() -> dict:
        settings = rl_settings(env, len(env.splits.train))
        # The value head exists only for the advantage=gae ablation.
        policy = with_value_head(env, model) if settings.uses_values else model
        disable_dropout(policy)
        reference = frozen_copy(model) if settings.kl_coef > 0 else None
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
            "policy_gradient",
            engine=env.engine,
            periodic=periodic_evaluation(env, "policy_gradient"),
        )
        return finish_stage(env, "policy_gradient", policy)

    trained = env.ctx.stage("policy_gradient", policy_gradient)
    return evaluate_final(env, trained, warm)
