"""A run's fixed surroundings (`Env`), built once by `setup`, and the settings each stage gets.

The methods are the one layer that reads the `RunConfig`; every stage below gets a plain settings
object built here from its config node, never the whole config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from reftlab.config import RunConfig
from reftlab.data import Example, format_prompt, format_target
from reftlab.data.splits import Splits
from reftlab.errors import ReftlabError
from reftlab.methods.inputs import fit_to_context, load_run_splits, make_scorer
from reftlab.methods.registry import METHODS, get_method
from reftlab.methods.schedule import Schedule, make_schedule, rl_steps_for
from reftlab.models.checkpoints import load_base_model, save_checkpoint
from reftlab.models.value import PolicyWithValue, disable_dropout, make_reference, unwrap_policy
from reftlab.rewards.scorer import Scorer
from reftlab.runtime import distributed
from reftlab.runtime.context import RunContext, seed_everything
from reftlab.stages.engines import (
    HF,
    STATIC,
    RolloutEngine,
    VLLMSettings,
    check_engine_available,
)
from reftlab.stages.rl import RLSettings
from reftlab.stages.sampling import SamplingSettings
from reftlab.stages.sft import SFTSettings

Settings = TypeVar("Settings")


@dataclass(frozen=True)
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
    # What every stage samples with (`rollout.engine`): transformers' generate, or colocated vLLM.
    engine: RolloutEngine

    def prompt(self, example: Example) -> str:
        return format_prompt(self.run.cot.prompt_template, example)

    def target(self, example: Example) -> str:
        return format_target(example, self.run.cot.name)


@dataclass(frozen=True)
class WarmupSource:
    """An SFT warm-up checkpoint and the cache key of everything it depends on."""

    key: str
    folder: Path


@dataclass(frozen=True)
class Warmup:
    """The warmed-up model, its test metrics, and where its weights are (reranking's reward
    model is trained from them)."""

    model: torch.nn.Module
    metrics: dict[str, float]
    source: WarmupSource


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
    if not get_method(run.method.name).sharded:
        sharded = [name for name, spec in METHODS.items() if spec.sharded]
        raise ReftlabError(
            f"method={run.method.name} runs in one process with grad_accum=1 ({where}); "
            f"several processes or grad_accum > 1 work with method={', '.join(sharded)}"
        )
    if run.eval.rerank:
        raise ReftlabError(f"eval.rerank=true runs in one process with grad_accum=1 ({where})")


def load_run_model(run: RunConfig, splits: Splits):
    """(model, tokenizer) of the run's `model` node; the tiny one's tokenizer learns `splits`."""
    return load_base_model(run.model, splits.texts(), run.cache_dir, run.precision, run.seed)


def setup(run: RunConfig, ctx: RunContext) -> tuple[Env, torch.nn.Module]:
    """Seed, load the data and the base model; return the environment and the base model."""
    # First, so that a set-up that cannot run here (DeepSpeed without GPUs) fails before loading.
    accelerator = make_accelerator(run.precision, run.deepspeed)
    check_sharding(run, accelerator.num_processes)
    seed_everything(run.seed)
    schedule = make_schedule(run)
    splits = load_run_splits(run)
    for split, source in splits.sources.items():
        print(f"[data] {split}: {len(getattr(splits, split))} examples from {source}", flush=True)
    model, tokenizer = load_run_model(run, splits)
    splits = fit_to_context(run, splits, tokenizer)
    model.to(accelerator.device)
    scorer = make_scorer(run)
    engine = make_run_engine(run, accelerator.mixed_precision, model)
    env = Env(run, schedule, ctx, accelerator, splits, tokenizer, scorer, ctx.run_dir, engine)
    return env, model


def make_run_engine(run: RunConfig, mixed_precision: str, model) -> RolloutEngine:
    """The `rollout` node's engine for `model`. vLLM starts lazily, at its first sample, from the
    weights of the model it samples; it computes in bf16 when training does
    (`rollout.vllm.dtype=auto`)."""
    r = run.rollout
    check_engine_available(r.engine)
    if r.engine == "hf":
        return HF
    if r.engine == "static":
        from reftlab.models.value import unwrap_policy
        from reftlab.stages.static_decoder import check_supported

        check_supported(unwrap_policy(model))
        return STATIC
    from reftlab.stages.vllm_engine import VLLMEngine

    dtype = "bfloat16" if r.vllm.dtype == "auto" and mixed_precision == "bf16" else r.vllm.dtype
    return VLLMEngine(settings_from(r.vllm, VLLMSettings, dtype=dtype, seed=run.seed))


def settings_from(node: Any, settings: type[Settings], **given: Any) -> Settings:
    """`settings` built from the same-named fields of the config `node`, then from `given` (the
    values derived from other nodes, and fields named differently in the config)."""
    names = {f.name for f in dataclasses.fields(settings)}
    taken = {f.name: getattr(node, f.name) for f in dataclasses.fields(node) if f.name in names}
    return settings(**{**taken, **given})


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


def sampling_settings(env: Env, samples: int) -> SamplingSettings:
    """`samples` solutions per question at the method's temperature and top-p."""
    m = env.run.method
    return SamplingSettings(
        samples=samples,
        temperature=m.temperature,
        top_p=m.top_p,
        max_new_tokens=env.schedule.max_new_tokens,
        seed=env.run.seed,
        questions_per_batch=env.run.eval.batch_size,
    )


def rl_settings(env: Env, n_questions: int) -> RLSettings:
    """The RL engine's settings: the `method` node's RL knobs, and the schedule's numbers."""
    m, s = env.run.method, env.schedule
    return settings_from(
        m,
        RLSettings,
        steps=rl_steps_for(n_questions, m.batch_size, s.rl_epochs, s.max_rl_steps),
        lr=m.rl_lr,
        max_new_tokens=s.max_new_tokens,
        seed=env.run.seed,
        grad_accum=env.run.grad_accum,
        tis_cap=env.run.rollout.tis_cap,
    )


def weights_dtype(env: Env) -> str:
    return "bfloat16" if env.accelerator.mixed_precision == "bf16" else "float32"


def with_value_head(env: Env, model) -> PolicyWithValue:
    """The policy with ReFT's value head (or a separate critic); dropout off, as RL needs
    identical log-probs across the sampling, old, new and reference forward passes."""
    policy = PolicyWithValue(unwrap_policy(model), env.run.method.value_model)
    disable_dropout(policy)
    return policy.to(env.accelerator.device)


def frozen_copy(model) -> torch.nn.Module:
    """The reference model of the KL penalty: a frozen copy of the model RL starts from."""
    return make_reference(model)


def finish_stage(env: Env, stage: str, model) -> dict[str, str]:
    """Save the stage's final weights in the run dir; a resumed run reloads them from there."""
    folder = env.ctx.checkpoint_dir(stage) / "final"
    distributed.check_replicas(model, stage)
    if env.ctx.is_main:
        save_checkpoint(model, env.tokenizer, folder)
    distributed.barrier()  # the other processes load it next
    return {"model_dir": str(folder)}
