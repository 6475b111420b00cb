"""SFT: fine-tune on the gold CoTs for `method.warmup_epochs` epochs, then evaluate.

base model --sft--> evaluate
"""

from __future__ import annotations

from reftlab.methods.common import Env, warmup


def run(env: Env, model) -> dict:
    model, sft_metrics = warmup(env, model, stage="sft")
    test = env.ctx.stage("evaluate", lambda: sft_metrics)
    return {"test_accuracy": test["eval/accuracy"], **test}
