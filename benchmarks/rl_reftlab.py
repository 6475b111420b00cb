"""One side of the RL benchmark: reftlab's own RL loop (`stages.rl.train_rl`), timed by phase.

The loop that runs is the real one, with its metrics file, progress bar and all; the four calls
of a step (the engine's ``generate``, ``Scorer.score``, ``make_experience``, ``update_policy``)
are wrapped with a clock, which costs microseconds. ``--engine vllm`` samples with the
colocated vLLM engine (its weight sync counts in ``generate``). An iteration runs from the start
of one step's
``generate`` to the next one's (the last ends when ``train_rl`` returns), so the loop's own
bookkeeping (metrics file, progress bar) counts; a `gate.Gate` at each of those points lets
the parent run reftlab and TRL iterations in turn. Prints one JSON line (or writes it to ``--json-out``).

    python benchmarks/rl_reftlab.py MODEL_DIR --warmup 2 --steps 5
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

from gate import Gate
from rl_setup import WORKLOAD, Workload, make_prompt, make_scorer, run_side, train_questions

import reftlab.stages.rl as rl
from reftlab.methods.env import make_accelerator
from reftlab.runtime.context import RunContext, seed_everything
from reftlab.runtime.tracking import MetricsLogger
from reftlab.stages.engines import LiveEngine, VLLMSettings
from reftlab.stages.rl import RLSettings

PHASES = ("generate", "score", "experience", "update")


def grpo_settings(steps: int, w: Workload = WORKLOAD) -> RLSettings:
    """reftlab's engine in the shape of GRPO with beta=0 (see `rl_setup.Workload`)."""
    return RLSettings(
        steps=steps,
        batch_size=w.prompts_per_step,
        mini_batch_size=w.completions_per_step,
        rollouts_per_query=w.completions_per_prompt,
        ppo_epochs=1,
        lr=w.lr,
        advantage="group_norm",
        policy_loss="ppo_clip",
        kl_coef=0.0,
        kl_estimator="k1",
        kl_penalty="reward",
        gamma=1.0,
        lam=1.0,
        clip_range=w.clip_range,
        value_clip_range=None,
        vf_coef=0.0,
        whiten_advantages=False,
        temperature=w.temperature,
        top_p=w.top_p,
        max_new_tokens=w.max_new_tokens,
        seed=w.seed,
        micro_batch_size=w.micro_batch if w.micro_batch < w.completions_per_step else None,
    )


