"""The typed run configuration: the schema Hydra composes into, and the checks run before any load.

The YAML files under ``conf/`` hold the values (with a comment above every field); these
dataclasses hold the types and the cross-field rules. Hydra merges the YAML into the schema
registered below, so a wrong type fails at composition; ``validate`` then checks the rules that
span fields and raises ``ConfigError`` with a message that says what to change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from reftlab.errors import ReftlabError

METHODS = ("sft", "reft", "offline_st", "online_st", "prefixrl", "bandit")
COTS = ("natural", "program")
ADVANTAGES = ("gae", "none", "batch_mean", "group_norm", "rloo")
POLICY_LOSSES = ("ppo_clip", "pg")
KL_ESTIMATORS = ("k1", "k2", "k3")
KL_PENALTIES = ("reward", "loss")
VALUE_MODELS = ("head", "separate")
REWARD_SHAPES = ("partial", "binary")
ANSWER_TYPES = ("number", "choice")
MODEL_KINDS = ("tiny", "pretrained")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LOGGERS = ("jsonl", "wandb")
TRACE_SOURCES = ("rejection", "file")
OFFPOLICY_USES = ("prefix", "sft")
RESTARTS = ("base", "warmup")

# The stages each method runs, in order. A stage name is also the key of its checkpoint.
PIPELINES: dict[str, tuple[str, ...]] = {
    "sft": ("sft", "evaluate"),
    "reft": ("sft_warmup", "ppo", "evaluate"),
    "offline_st": ("sft_warmup", "sample_and_filter", "sft_on_samples", "evaluate"),
    "online_st": ("sft_warmup", "online_self_training", "evaluate"),
    "prefixrl": ("sft_warmup", "collect_traces", "prefix_rl", "evaluate"),
    "bandit": ("sft_warmup", "policy_gradient", "evaluate"),
}


def pipeline(m: MethodConfig) -> tuple[str, ...]:
    """The stages a method config runs; PrefixRL's SFT baseline swaps prefixed RL for SFT on
    the traces followed by plain RL."""
    if m.name == "prefixrl" and m.offpolicy_use == "sft":
        return ("sft_warmup", "collect_traces", "sft_on_traces", "rl", "evaluate")
    return PIPELINES[m.name]


class ConfigError(ReftlabError):
    """A configuration a user can fix; the message names the override to change."""


@dataclass
class MethodConfig:
    name: str = MISSING
    # SFT (warm-up or the whole method for `sft`)
    warmup_epochs: int = 2
    sft_lr: float = 1e-5
    sft_batch_size: int = 48
    # RL schedule
    rl_epochs: int = 1
    rl_lr: float = 3e-7
    batch_size: int = 32
    mini_batch_size: int = 32
    # RL design choices (the knobs the bandit paper ablates)
    rollouts_per_query: int = 1
    advantage: str = "gae"
    policy_loss: str = "ppo_clip"
    reward_shape: str = "partial"
    partial_reward: float = 0.1
    kl_coef: float = 0.05
    kl_estimator: str = "k1"
    kl_penalty: str = "reward"
    gamma: float = 1.0
    lam: float = 0.95
    clip_range: float | None = 0.2
    value_clip_range: float | None = 0.2
    vf_coef: float = 5.0
    value_lr: float | None = None
    ppo_epochs: int = 2
    value_model: str = "head"
    whiten_advantages: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    # self-training (offline_st, online_st)
    samples_per_question: int = 100
    keep_correct: int = 100
    restart_from: str = "base"
    mix_gold: bool = True
    # PrefixRL
    trace_source: str = "rejection"
    trace_file: str | None = None
    rejection_samples: int = 8
    # rejection traces: a problem is hard (gets prefixes) when 0 < its pass rate <= this
    hard_max_pass_rate: float = 0.5
    prefix_min_frac: float = 0.4
    prefix_max_frac: float = 0.8
    plain_fraction: float = 0.5
    offpolicy_use: str = "prefix"


@dataclass
class CotConfig:
    name: str = MISSING
    prompt_template: str = MISSING
    answer_markers: list[str] = field(default_factory=lambda: ["the answer is", "####"])
    answer_fallback: str = "last_number"
    program_timeout_s: float = 2.0


@dataclass
class DatasetConfig:
    name: str = MISSING
    answer_type: str = "number"
    hub_id: str | None = None
    hub_config: str | None = None
    path: str | None = None
    train_file: str | None = None
    test_file: str | None = None
    # arith only: the synthetic generator's sizes and seed
    train_size: int = 0
    test_size: int = 0
    generator_seed: int = 0
    max_steps: int = 3
    # arith only: number ranges (null: the generator's defaults) and the share of problems with
    # a distractor sentence about someone else
    max_start: int | None = None
    max_operand: int | None = None
    max_value: int | None = None
    distractor_rate: float = 0.0
    # arith only: the share of solutions that state the answer without working
    direct_answer_rate: float = 0.0


@dataclass
class ModelConfig:
    name: str = MISSING
    kind: str = "pretrained"
    path: str | None = None
    gguf_file: str | None = None
    gguf_package: str | None = None
    trust_remote_code: bool = False
    # tiny only: the architecture built from a config, and the tokenizer trained offline
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 512
    vocab_size: int = 512
    max_length: int = 256
    max_new_tokens: int = 256


@dataclass
class BudgetConfig:
    name: str = "full"
    # Caps applied on top of the schedule; null means "no cap".
    max_train_examples: int | None = None
    max_test_examples: int | None = None
    max_epochs: int | None = None
    max_rl_steps: int | None = None
    max_new_tokens: int | None = None
    max_samples_per_question: int | None = None


@dataclass
class EvalConfig:
    samples: int = 1
    temperature: float = 1.0
    rerank: bool = False
    batch_size: int = 64
    # Reranking: a trained reward model folder, or null to train one from the run's warm-up.
    reward_model: str | None = None
    rm_samples: int = 100
    rm_epochs: int = 2
    # null: the method's SFT learning rate and batch size.
    rm_lr: float | None = None
    rm_batch_size: int | None = None


@dataclass
class LoggerConfig:
    name: str = "jsonl"
    project: str = "reftlab"
    mode: str = "offline"
    entity: str | None = None


@dataclass
class RunConfig:
    method: MethodConfig = MISSING
    cot: CotConfig = MISSING
    dataset: DatasetConfig = MISSING
    model: ModelConfig = MISSING
    budget: BudgetConfig = MISSING
    logger: LoggerConfig = MISSING
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    precision: str = "auto"
    dry_run: bool = False
    resume: bool = False
    save_every: int = 0
    # Each optimizer step's batch is split into (processes x grad_accum) shards.
    grad_accum: int = 1
    # DeepSpeed config for multi-GPU runs: null, a shipped name (zero2) or a JSON path.
    deepspeed: str | None = None
    cache_dir: str = "~/.cache/reftlab"
    output_dir: str = "."


def register_configs() -> None:
    """Register the schema so that `conf/config.yaml` can list it first in its defaults."""
    ConfigStore.instance().store(name="reftlab_schema", node=RunConfig)


def to_run_config(cfg: DictConfig) -> RunConfig:
    """Convert the composed DictConfig once, at the entry point, into the typed object."""
    run = OmegaConf.to_object(cfg)
    assert isinstance(run, RunConfig)
    return run


def _one_of(value: Any, choices: tuple[str, ...], key: str) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value} is not valid; choose one of: {', '.join(choices)}")


def _positive(value: float | None, key: str) -> None:
    if value is not None and value <= 0:
        raise ConfigError(f"{key}={value} must be > 0")


def validate(run: RunConfig) -> None:
    """Check the rules that span fields, before any model or data set is loaded."""
    m, d = run.method, run.dataset
    _one_of(m.name, METHODS, "method")
    _one_of(run.cot.name, COTS, "cot")
    _one_of(d.answer_type, ANSWER_TYPES, "dataset.answer_type")
    _one_of(run.model.kind, MODEL_KINDS, "model.kind")
    _one_of(m.advantage, ADVANTAGES, "method.advantage")
    _one_of(m.policy_loss, POLICY_LOSSES, "method.policy_loss")
    _one_of(m.kl_estimator, KL_ESTIMATORS, "method.kl_estimator")
    _one_of(m.kl_penalty, KL_PENALTIES, "method.kl_penalty")
    _one_of(m.value_model, VALUE_MODELS, "method.value_model")
    _one_of(m.reward_shape, REWARD_SHAPES, "method.reward_shape")
    _one_of(m.trace_source, TRACE_SOURCES, "method.trace_source")
    _one_of(m.offpolicy_use, OFFPOLICY_USES, "method.offpolicy_use")
    _one_of(m.restart_from, RESTARTS, "method.restart_from")
    _one_of(run.precision, PRECISIONS, "precision")
    _one_of(run.logger.name, LOGGERS, "logger")
    _one_of(run.cot.answer_fallback, ("last_number", "none"), "cot.answer_fallback")

    for key in (
        "sft_lr",
        "rl_lr",
        "sft_batch_size",
        "batch_size",
        "mini_batch_size",
        "rollouts_per_query",
        "ppo_epochs",
        "temperature",
        "samples_per_question",
        "rejection_samples",
    ):
        _positive(getattr(m, key), f"method.{key}")
    _positive(m.clip_range, "method.clip_range")
    _positive(m.value_clip_range, "method.value_clip_range")
    _positive(m.value_lr, "method.value_lr")
    _positive(run.eval.samples, "eval.samples")
    if m.warmup_epochs < 0 or m.rl_epochs < 0:
        raise ConfigError("method.warmup_epochs and method.rl_epochs must be >= 0")
    if not 0.0 <= m.partial_reward < 1.0:
        raise ConfigError(f"method.partial_reward={m.partial_reward} must lie in [0, 1)")
    if m.kl_coef < 0:
        raise ConfigError(f"method.kl_coef={m.kl_coef} must be >= 0")
    if not 0.0 <= m.gamma <= 1.0 or not 0.0 <= m.lam <= 1.0:
        raise ConfigError("method.gamma and method.lam must lie in [0, 1]")
    if not 0.0 < m.top_p <= 1.0:
        raise ConfigError(f"method.top_p={m.top_p} must lie in (0, 1]")
    if m.advantage in ("group_norm", "rloo") and m.rollouts_per_query < 2:
        raise ConfigError(
            f"method.advantage={m.advantage} compares rollouts of the same question; "
            f"set method.rollouts_per_query to 2 or more (it is {m.rollouts_per_query})"
        )
    if m.mini_batch_size > m.batch_size * m.rollouts_per_query:
        raise ConfigError(
            f"method.mini_batch_size={m.mini_batch_size} exceeds the rollouts per step "
            f"(method.batch_size x method.rollouts_per_query = "
            f"{m.batch_size * m.rollouts_per_query}); lower it"
        )
    if not 0.0 <= m.prefix_min_frac <= m.prefix_max_frac <= 1.0:
        raise ConfigError(
            "PrefixRL cuts traces at a fraction in [method.prefix_min_frac, "
            "method.prefix_max_frac]; need 0 <= min <= max <= 1"
        )
    if not 0.0 <= m.plain_fraction <= 1.0:
        raise ConfigError(f"method.plain_fraction={m.plain_fraction} must lie in [0, 1]")
    if not 0.0 <= m.hard_max_pass_rate <= 1.0:
        raise ConfigError(f"method.hard_max_pass_rate={m.hard_max_pass_rate} must lie in [0, 1]")
    if m.keep_correct < 0:
        raise ConfigError(f"method.keep_correct={m.keep_correct} must be >= 0 (0: gold only)")
    if m.name == "prefixrl" and m.trace_file and m.trace_source != "file":
        raise ConfigError(
            "method.trace_file is read only with method.trace_source=file; add that override "
            "or drop method.trace_file"
        )
    if m.name == "prefixrl" and m.trace_source == "file" and not m.trace_file:
        raise ConfigError(
            "method.trace_source=file needs method.trace_file=PATH (a JSONL of traces)"
        )
    if m.name == "sft" and m.warmup_epochs == 0:
        raise ConfigError(
            "method=sft with method.warmup_epochs=0 trains nothing; set it to 1 or more"
        )
    if run.eval.rerank and run.eval.samples < 2:
        raise ConfigError(
            "eval.rerank=true picks the best of several samples; set eval.samples >= 2"
        )
    for key in ("rm_samples", "rm_epochs", "rm_lr", "rm_batch_size"):
        _positive(getattr(run.eval, key), f"eval.{key}")
    if run.eval.reward_model and not run.eval.rerank:
        raise ConfigError(
            "eval.reward_model is only used to rerank samples; add eval.rerank=true "
            "eval.samples=K (K >= 2), or drop eval.reward_model"
        )
    if d.name == "arith" and (d.train_size <= 0 or d.test_size <= 0):
        raise ConfigError("dataset=arith needs dataset.train_size and dataset.test_size > 0")
    if d.name != "arith" and not (d.hub_id or d.path or d.test_file):
        raise ConfigError(
            f"dataset={d.name} has no Hub copy; point at local files with dataset.path=DIR "
            f"or dataset.train_file=FILE dataset.test_file=FILE"
        )
    if d.path and (d.train_file or d.test_file):
        raise ConfigError(
            "give either dataset.path=DIR (a folder with the usual split names) or "
            "dataset.train_file/dataset.test_file, not both"
        )
    _check_scale_out(run)
    if run.model.kind == "pretrained" and not run.model.path:
        raise ConfigError(f"model={run.model.name} needs model.path (a Hub id or a local folder)")


def _check_scale_out(run: RunConfig) -> None:
    """grad_accum and deepspeed; the number of processes is only known when the job starts."""
    if run.grad_accum < 1:
        raise ConfigError(f"grad_accum={run.grad_accum} must be >= 1")
    if run.save_every < 0:
        raise ConfigError(f"save_every={run.save_every} must be >= 0 (0: only at stage ends)")
    if run.deepspeed is None:
        return
    from reftlab.runtime.deepspeed import load_config

    try:
        load_config(run.deepspeed)
    except ReftlabError as exc:
        raise ConfigError(str(exc)) from None
    if run.grad_accum > 1:
        raise ConfigError(
            "deepspeed steps the optimizer at every backward pass; set grad_accum=1 (use more "
            "GPUs for a larger effective batch) or drop deepspeed="
        )
