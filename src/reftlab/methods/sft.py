"""SFT: fine-tune on the gold CoTs for `method.warmup_epochs` epochs, then evaluate.

base model --sft--> evaluate
"""

from __future__ import annotations

from reftlab.methods.env import Env
from reftlab.methods.warmup import warmup


def train_and_evaluate(env: Env, model) -> dict:
    trained = warmup(env, model, stage="sft")
    test = env.ctx.stage("evaluate", lambda: trained.metrics)
    return {"test_accuracy": test["eval/accuracy"], **test}
