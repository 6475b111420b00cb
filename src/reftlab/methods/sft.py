"""SFT: fine-tune on the gold CoTs for `method.warmup_epochs` epochs, then evaluate.

    base model --sft--> evaluate

With `method.continue_epochs=N`, the control of an RL run at the same compute: the warm-up the RL
methods start from (the same cached checkpoint when the settings match), then N more epochs of
SFT with a fresh optimizer and learning-rate schedule, as an RL stage starts from it:

    base --sft warm-up--> policy_0 --N more epochs of sft--> evaluate policy_0 and the result
"""

from __future__ import annotations

from reftlab.methods.env import Env, finish_stage
from reftlab.methods.evaluation import evaluate_final
from reftlab.methods.warmup import sft_on_gold, warmup


def train_and_evaluate(env: Env, model) -> dict:
    epochs = env.schedule.continue_epochs
    if not epochs:
        trained = warmup(env, model, stage="sft")
        test = env.ctx.stage("evaluate", lambda: trained.metrics)
        return {
            "test_accuracy": test["eval/accuracy"],
            "answer_reading": env.scorer.fallback,
            **test,
        }
    warm = warmup(env, model)

    def continue_sft() -> dict:
        sft_on_gold(env, warm.model, "sft_continued", epochs)
        return finish_stage(env, "sft_continued", warm.model)

    trained = env.ctx.stage("sft_continued", continue_sft)
    return evaluate_final(env, trained, warm)
