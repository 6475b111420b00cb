"""The typed run configuration: the schema Hydra composes into, and the checks run before any load.

The YAML files under `conf/` hold the values (with a comment above every field); these
dataclasses hold the types and the rules. A method's schema is built from nodes, one per kind of
stage it runs (`SFTNode`, `RLNode`, `OnlineSTNode`, `PrefixNode`, ...), so a knob of another
method fails at composition, and each node checks its own fields (`Node.check`). Names that an
engine registry owns (advantage estimators, policy losses, KL estimators, data sets) are checked
against that registry, never against a copy here. `validate` runs every node's checks and those
that span nodes, and raises `ConfigError` with a message that says what to change.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from reftlab.errors import ReftlabError

COTS = ("natural", "program")
KL_PENALTIES = ("reward", "loss")
REWARD_SHAPES = ("partial", "binary")
MODEL_KINDS = ("tiny", "pretrained")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LOGGERS = ("jsonl", "wandb")
TRACE_SOURCES = ("rejection", "file")
OFFPOLICY_USES = ("prefix", "sft", "none")
RESTARTS = ("base", "warmup")
ROLLOUT_ENGINES = ("hf", "static", "vllm")
VLLM_DTYPES = ("auto", "float32", "bfloat16", "float16")


class ConfigError(ReftlabError):
    """A configuration a user can fix; the message names the override to change."""


def one_of(value: Any, choices: Iterable[str], key: str) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{key}={value} is not valid; choose one of: {', '.join(choices)}")


@dataclass(frozen=True)
class Range:
    """The values a numeric knob may take: finite, and between `low` and `high` (either end
    open-ended when None, excluded when `*_open`). `note` says what an edge value means."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    note: str = ""

    def text(self) -> str:
        """`be > 0`, `be >= 1`, `lie in [0, 1)`: the phrase the error messages use."""
        if self.high is None:
            return f"be {'>' if self.low_open else '>='} {_num(self.low)}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"lie in {left}{_num(self.low)}, {_num(self.high)}{right}"

    def admits(self, value: float) -> bool:
        low, high = self.low, self.high
        above = low is None or (value > low if self.low_open else value >= low)
        below = high is None or (value < high if self.high_open else value <= high)
        return above and below

    def check(self, value: float, key: str) -> None:
        note = f" ({self.note})" if self.note else ""
        if not math.isfinite(value):
            raise ConfigError(f"{key}={value} is not a finite number; it must {self.text()}{note}")
        if not self.admits(value):
            raise ConfigError(f"{key}={value} must {self.text()}{note}")


def _num(x: float | None) -> str:
    return "-inf" if x is None else str(int(x)) if float(x).is_integer() else str(x)


def knob(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    note: str = "",
    **kwargs: Any,
) -> Any:
    """A numeric field and its `Range` (`ge`/`gt`: lower bound, `le`/`lt`: upper), which
    `check_ranges` enforces; every int and float field of the schema is declared with one."""
    low = gt if gt is not None else ge
    high = lt if lt is not None else le
    allowed = Range(low, high, gt is not None, lt is not None, note)
    return field(default=default, metadata={"range": allowed}, **kwargs)


SEED_MAX = 2**32 - 1  # numpy's seeds are 32-bit


def check_ranges(node: Any, prefix: str = "") -> None:
    """Check every field declared with `knob` in `node` and the nodes below it (None: unset)."""
    for f in dataclasses.fields(node):
        value, key = getattr(node, f.name), prefix + f.name
        if dataclasses.is_dataclass(value):
            check_ranges(value, f"{key}.")
        elif "range" in f.metadata and value is not None:
            f.metadata["range"].check(value, key)


class Node:
    """A typed config node that checks its own fields. Nodes combine by inheritance into a
    method's schema; each `check` calls `super().check()`, so every node's rules run once."""

    def check(self) -> None:
        """Raise `ConfigError`, naming the override to change, if a rule is broken."""


# --- method nodes, one per kind of stage; a method's schema inherits the ones it runs ---


@dataclass
class MethodConfig(Node):
    """What every method has: its name and the outcome reward its stages and evaluation use."""

    name: str = MISSING
    reward_shape: str = "partial"
    partial_reward: float = knob(0.1, ge=0, lt=1)

    def check(self) -> None:
        super().check()
        one_of(self.reward_shape, REWARD_SHAPES, "method.reward_shape")


@dataclass
class SFTNode(Node):
    """Supervised fine-tuning on the gold CoTs: the warm-up, or the whole of `method=sft`."""

    warmup_epochs: int = knob(2, ge=0)
    sft_lr: float = knob(1e-5, gt=0)
    sft_batch_size: int = knob(48, gt=0)


