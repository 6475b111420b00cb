"""What every method shares: the environment of a run, the warm-up, evaluation, RL settings."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from reftlab.config import RunConfig
from reftlab.data import CHOICE, Example, format_prompt, format_target
from reftlab.data.splits import Splits, load_splits
from reftlab.errors import ReftlabError
from reftlab.stages.evaluate import Predictions, predict, summarise_predictions
from reftlab.models.value import PolicyWithValue, disable_dropout, make_reference, unwrap_policy
from reftlab.app.plan import Schedule, make_schedule
from reftlab.models.checkpoints import load_base_model, load_checkpoint, save_checkpoint
from reftlab.stages.reward_model import (
    REWARD_HEAD_FILE,
    RewardModel,
    RewardModelSettings,
    load_reward_model,
    make_reranker,
    sample_labelled,
    train_reward_model,
)
from reftlab.runtime import distributed
from reftlab.runtime.context import RunContext, seed_everything
from reftlab.runtime.reuse import cached_stage, stage_key
from reftlab.rewards.scorer import Scorer, make_scorer
from reftlab.stages.rl import RLSettings, rl_steps_for
from reftlab.stages.sft import SFTSettings, train_sft


@dataclass(frozen=True)
class WarmupSource:
    """An SFT warm-up checkpoint and the cache key of everything it depends on."""

    key: str
    folder: Path


@dataclass
class Env:
    """One run's fixed surroundings, built once in `setup` and passed to every stage."""

    run: RunConfig
    schedule: Schedule
    ctx: RunContext
    accelerator: Any
    splits: Splits
    tokenizer: Any
    scorer: Scorer
    run_dir: Path
    # Set by `warmup`: the SFT checkpoint that reranking's reward model is trained from.
    warmup_source: WarmupSource | None = None
    # Set at the first reranked evaluation: eval.reward_model, or the one trained for this run.
    reward_model_dir: Path | None = None

    def prompt(self, example: Example) -> str:
        return format_prompt(self.run.cot.prompt_template, example)

    def target(self, example: Example) -> str:
        return format_target(example, self.run.cot.name)


# Methods whose stages shard their work over processes and grad_accum shards (SFT, RL, eval).
SHARDED_METHODS = ("sft", "reft", "bandit")
# The warm-up's per-problem test results, stored beside its cached weights.
CACHED_PREDICTIONS = "predictions.jsonl"


def make_accelerator(precision: str, deepspeed: str | None = None):
    """Accelerate for this process: data parallel over the processes the launcher started
    (torchrun, or SLURM tasks; gloo on CPU, NCCL on GPUs), mixed precision, and DeepSpeed ZeRO
    when `deepspeed` names a config (GPUs only)."""
    import importlib.util

    from accelerate import Accelerator

    from reftlab.runtime.deepspeed import check_usable, make_plugin

    distributed.init_distributed()
    cuda = torch.cuda.is_available()
    if precision == "auto":
        mixed = "bf16" if cuda and torch.cuda.is_bf16_supported() else "no"
    else:
        mixed = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[precision]
    plugin = None
    if deepspeed is not None:
        check_usable(deepspeed, cuda, importlib.util.find_spec("deepspeed") is not None)
        plugin = make_plugin(deepspeed)
    # step_scheduler_with_optimizer=False: Accelerate would otherwise step a learning-rate
    # schedule once per process per step, for loops that count steps per process; reftlab's
    # steps are global.
    return Accelerator(
        mixed_precision=mixed,
        cpu=not cuda,
        deepspeed_plugin=plugin,
        step_scheduler_with_optimizer=False,
    )


def check_sharding(run: RunConfig, processes: int) -> None:
    """Several processes or grad_accum > 1 only for the methods whose stages shard their work."""
    if processes * run.grad_accum == 1:
        return
    where = f"{processes} process{'es' if processes > 1 else ''}, grad_accum={run.grad_accum}"
    if run.method.name not in SHARDED_METHODS:
        raise ReftlabError(
            f"method={run.method.name} runs in one process with grad_accum=1 ({where}); "
            f"several processes or grad_accum > 1 work with method={', '.join(SHARDED_METHODS)}"
        )
    if run.eval.rerank:
        raise ReftlabError(f"eval.rerank=true runs in one process with grad_accum=1 ({where})")


def setup(run: RunConfig, ctx: RunContext) -> tuple[Env, torch.nn.Module]:
    """Seed, load the data and the base model; return the environment and the base model."""
    # First, so that a set-up that cannot run here (DeepSpeed without GPUs) fails before loading.
    accelerator = make_accelerator(run.precision, run.deepspeed)
    check_sharding(run, accelerator.num_processes)
    seed_everything(run.seed)
    schedule = make_schedule(run)
    splits = load_splits(run)
    for split, source in splits.sources.items():
        print(f"[data] {split}: {len(getattr(splits, split))} examples from {source}", flush=True)
    model, tokenizer = load_base_model(run, splits)
    model.to(accelerator.device)
    scorer = make_scorer(run)
    env = Env(run, schedule, ctx, accelerator, splits, tokenizer, scorer, ctx.run_dir)
    return env, model