class PhaseClock:
    """Seconds spent in each wrapped call, when each call ended, and completion lengths."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self.ends: dict[str, list[float]] = defaultdict(list)
        self.completion_tokens: list[float] = []

    def wrap(self, phase: str, fn, mean_tokens=None):
        """``fn`` timed as ``phase``; ``mean_tokens(result)`` gives its mean completion length."""

        def timed(*args, **kwargs):
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            end = time.perf_counter()
            self.seconds[phase].append(end - start)
            self.ends[phase].append(end)
            if mean_tokens is not None:
                self.completion_tokens.append(mean_tokens(out))
            return out

        return timed


def require_calls(clock: PhaseClock, phases: Sequence[str], expected: int, loop: str) -> None:
    """Fail loudly if the loop stopped calling what the benchmark wraps (it was refactored)."""
    counts = {phase: len(clock.seconds[phase]) for phase in phases}
    if any(count != expected for count in counts.values()):
        raise RuntimeError(
            f"{loop} ran {expected} steps but the wrapped calls ran {counts} times; "
            "the loop has changed: update the wrapping in benchmarks/"
        )


def mean_response_length(batch) -> float:
    return batch.response_mask.sum(dim=1).float().mean().item()


def make_engine(name: str, w: Workload):
    if name in ("hf", "static"):
        return LiveEngine(name)
    from reftlab.stages.vllm_engine import VLLMEngine

    dtype = "bfloat16" if w.precision == "bf16" else "float32"
    return VLLMEngine(VLLMSettings(dtype=dtype, seed=w.seed))


def run(
    model_dir: Path, warmup: int, steps: int, gate: Gate, w: Workload = WORKLOAD, engine="hf"
) -> dict:
    """``warmup + steps`` iterations of `train_rl`; timings of the last ``steps`` only; then the
    limit of one iteration: the same engine's generation alone, plus one forward and backward
    pass over the tokens it generated."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    seed_everything(w.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    policy = AutoModelForCausalLM.from_pretrained(model_dir)
    accelerator = make_accelerator(w.precision)
    clock = PhaseClock()
    sampler = make_engine(engine, w)
    generate = clock.wrap("generate", sampler.generate, mean_response_length)

    def generate_in_turn(*args, **kwargs):
        gate.wait()  # a step starts with its rollouts
        return generate(*args, **kwargs)

    timed_engine = SimpleNamespace(name=sampler.name, generate=generate_in_turn)
    rl.make_experience = clock.wrap("experience", rl.make_experience)
    rl.update_policy = clock.wrap("update", rl.update_policy)
    scorer = make_scorer()
    scorer.score = clock.wrap("score", scorer.score)
    questions = train_questions(w)
    with tempfile.TemporaryDirectory() as run_dir:
        ctx = RunContext(run_dir=Path(run_dir), logger=MetricsLogger(Path(run_dir)))
        rl.train_rl(
            policy,
            None,
            tokenizer,
            questions,
            make_prompt,
            scorer,
            grpo_settings(warmup + steps, w),
            ctx,
            accelerator,
            "rl",
            engine=timed_engine,
        )
        gate.wait()  # the end of the last step
    require_calls(clock, PHASES, warmup + steps, "reftlab.stages.rl.train_rl")
    iterations = gate.iteration_seconds()
    limit = measure_limit(policy, tokenizer, sampler, accelerator, questions, w)
    sampler.close()
    return {
        "side": "reftlab",
        "engine": engine,
        "iteration_s": iterations[warmup:],
        "phases_s": {name: clock.seconds[name][warmup:] for name in PHASES},
        "completion_tokens": clock.completion_tokens[warmup:],
        "limit_s": limit,
    }


def measure_limit(policy, tokenizer, sampler, accelerator, questions, w: Workload) -> dict:
    """The floor of one iteration, measured apart after the loop (the gate is past its last
    turn, so this runs alone): one step's generation by the same engine (weights already
    loaded), and one forward and backward pass over the generated tokens, in the update's
    micro-batches."""
    from reftlab.stages.batches import question_batch
    from reftlab.stages.rollout import compute_logprobs

    prompts = [make_prompt(e) for e in question_batch(questions, 0, w.prompts_per_step, w.seed)]
    start = time.perf_counter()
    batch = sampler.generate(
        policy,
        tokenizer,
        prompts,
        max_new_tokens=w.max_new_tokens,
        temperature=w.temperature,
        top_p=w.top_p,
        num_return_sequences=w.completions_per_prompt,
        seed=w.seed + 1,
    )
    generate_s = time.perf_counter() - start
    policy.train()
    start = time.perf_counter()
    tokens = batch.response_mask.sum()
    for first in range(0, batch.input_ids.shape[0], w.micro_batch):  # as the update cuts them
        rows = slice(first, first + w.micro_batch)
        with accelerator.autocast():
            logprobs = compute_logprobs(
                policy,
                batch.input_ids[rows],
                batch.attention_mask[rows],
                batch.response_mask[rows],
                w.temperature,
            )
        (-logprobs.sum() / tokens).backward()
    forward_backward_s = time.perf_counter() - start
    policy.zero_grad(set_to_none=True)
    return {
        "generate_s": generate_s,
        "forward_backward_s": forward_backward_s,
        "total_s": generate_s + forward_backward_s,
        "completion_tokens": mean_response_length(batch),
    }


def main() -> None:
    run_side(run, __doc__)


if __name__ == "__main__":
    main()