@dataclass
class SamplingNode(Node):
    """How a stage samples solutions from the policy."""

    temperature: float = knob(1.0, gt=0)
    top_p: float = knob(1.0, gt=0, le=1)


@dataclass
class OnPolicyNode(SamplingNode):
    """The schedule of a loop that samples from the current policy and updates it."""

    rl_epochs: int = knob(1, ge=0)
    rl_lr: float = knob(3e-7, gt=0)
    batch_size: int = knob(32, gt=0)
    mini_batch_size: int = knob(32, gt=0)
    rollouts_per_query: int = knob(1, gt=0)

    def check(self) -> None:
        super().check()
        rollouts = self.batch_size * self.rollouts_per_query
        if self.mini_batch_size > rollouts:
            raise ConfigError(
                f"method.mini_batch_size={self.mini_batch_size} exceeds the rollouts per step "
                f"(method.batch_size x method.rollouts_per_query = {rollouts}); lower it"
            )


@dataclass
class RLNode(OnPolicyNode):
    """The RL engine's design choices (the knobs the bandit paper ablates)."""

    advantage: str = "gae"
    policy_loss: str = "ppo_clip"
    kl_coef: float = knob(0.05, ge=0)
    kl_estimator: str = "k1"
    kl_penalty: str = "reward"
    gamma: float = knob(1.0, ge=0, le=1)
    lam: float = knob(0.95, ge=0, le=1)
    clip_range: float | None = knob(0.2, gt=0)
    value_clip_range: float | None = knob(0.2, gt=0)
    vf_coef: float = knob(5.0, ge=0)
    value_lr: float | None = knob(None, gt=0)
    ppo_epochs: int = knob(2, gt=0)
    value_model: str = "head"
    # Whiten advantages over the whole step's batch, across shards and processes (ReFT's code).
    whiten_advantages: bool = True
    # How each loss term averages its tokens: seq_mean (per response, then over responses; the
    # ReFT code) or token_mean (over every token of the minibatch).
    loss_agg: str = "seq_mean"
    # Rollouts per forward/backward pass inside a minibatch (memory only; same gradients).
    micro_batch_size: int | None = knob(None, gt=0)

    def check(self) -> None:
        super().check()
        # The registries in `reftlab.rl` are the one list of each kind of name.
        from reftlab.rl.registry import (
            ADVANTAGE_ESTIMATORS,
            KL_ESTIMATORS,
            LOSS_AGGREGATIONS,
            POLICY_LOSSES,
            VALUE_MODELS,
        )

        one_of(self.advantage, ADVANTAGE_ESTIMATORS, "method.advantage")
        one_of(self.policy_loss, POLICY_LOSSES, "method.policy_loss")
        one_of(self.kl_estimator, KL_ESTIMATORS, "method.kl_estimator")
        one_of(self.kl_penalty, KL_PENALTIES, "method.kl_penalty")
        one_of(self.value_model, VALUE_MODELS, "method.value_model")
        one_of(self.loss_agg, LOSS_AGGREGATIONS, "method.loss_agg")
        if self.kl_coef > 0 and self.kl_penalty == "loss" and self.kl_estimator == "k1":
            # k1's gradient is the score function alone: zero in expectation over the policy's
            # samples, and on a batch it pushes the policy away from the reference.
            raise ConfigError(
                "method.kl_penalty=loss with method.kl_estimator=k1 pulls the policy away from "
                "the reference; use kl_estimator=k3 (or k2) in the loss, or kl_penalty=reward"
            )
        needed = ADVANTAGE_ESTIMATORS[self.advantage].min_rollouts_per_query
        if self.rollouts_per_query < needed:
            raise ConfigError(
                f"method.advantage={self.advantage} compares rollouts of the same question; "
                f"set method.rollouts_per_query to {needed} or more "
                f"(it is {self.rollouts_per_query})"
            )


@dataclass
class OfflineSTNode(SamplingNode):
    """Offline self-training: sample once from the warm-up, keep the correct, SFT on them."""

    # Epochs of SFT on the kept samples.
    rl_epochs: int = knob(1, ge=0)
    samples_per_question: int = knob(100, gt=0)
    keep_correct: int = knob(100, ge=0, note="0: gold only")
    restart_from: str = "base"

    def check(self) -> None:
        super().check()
        one_of(self.restart_from, RESTARTS, "method.restart_from")


@dataclass
class OnlineSTNode(OnPolicyNode):
    """Online self-training: NLL steps on the policy's own correct samples."""

    mix_gold: bool = True