def sft_settings(env: Env, epochs: int) -> SFTSettings:
    m = env.run.method
    return SFTSettings(
        epochs=epochs,
        lr=m.sft_lr,
        batch_size=m.sft_batch_size,
        max_length=env.run.model.max_length,
        seed=env.run.seed,
        grad_accum=env.run.grad_accum,
    )


def sft_pairs(env: Env, examples: list[Example]) -> tuple[list[str], list[str]]:
    return [env.prompt(e) for e in examples], [env.target(e) for e in examples]


def evaluate(env: Env, model, name: str) -> dict[str, float]:
    """Evaluate on the test split; predictions go to `predictions/<name>.jsonl`.

    With `eval.samples=k`: maj@k and pass@k; with `eval.rerank=true` also rerank@k (the reward
    model is trained first if the run has none yet); on multiple choice, the hacking check.
    """
    s, e = env.schedule, env.run.eval
    rerank = None
    if e.rerank and s.eval_samples > 1:
        reward_model, rm_tokenizer = load_reward_model(
            resolve_reward_model(env), env.accelerator.device, weights_dtype(env)
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
        samples=s.eval_samples,
        temperature=e.temperature,
        seed=env.run.seed,
        first_index=start,
        rerank=rerank,
        desc=name,
        show_progress=env.ctx.is_main,
    )
    return summarise_predictions(
        Predictions.concatenate(distributed.gather_objects(mine)),
        env.splits.test,
        env.scorer,
        s.eval_samples,
        check_hacking=env.run.dataset.answer_type == CHOICE,
        predictions_path=predictions_file(env, name) if world.is_main else None,
    )


def predictions_file(env: Env, name: str) -> Path:
    return env.run_dir / "predictions" / f"{name}.jsonl"


def weights_dtype(env: Env) -> str:
    return "bfloat16" if env.accelerator.mixed_precision == "bf16" else "float32"


def _capped(value: int, cap: int | None) -> int:
    return value if cap is None else min(value, cap)


def reward_model_settings(env: Env) -> RewardModelSettings:
    e, m, b = env.run.eval, env.run.method, env.run.budget
    return RewardModelSettings(
        samples=_capped(e.rm_samples, b.max_samples_per_question),
        epochs=_capped(e.rm_epochs, b.max_epochs),
        lr=m.sft_lr if e.rm_lr is None else e.rm_lr,
        batch_size=m.sft_batch_size if e.rm_batch_size is None else e.rm_batch_size,
        max_length=env.run.model.max_length,
        max_new_tokens=env.schedule.max_new_tokens,
        seed=env.run.seed,
        generation_batch_size=e.batch_size,
    )


def resolve_reward_model(env: Env) -> Path:
    """The reward model folder: `eval.reward_model`, else the `reward_model` stage's output."""
    if env.reward_model_dir is None:
        given = env.run.eval.reward_model
        if given:
            folder = Path(given).expanduser()
            if not (folder / REWARD_HEAD_FILE).is_file():
                raise ReftlabError(
                    f"eval.reward_model={given} is not a reward model folder (no "
                    f"{REWARD_HEAD_FILE}); point at cache_dir/stages/reward_model-*"
                )
            env.reward_model_dir = folder
        else:
            result = env.ctx.stage("reward_model", lambda: reward_model_stage(env))
            env.reward_model_dir = Path(result["model_dir"])
    return env.reward_model_dir


def reward_model_stage(env: Env) -> dict[str, Any]:
    """Train the reranking reward model from the warm-up (sample, label, fit); reused from the
    cache when a run with the same warm-up and reward-model settings already trained it."""
    source = env.warmup_source
    if source is None:
        raise ReftlabError(
            "eval.rerank=true trains its reward model from the run's SFT warm-up, and none ran "
            "before this evaluation; give eval.reward_model=PATH"
        )
    settings = reward_model_settings(env)
    key = stage_key(
        stage="reward_model", warmup=source.key, settings=settings, precision=env.run.precision
    )

    def build(folder: Path) -> dict[str, Any]:
        device = env.accelerator.device
        sampler = load_checkpoint(source.folder, device)
        samples = sample_labelled(
            sampler,
            env.tokenizer,
            env.splits.train,
            env.prompt,
            env.scorer,
            settings,
            show_progress=env.ctx.is_main,
        )
        del sampler
        reward_model = RewardModel(load_checkpoint(source.folder, device))
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


def warmup_key(env: Env, epochs: int) -> str:
    """Everything the warm-up's weights and its test accuracy depend on."""
    run = env.run
    m = run.method
    return stage_key(
        stage="sft_warmup",
        model=run.model,
        dataset=run.dataset,
        cot=run.cot,
        seed=run.seed,
        epochs=epochs,
        lr=m.sft_lr,
        batch_size=m.sft_batch_size,
        precision=run.precision,
        max_train=run.budget.max_train_examples,
        max_test=run.budget.max_test_examples,
        max_new_tokens=env.schedule.max_new_tokens,
        eval=run.eval,
    )


