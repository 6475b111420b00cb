"""Evaluating a method's models on the test split: greedy accuracy, voting, reranking.

Reranking needs a reward model: `eval.reward_model`, or one trained from the run's SFT warm-up
as the `reward_model` stage (cached, so runs with the same warm-up share it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reftlab.data import CHOICE
from reftlab.errors import ReftlabError
from reftlab.methods.env import Env, Warmup, WarmupSource, weights_dtype
from reftlab.methods.schedule import capped
from reftlab.models.checkpoints import load_checkpoint
from reftlab.models.value import unwrap_policy
from reftlab.runtime import distributed
from reftlab.runtime.loop import Periodic
from reftlab.runtime.reuse import cached_stage, stage_key
from reftlab.stages.compare import paired_gain
from reftlab.stages.evaluate import Predictions, predict, summarise_predictions
from reftlab.stages.reward_model import (
    REWARD_HEAD_FILE,
    RewardModel,
    RewardModelSettings,
    load_reward_model,
    make_reranker,
    sample_labelled,
    train_reward_model,
)

REWARD_MODEL_STAGE = "reward_model"
# The warm-up's stage name in every method that starts from one (its predictions file's name).
WARMUP_STAGE = "sft_warmup"


def predictions_file(env: Env, name: str) -> Path:
    return env.run_dir / "predictions" / f"{name}.jsonl"


def evaluate(
    env: Env, model, name: str, warmup: WarmupSource | None, greedy_only: bool = False
) -> dict[str, float]:
    """Evaluate on the test split; predictions go to `predictions/<name>.jsonl`.

    With `eval.samples=k`: maj@k and pass@k; with `eval.rerank=true` also rerank@k (the reward
    model is trained from `warmup` first if the run has none yet); on multiple choice, the
    hacking check. `greedy_only`: greedy accuracy alone (the evaluations during training).
    """
    s, e = env.schedule, env.run.eval
    samples = 1 if greedy_only else s.eval_samples
    rerank = None
    if e.rerank and samples > 1:
        reward_model, rm_tokenizer = load_reward_model(
            reward_model_folder(env, warmup), env.accelerator.device, weights_dtype(env)
        )
        rerank = make_reranker(reward_model, rm_tokenizer, e.batch_size, env.run.model.max_length)
    # Each process predicts its slice of the test split; every process then holds them all and
    # computes the same metrics; rank 0 writes the predictions.
    world = distributed.current_world()
    start, end = distributed.shard_bounds(len(env.splits.test), world.size)[world.rank]
    mine = predict(
        unwrap_policy(model),
        env.tokenizer,
        env.splits.test[start:end],
        env.prompt,
        env.scorer,
        batch_size=e.batch_size,
        max_new_tokens=s.max_new_tokens,
        samples=samples,
        temperature=e.temperature,
        seed=env.run.seed,
        first_index=start,
        rerank=rerank,
        desc=name,
        show_progress=env.ctx.is_main,
        engine=env.engine,
    )
    return summarise_predictions(
        Predictions.concatenate(distributed.gather_objects(mine)),
        env.splits.test,
        env.scorer,
        samples,
        check_hacking=env.splits.answer_type == CHOICE,
        predictions_path=predictions_file(env, name) if world.is_main else None,
    )


def periodic_evaluation(env: Env, stage: str, at_start: bool = False) -> Periodic | None:
    """`budget.eval_every`: greedy test accuracy every so many optimizer steps of `stage`
    (logged as `eval/accuracy` at that step), predictions in `predictions/<stage>-step<N>.jsonl`;
    `at_start`: also before its first step (step0: the model the stage starts from). Greedy
    decoding draws no random numbers, so the training run is the same with or without."""
    every = env.run.budget.eval_every
    if not every:
        return None

    def call(model, stage_step: int) -> dict[str, float]:
        lm = env.accelerator.unwrap_model(model)
        return evaluate(env, lm, f"{stage}-step{stage_step}", None, greedy_only=True)

    return Periodic(every, call, at_start)


def evaluate_final(env: Env, trained: dict, warmup: Warmup) -> dict:
    """Evaluate the last stage's checkpoint on the test split: the run's closing metrics, with
    the gain over the warm-up and its 95% paired-bootstrap interval over the test problems, and
    the reward's answer reading (`answer_reading`, written to summary.json)."""
    policy = load_checkpoint(trained["model_dir"], env.accelerator.device)

    def run_stage() -> dict[str, float]:
        metrics = evaluate(env, policy, "evaluate", warmup.source)
        return {**metrics, **gain_over_warmup(env)}

    test = env.ctx.stage("evaluate", run_stage)
    env.ctx.log(test, stage="evaluate")
    return {
        "test_accuracy": test["eval/accuracy"],
        "warmup_test_accuracy": warmup.metrics["eval/accuracy"],
        # How the reward read answers (`cot.answer_fallback`), next to the accuracies it gave.
        "answer_reading": env.scorer.fallback,
        **test,
    }