@dataclass
class PrefixNode(Node):
    """PrefixRL's off-policy traces and how their prefixes are cut."""

    trace_source: str = "rejection"
    trace_file: str | None = None
    rejection_samples: int = knob(8, gt=0)
    # rejection traces: a problem is hard (gets prefixes) when 0 < its pass rate <= this
    hard_max_pass_rate: float = knob(0.5, ge=0, le=1)
    prefix_min_frac: float = knob(0.4, ge=0, le=1)
    prefix_max_frac: float = knob(0.8, ge=0, le=1)
    plain_fraction: float = knob(0.5, ge=0, le=1)
    offpolicy_use: str = "prefix"

    def check(self) -> None:
        super().check()
        one_of(self.trace_source, TRACE_SOURCES, "method.trace_source")
        one_of(self.offpolicy_use, OFFPOLICY_USES, "method.offpolicy_use")
        if self.prefix_min_frac > self.prefix_max_frac:
            raise ConfigError(
                "PrefixRL cuts traces at a fraction in [method.prefix_min_frac, "
                "method.prefix_max_frac]; need 0 <= min <= max <= 1"
            )
        if self.trace_file and self.trace_source != "file":
            raise ConfigError(
                "method.trace_file is read only with method.trace_source=file; add that "
                "override or drop method.trace_file"
            )
        if self.trace_source == "file" and not self.trace_file:
            raise ConfigError(
                "method.trace_source=file needs method.trace_file=PATH (a JSONL of traces)"
            )


# --- each method's schema: the nodes of the stages it runs (the registry in
# `reftlab.methods.registry` names them); a knob of another method fails at composition ---


@dataclass
class SFTConfig(SFTNode, MethodConfig):
    # Epochs of SFT continued from the warm-up with a fresh optimizer, as an RL stage starts:
    # "train SFT longer" at an RL stage's compute. 0: the warm-up is the whole run.
    continue_epochs: int = knob(0, ge=0)

    def check(self) -> None:
        super().check()
        if self.warmup_epochs == 0:
            raise ConfigError(
                "method=sft with method.warmup_epochs=0 trains nothing; set it to 1 or more"
            )


@dataclass
class RLConfig(RLNode, SFTNode, MethodConfig):
    """ReFT and the bandit baseline: a warm-up, then the RL engine."""


@dataclass
class OfflineSTConfig(OfflineSTNode, SFTNode, MethodConfig):
    pass


@dataclass
class OnlineSTConfig(OnlineSTNode, SFTNode, MethodConfig):
    pass


@dataclass
class PrefixRLConfig(PrefixNode, RLNode, SFTNode, MethodConfig):
    pass


@dataclass
class CotConfig(Node):
    name: str = MISSING
    prompt_template: str = MISSING
    answer_markers: list[str] = field(default_factory=lambda: ["the answer is", "####"])
    # How N-CoT answers are read (reftlab.rewards.extract): last_number (marker, boxed, known
    # phrasings, then the last number), none (the same without the last number) or strict (the
    # paper's format only). Evaluation reports the strict and the flexible accuracy either way.
    answer_fallback: str = "last_number"
    # The ReFT paper's limit; programs that import sympy take a few seconds on a busy machine.
    program_timeout_s: float = knob(10.0, gt=0)

    def check(self) -> None:
        one_of(self.name, COTS, "cot")
        from reftlab.rewards.extract import FALLBACKS

        one_of(self.answer_fallback, FALLBACKS, "cot.answer_fallback")


@dataclass
class DatasetConfig(Node):
    name: str = MISSING
    # null: the data set's own, from its entry in `reftlab.data.registry`.
    answer_type: str | None = None
    hub_id: str | None = None
    hub_config: str | None = None
    path: str | None = None
    train_file: str | None = None
    test_file: str | None = None
    # arith only: the synthetic generator's sizes and seed
    train_size: int = knob(0, ge=0)
    test_size: int = knob(0, ge=0)
    generator_seed: int = knob(0, ge=0, le=SEED_MAX)
    max_steps: int = knob(3, ge=1)
    # arith only: number ranges (null: the generator's defaults; a start is drawn from
    # [2, max_start]) and the share of problems with a distractor sentence about someone else
    max_start: int | None = knob(None, ge=2)
    max_operand: int | None = knob(None, ge=1)
    max_value: int | None = knob(None, ge=2)
    distractor_rate: float = knob(0.0, ge=0, le=1)
    # arith only: the share of solutions that state the answer without working
    direct_answer_rate: float = knob(0.0, ge=0, le=1)

    def check(self) -> None:
        from reftlab.data.records import ANSWER_TYPES
        from reftlab.data.registry import DATASETS

        one_of(self.name, DATASETS, "dataset")
        if self.answer_type is not None:
            one_of(self.answer_type, ANSWER_TYPES, "dataset.answer_type")
        if self.name == "arith" and (self.train_size <= 0 or self.test_size <= 0):
            raise ConfigError("dataset=arith needs dataset.train_size and dataset.test_size > 0")
        hub_id = self.hub_id or DATASETS[self.name].hub_id
        if self.name != "arith" and not (hub_id or self.path or self.test_file):
            raise ConfigError(
                f"dataset={self.name} has no Hub copy; point at local files with "
                f"dataset.path=DIR or dataset.train_file=FILE dataset.test_file=FILE"
            )
        if self.path and (self.train_file or self.test_file):
            raise ConfigError(
                "give either dataset.path=DIR (a folder with the usual split names) or "
                "dataset.train_file/dataset.test_file, not both"
            )