def warmup(env: Env, model, stage: str = "sft_warmup", epochs: int | None = None):
    """SFT warm-up on the gold CoTs, then its test accuracy; reused from the cache when a run with
    identical upstream settings already trained it. Returns (model, metrics)."""
    epochs = env.schedule.warmup_epochs if epochs is None else epochs
    key = warmup_key(env, epochs)

    def build(folder: Path) -> dict[str, Any]:
        prompts, targets = sft_pairs(env, env.splits.train)
        train_sft(
            model,
            env.tokenizer,
            prompts,
            targets,
            sft_settings(env, epochs),
            env.ctx,
            env.accelerator,
            stage,
        )
        distributed.check_replicas(model, stage)
        # Saved before evaluating: a reranked evaluation trains its reward model from it.
        if env.ctx.is_main:
            save_checkpoint(model, env.tokenizer, folder)
        distributed.barrier()
        env.warmup_source = WarmupSource(key, folder)
        metrics = evaluate(env, model, stage)
        if env.ctx.is_main:  # kept with the weights, for the runs that reuse them
            shutil.copyfile(predictions_file(env, stage), folder / CACHED_PREDICTIONS)
        return {"metrics": metrics, "global_step": env.ctx.global_step}

    def run_stage() -> dict[str, Any]:
        folder, info, reused = cached_stage(Path(env.run.cache_dir), "sft", key, build)
        if reused:
            env.ctx.global_step = max(env.ctx.global_step, info["global_step"])
            cached, target = folder / CACHED_PREDICTIONS, predictions_file(env, stage)
            if env.ctx.is_main and cached.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(cached, target)
            print(
                f"[{stage}] reusing the warm-up trained by an earlier run with identical "
                f"settings: {folder}",
                flush=True,
            )
        env.ctx.log({**info["metrics"], "reused": int(reused)}, stage=stage)
        return {"model_dir": str(folder), "metrics": info["metrics"], "reused": reused}

    result = env.ctx.stage(stage, run_stage)
    env.warmup_source = WarmupSource(key, Path(result["model_dir"]))
    model = load_checkpoint(result["model_dir"], env.accelerator.device)
    return model, result["metrics"]


def rl_settings(env: Env, n_questions: int) -> RLSettings:
    m, s = env.run.method, env.schedule
    return RLSettings(
        steps=rl_steps_for(n_questions, m.batch_size, s.rl_epochs, s.max_rl_steps),
        batch_size=m.batch_size,
        mini_batch_size=m.mini_batch_size,
        rollouts_per_query=m.rollouts_per_query,
        ppo_epochs=m.ppo_epochs,
        lr=m.rl_lr,
        advantage=m.advantage,
        policy_loss=m.policy_loss,
        kl_coef=m.kl_coef,
        kl_estimator=m.kl_estimator,
        kl_penalty=m.kl_penalty,
        gamma=m.gamma,
        lam=m.lam,
        clip_range=m.clip_range,
        value_clip_range=m.value_clip_range,
        vf_coef=m.vf_coef,
        value_lr=m.value_lr,
        whiten_advantages=m.whiten_advantages,
        temperature=m.temperature,
        top_p=m.top_p,
        max_new_tokens=s.max_new_tokens,
        seed=env.run.seed,
        grad_accum=env.run.grad_accum,
    )


def with_value_head(env: Env, model) -> PolicyWithValue:
    """The policy with ReFT's value head (or a separate critic); dropout off, as RL needs
    identical log-probs across the sampling, old, new and reference forward passes."""
    policy = PolicyWithValue(unwrap_policy(model), env.run.method.value_model)
    disable_dropout(policy)
    return policy.to(env.accelerator.device)


def frozen_copy(model) -> torch.nn.Module:
    """The reference model of the KL penalty: a frozen copy of the model RL starts from."""
    return make_reference(model)


def evaluate_final(env: Env, trained: dict, warmup_metrics: dict) -> dict:
    """Evaluate the last stage's checkpoint on the test split: the run's closing metrics."""
    policy = load_checkpoint(trained["model_dir"], env.accelerator.device)
    test = env.ctx.stage("evaluate", lambda: evaluate(env, policy, "evaluate"))
    env.ctx.log(test, stage="evaluate")
    return {
        "test_accuracy": test["eval/accuracy"],
        "warmup_test_accuracy": warmup_metrics["eval/accuracy"],
        **test,
    }


def finish_stage(env: Env, stage: str, model) -> dict[str, str]:
    """Save the stage's final weights in the run dir; a resumed run reloads them from there."""
    folder = env.ctx.checkpoint_dir(stage) / "final"
    distributed.check_replicas(model, stage)
    if env.ctx.is_main:
        save_checkpoint(model, env.tokenizer, folder)
    distributed.barrier()  # the other processes load it next
    return {"model_dir": str(folder)}
