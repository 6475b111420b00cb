"""A run's wall time on a 2-core CPU, estimated from its plan before anything loads.

Each stage's work is counted from the schedule (examples x epochs, RL steps x rollouts, sampled
completions, test questions) and priced with unit costs measured on a 2-core CPU for
SmolLM2-135M in fp32 with `rollout.engine=vllm` (`benchmarks/laptop_costs.py` measures them),
scaled by the model's `params_m` and, for sampling, by the completion length. Texts longer than
SVAMP's programs (GSM8K's N-CoT) cost more; stages whose size depends on what the model writes
(the kept samples of self-training, the traces of PrefixRL) are priced at their upper bound.

This module imports no torch: `dry_run=true` prints the estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

from reftlab.config import RunConfig
from reftlab.methods.registry import pipeline
from reftlab.methods.schedule import Schedule, capped, rl_steps_for

# The model and completion length the unit costs were measured at.
REFERENCE_PARAMS_M = 135.0
REFERENCE_NEW_TOKENS = 192
# transformers' generate samples about half as fast as vLLM on this CPU (README, "Rollout engines").
HF_SAMPLING_FACTOR = 2.0


@dataclass(frozen=True)
class UnitCosts:
    """Seconds per unit of work for the reference model: measured by `benchmarks/laptop_costs.py`
    from the README's laptop run (2026-11-30, 2 cores, ReFT on SVAMP P-CoT)."""

    # Forward and backward pass of one training example (question + gold program).
    train_example: float = 1.41
    # No-grad forward pass of one rollout (old log-probs and values; the reference's log-probs).
    forward: float = 0.89
    # One sampled completion, in batches, with vLLM (priced as a greedy answer).
    sample: float = 0.59
    # One greedy test answer, in batches, with vLLM (an untrained model that writes until the
    # length limit takes about twice as long).
    greedy: float = 0.59


MEASURED = UnitCosts()


@dataclass(frozen=True)
class Estimate:
    """Estimated seconds per stage (evaluations during training counted apart)."""

    stages: dict[str, float]
    evaluations_during_training: float

    @property
    def total_s(self) -> float:
        return sum(self.stages.values()) + self.evaluations_during_training


def estimate(
    run: RunConfig, schedule: Schedule, n_train: int, n_test: int, units: UnitCosts = MEASURED
) -> Estimate | None:
    """Estimated wall time of `run` on `n_train` training and `n_test` test problems; None
    when the model's size is unknown (`model.params_m`)."""
    if run.model.params_m is None:
        return None
    scale = run.model.params_m / REFERENCE_PARAMS_M
    length = schedule.max_new_tokens / REFERENCE_NEW_TOKENS
    engine = HF_SAMPLING_FACTOR if run.rollout.engine == "hf" else 1.0
    cost = Prices(
        train=units.train_example * scale,
        forward=units.forward * scale,
        sample=units.sample * scale * length * engine,
        greedy=units.greedy * scale * length * engine,
    )
    stages: dict[str, float] = {}
    evals = 0.0
    every = run.budget.eval_every
    for stage in pipeline(run.method):
        steps, seconds = stage_work(stage, run, schedule, n_train, n_test, cost)
        stages[stage] = seconds
        if every and steps:
            # Before the warm-up's first step, then every `every` steps, not after the last.
            count = (steps - 1) // every + (stage in ("sft_warmup", "sft"))
            evals += count * n_test * cost.greedy
    return Estimate(stages, evals)


@dataclass(frozen=True)
class Prices:
    """Unit costs for this run's model, completion length and engine."""

    train: float
    forward: float
    sample: float
    greedy: float

    def rollout(self, method) -> float:
        """One RL rollout: sampled, its old log-probs (unless the update's own serve), the
        reference's (with a KL), and a forward and backward pass per PPO epoch."""
        one_update = method.ppo_epochs == 1 and method.mini_batch_size >= (
            method.batch_size * method.rollouts_per_query
        )
        single = one_update and method.advantage != "gae" and method.kl_coef == 0
        forwards = (0 if single else 1) + (1 if method.kl_coef > 0 else 0)
        return self.sample + forwards * self.forward + method.ppo_epochs * self.train


def stage_work(
    stage: str, run: RunConfig, s: Schedule, n_train: int, n_test: int, cost: Prices
) -> tuple[int, float]:
    """(optimizer steps, seconds) of one stage."""
    m = run.method
    sft_steps = -(-n_train // m.sft_batch_size)
    if stage in ("sft", "sft_warmup"):
        # Trained, then evaluated greedily on the test split.
        return sft_steps * s.warmup_epochs, (
            n_train * s.warmup_epochs * cost.train + n_test * cost.greedy
        )
    if stage == "sft_continued":
        return sft_steps * s.continue_epochs, n_train * s.continue_epochs * cost.train
    if stage in ("ppo", "policy_gradient", "prefix_rl", "rl"):
        steps = rl_steps_for(n_train, m.batch_size, s.rl_epochs, s.max_rl_steps)
        return steps, steps * m.batch_size * m.rollouts_per_query * cost.rollout(m)
    if stage == "online_self_training":
        steps = rl_steps_for(n_train, m.batch_size, s.rl_epochs, s.max_rl_steps)
        # Every sample kept, plus the gold CoT: the upper bound of the NLL steps' work.
        per_question = m.rollouts_per_query * cost.sample + (m.rollouts_per_query + 1) * cost.train
        return steps, steps * m.batch_size * per_question
    if stage == "sample_and_filter":
        return 0, n_train * s.samples_per_question * cost.sample
    if stage == "sft_on_samples":
        kept = n_train * min(s.samples_per_question, m.keep_correct)
        return -(-kept // m.sft_batch_size) * s.rl_epochs, kept * s.rl_epochs * cost.train
    if stage == "collect_traces":
        return 0, n_train * s.rejection_samples * cost.sample
    if stage == "sft_on_traces":
        return sft_steps * s.warmup_epochs, n_train * s.warmup_epochs * cost.train
    if stage == "reward_model":
        samples = n_train * capped(run.eval.rm_samples, run.budget.max_samples_per_question)
        return 0, samples * (cost.sample + cost.train)
    if stage == "evaluate":
        per_question = cost.greedy + (s.eval_samples * cost.sample if s.eval_samples > 1 else 0)
        return 0, n_test * per_question
    raise ValueError(f"no cost model for stage {stage!r}")


def format_estimate(e: Estimate) -> str:
    parts = [f"{stage} {seconds / 60:.0f}" for stage, seconds in e.stages.items()]
    if e.evaluations_during_training:
        parts.append(f"evaluations during training {e.evaluations_during_training / 60:.0f}")
    return (
        f"~{e.total_s / 60:.0f} min on a 2-core CPU ({', '.join(parts)} min; "
        "unit costs of SmolLM2-135M in fp32 with vLLM, scaled by model.params_m)"
    )