@dataclass
class ModelConfig(Node):
    name: str = MISSING
    kind: str = "pretrained"
    path: str | None = None
    gguf_file: str | None = None
    gguf_package: str | None = None
    trust_remote_code: bool = False
    # tiny only: the architecture built from a config, and the tokenizer trained offline
    hidden_size: int = knob(128, gt=0)
    num_layers: int = knob(2, gt=0)
    num_heads: int = knob(4, gt=0)
    intermediate_size: int = knob(512, gt=0)
    vocab_size: int = knob(512, gt=0)
    # The context: the longest prompt + completion, in tokens; longer prompts are dropped.
    max_length: int = knob(256, ge=2)
    max_new_tokens: int = knob(128, gt=0)
    # Parameters in millions, for the plan's wall-time estimate (null: no estimate). Left out of
    # the repr, which the stages' cache keys hash: an estimate's input changes no weights.
    params_m: float | None = knob(None, gt=0, repr=False)

    def check(self) -> None:
        one_of(self.kind, MODEL_KINDS, "model.kind")
        if self.kind == "pretrained" and not self.path:
            raise ConfigError(f"model={self.name} needs model.path (a Hub id or a local folder)")
        if self.max_new_tokens >= self.max_length:
            raise ConfigError(
                f"model.max_new_tokens={self.max_new_tokens} leaves no room for a prompt in "
                f"model.max_length={self.max_length} tokens; lower it or raise model.max_length"
            )
        if self.kind == "tiny" and self.hidden_size % self.num_heads:
            raise ConfigError(
                f"model.hidden_size={self.hidden_size} is not divisible by model.num_heads="
                f"{self.num_heads}; pick a num_heads that divides it"
            )


@dataclass
class BudgetConfig(Node):
    name: str = "full"
    # Caps applied on top of the schedule; null means "no cap".
    max_train_examples: int | None = knob(None, gt=0)
    max_test_examples: int | None = knob(None, gt=0)
    max_epochs: int | None = knob(None, gt=0)
    max_rl_steps: int | None = knob(None, gt=0)
    max_new_tokens: int | None = knob(None, gt=0)
    max_samples_per_question: int | None = knob(None, gt=0)
    # Greedy test accuracy every N optimizer steps of each SFT and RL stage; 0: at stage ends only.
    eval_every: int = knob(0, ge=0, note="0: evaluate at stage ends only")


@dataclass
class EvalConfig(Node):
    samples: int = knob(1, gt=0)
    # Sampling temperature when eval.samples > 1 (one sample is greedy).
    temperature: float = knob(1.0, ge=0)
    rerank: bool = False
    batch_size: int = knob(64, gt=0)
    # Reranking: a trained reward model folder, or null to train one from the run's warm-up.
    reward_model: str | None = None
    rm_samples: int = knob(100, gt=0)
    rm_epochs: int = knob(2, gt=0)
    # null: the method's SFT learning rate and batch size.
    rm_lr: float | None = knob(None, gt=0)
    rm_batch_size: int | None = knob(None, gt=0)

    def check(self) -> None:
        if self.samples > 1 and self.temperature == 0:
            raise ConfigError(
                f"eval.samples={self.samples} with eval.temperature=0 draws one answer "
                f"{self.samples} times; set eval.temperature > 0 (1.0 is usual), or eval.samples=1"
            )
        if self.rerank and self.samples < 2:
            raise ConfigError(
                "eval.rerank=true picks the best of several samples; set eval.samples >= 2"
            )
        if self.reward_model and not self.rerank:
            raise ConfigError(
                "eval.reward_model is only used to rerank samples; add eval.rerank=true "
                "eval.samples=K (K >= 2), or drop eval.reward_model"
            )