def gain_over_warmup(env: Env) -> dict[str, float]:
    """`eval/gain_over_warmup` (accuracy after minus the warm-up's, problem by problem), its 95%
    interval (`_ci_low`, `_ci_high`) and the problems fixed and broken; {} on the processes that
    do not write predictions, or when the warm-up's are missing."""
    files = [predictions_file(env, name) for name in (WARMUP_STAGE, "evaluate")]
    if not env.ctx.is_main or not all(f.is_file() for f in files):
        return {}
    before, after = (correct_by_id(f) for f in files)
    gain = paired_gain(before, after, seed=env.run.seed)
    return {} if gain is None else gain.as_metrics("eval/gain_over_warmup")


def correct_by_id(path: Path) -> dict[str, bool]:
    """Whether each test problem's greedy answer in a predictions file is right."""
    rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {str(row["id"]): bool(row["correct"]) for row in rows}


def reward_model_settings(env: Env) -> RewardModelSettings:
    e, m, b = env.run.eval, env.run.method, env.run.budget
    return RewardModelSettings(
        samples=capped(e.rm_samples, b.max_samples_per_question),
        epochs=capped(e.rm_epochs, b.max_epochs),
        lr=m.sft_lr if e.rm_lr is None else e.rm_lr,
        batch_size=m.sft_batch_size if e.rm_batch_size is None else e.rm_batch_size,
        max_length=env.run.model.max_length,
        max_new_tokens=env.schedule.max_new_tokens,
        seed=env.run.seed,
        generation_batch_size=e.batch_size,
    )


def reward_model_folder(env: Env, warmup: WarmupSource | None) -> Path:
    """The reward model folder: `eval.reward_model`, else the `reward_model` stage's output
    (trained at the run's first reranked evaluation, from `warmup`)."""
    given = env.run.eval.reward_model
    if given:
        folder = Path(given).expanduser()
        if not (folder / REWARD_HEAD_FILE).is_file():
            raise ReftlabError(
                f"eval.reward_model={given} is not a reward model folder (no "
                f"{REWARD_HEAD_FILE}); point at cache_dir/stages/reward_model-*"
            )
        return folder
    done = env.ctx.completed.get(REWARD_MODEL_STAGE)
    if done is not None:  # trained for an earlier evaluation of this run
        return Path(done["result"]["model_dir"])
    result = env.ctx.stage(REWARD_MODEL_STAGE, lambda: reward_model_stage(env, warmup))
    return Path(result["model_dir"])


def reward_model_stage(env: Env, warmup: WarmupSource | None) -> dict[str, Any]:
    """Train the reranking reward model from the warm-up (sample, label, fit); reused from the
    cache when a run with the same warm-up and reward-model settings already trained it."""
    if warmup is None:
        raise ReftlabError(
            "eval.rerank=true trains its reward model from the run's SFT warm-up, and none ran "
            "before this evaluation; give eval.reward_model=PATH"
        )
    settings = reward_model_settings(env)
    key = stage_key(
        stage="reward_model", warmup=warmup.key, settings=settings, precision=env.run.precision
    )

    def build(folder: Path) -> dict[str, Any]:
        device = env.accelerator.device
        sampler = load_checkpoint(warmup.folder, device)
        samples = sample_labelled(
            sampler,
            env.tokenizer,
            env.splits.train,
            env.prompt,
            env.scorer,
            settings,
            show_progress=env.ctx.is_main,
            engine=env.engine,
        )
        del sampler
        reward_model = RewardModel(load_checkpoint(warmup.folder, device))
        metrics = train_reward_model(
            reward_model, env.tokenizer, samples, settings, env.ctx, env.accelerator
        )
        reward_model.save_pretrained(folder, env.tokenizer)
        return {"metrics": metrics}

    folder, info, reused = cached_stage(Path(env.run.cache_dir), "reward_model", key, build)
    if reused:
        print(f"[reward_model] reusing the reward model of an earlier run: {folder}", flush=True)
    env.ctx.log({**info["metrics"], "reused": int(reused)}, stage="reward_model")
    return {"model_dir": str(folder), "metrics": info["metrics"], "reused": reused}