@dataclass
class VLLMConfig(Node):
    """The colocated vLLM engine's own knobs (`rollout.engine=vllm`)."""

    dtype: str = "auto"
    enforce_eager: bool = True
    gpu_memory_utilization: float = knob(
        0.3, gt=0, lt=1, note="the share of GPU memory vLLM may take beside training"
    )
    cpu_kv_cache_gb: float = knob(1.0, gt=0)
    max_num_seqs: int = knob(256, gt=0)

    def check(self) -> None:
        super().check()
        one_of(self.dtype, VLLM_DTYPES, "rollout.vllm.dtype")


@dataclass
class RolloutConfig(Node):
    """Which engine samples, and how its log-probs may differ from the trainer's."""

    engine: str = "hf"
    # Truncated importance sampling: weight each token's advantage by
    # min(pi_trainer / pi_engine, tis_cap); null: off.
    tis_cap: float | None = knob(
        None, ge=1, note="it caps an importance ratio; 2 is common; null turns it off"
    )
    vllm: VLLMConfig = field(default_factory=VLLMConfig)

    def check(self) -> None:
        super().check()
        one_of(self.engine, ROLLOUT_ENGINES, "rollout.engine")
        if self.tis_cap is not None and self.engine != "vllm":
            raise ConfigError(
                "rollout.tis_cap corrects the gap between vLLM's sampling log-probs and the "
                f"trainer's; with rollout.engine={self.engine} they are the same model, so drop it"
            )
        self.vllm.check()


@dataclass
class LoggerConfig(Node):
    name: str = "jsonl"
    project: str = "reftlab"
    mode: str = "offline"
    entity: str | None = None

    def check(self) -> None:
        one_of(self.name, LOGGERS, "logger")


@dataclass
class RunConfig:
    method: MethodConfig = MISSING
    cot: CotConfig = MISSING
    dataset: DatasetConfig = MISSING
    model: ModelConfig = MISSING
    budget: BudgetConfig = MISSING
    logger: LoggerConfig = MISSING
    eval: EvalConfig = field(default_factory=EvalConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    seed: int = knob(0, ge=0, le=SEED_MAX)
    precision: str = "auto"
    dry_run: bool = False
    # true, false, or "force" (continue with a changed config; app/rundir.py).
    resume: bool | str = False
    save_every: int = knob(0, ge=0, note="0: only at stage ends")
    # Each optimizer step's batch is split into (processes x grad_accum) shards.
    grad_accum: int = knob(1, ge=1)
    # DeepSpeed config for multi-GPU runs: null, a shipped name (zero2) or a JSON path.
    deepspeed: str | None = None
    cache_dir: str = "~/.cache/reftlab"
    output_dir: str = "."
    # Set by an experiment preset (conf/experiment/NAME.yaml): the report shapes its runs so.
    experiment: str | None = None
    # Set by a bandit ablation (conf/bandit_ablation/NAME.yaml): the design choice it adds.
    ablation: str | None = None


def register_configs(method_schemas: Mapping[str, type[MethodConfig]]) -> None:
    """Register the run schema (listed first in `conf/config.yaml`'s defaults) and each method's
    schema as `method/<name>_schema`, which `conf/method/<name>.yaml` lists in its defaults."""
    store = ConfigStore.instance()
    store.store(name="reftlab_schema", node=RunConfig)
    for name, schema in method_schemas.items():
        store.store(group="method", name=f"{name}_schema", node=schema)


def to_run_config(cfg: DictConfig) -> RunConfig:
    """Convert the composed DictConfig once, at the entry point, into the typed object."""
    run = OmegaConf.to_object(cfg)
    assert isinstance(run, RunConfig)
    return run


def validate(run: RunConfig) -> None:
    """Check every numeric knob's range, then every node's rules and those that span nodes,
    before any model or data is loaded."""
    check_ranges(run)
    nodes = (run.method, run.cot, run.dataset, run.model, run.budget, run.eval, run.rollout)
    for node in (*nodes, run.logger):
        node.check()
    one_of(run.precision, PRECISIONS, "precision")
    if isinstance(run.resume, str) and run.resume != "force":
        raise ConfigError(f"resume={run.resume}: use true, false or force")
    if run.deepspeed is not None and run.grad_accum > 1:
        raise ConfigError(
            "deepspeed steps the optimizer at every backward pass; set grad_accum=1 (use more "
            "GPUs for a larger effective batch) or drop deepspeed="
        )
