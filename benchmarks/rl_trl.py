"""The other side of the RL benchmark: TRL's ``GRPOTrainer`` doing reftlab's RL iteration.

Configured for this comparison (see `rl_setup.Workload`): CPU, no vLLM, ``report_to="none"``,
transformers' ``generate``; one generation batch of ``8 prompts x 8 completions`` per optimizer
step (``per_device_train_batch_size=64``, ``num_generations=8``, no gradient accumulation),
``beta=0``, ``num_iterations=1``, plain AdamW at a constant learning rate. Two TRL defaults
are turned off because reftlab does neither on a CPU: ``bf16`` autocast and gradient
checkpointing. The reward is a plain Python function that calls the same scorer as reftlab.
The dataset holds the prompts in the order reftlab draws them and is not shuffled, so both
sides see the same prompts at the same step. Metrics are logged every step, as reftlab does.

An iteration runs from one ``on_step_end`` callback to the next (the first from
``on_train_begin``), so the trainer's own bookkeeping (logging, progress bar) counts, as
reftlab's does; a `gate.Gate` at each of those points lets the parent run the two sides'
iterations in turn. Phases: ``_generate`` and ``_calculate_rewards`` are timed by wrapping
them; "experience" is the rest of ``_generate_and_score_completions``; "update" runs from its
end to the optimizer step.
Prints one JSON line (or writes it to ``--json-out``).

    python benchmarks/rl_trl.py MODEL_DIR --warmup 2 --steps 5
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from statistics import mean

from gate import Gate
from rl_reftlab import PhaseClock, require_calls
from rl_setup import WORKLOAD, Workload, make_prompt, make_scorer, run_side, step_examples

from reftlab.data import Example


def make_reward(scorer):
    """A TRL reward function (completions plus dataset columns in, floats out)."""

    def arith_reward(completions, id, question, answer, **kwargs) -> list[float]:  # noqa: A002
        examples = [Example(i, q, a) for i, q, a in zip(id, question, answer, strict=True)]
        return [s.reward for s in scorer.score(completions, examples)]

    return arith_reward


def grpo_config(output_dir: str, steps: int, w: Workload = WORKLOAD, engine: str = "hf"):
    from trl import GRPOConfig

    vllm = {"vllm_mode": "colocate", "vllm_enable_sleep_mode": False} if engine == "vllm" else {}
    return GRPOConfig(
        output_dir=output_dir,
        use_cpu=True,
        report_to="none",
        use_vllm=engine == "vllm",
        **vllm,
        bf16=w.precision == "bf16",
        gradient_checkpointing=False,
        max_steps=steps,
        per_device_train_batch_size=w.micro_batch,
        gradient_accumulation_steps=w.completions_per_step // w.micro_batch,
        num_generations=w.completions_per_prompt,
        max_completion_length=w.max_new_tokens,
        temperature=w.temperature,
        top_p=w.top_p,
        top_k=0,
        learning_rate=w.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        optim="adamw_torch",
        weight_decay=0.0,
        max_grad_norm=1.0,
        beta=0.0,
        num_iterations=1,
        epsilon=w.clip_range,
        scale_rewards="group",
        loss_type="dapo",
        shuffle_dataset=False,
        logging_steps=1,
        save_strategy="no",
        dataloader_num_workers=0,
        seed=w.seed,
    )


def prompt_dataset(steps: int, w: Workload = WORKLOAD):
    from datasets import Dataset

    rows = [e for batch in step_examples(steps, w) for e in batch]
    return Dataset.from_dict(
        {
            "prompt": [make_prompt(e) for e in rows],
            "id": [e.id for e in rows],
            "question": [e.question for e in rows],
            "answer": [e.answer for e in rows],
        }
    )


def run(
    model_dir: Path, warmup: int, steps: int, gate: Gate, w: Workload = WORKLOAD, engine="hf"
) -> dict:
    """``warmup + steps`` GRPO steps; timings of the last ``steps`` only."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOTrainer

    clock = PhaseClock()
    optimizer_steps: list[float] = []

    class StepClock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            gate.wait()

        def on_optimizer_step(self, args, state, control, **kwargs):
            optimizer_steps.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            gate.wait()

    total = warmup + steps
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = GRPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(model_dir),
            reward_funcs=make_reward(make_scorer()),
            args=grpo_config(output_dir, total, w, engine),
            train_dataset=prompt_dataset(total, w),
            processing_class=AutoTokenizer.from_pretrained(model_dir),
            callbacks=[StepClock()],
        )
        # _generate returns (prompt_ids, completion_ids, ...): lists of token ids per row.
        trainer._generate = clock.wrap(
            "generate", trainer._generate, lambda out: mean(len(ids) for ids in out[1])
        )
        trainer._calculate_rewards = clock.wrap("score", trainer._calculate_rewards)
        trainer._generate_and_score_completions = clock.wrap(
            "rollout", trainer._generate_and_score_completions
        )
        trainer.train()
    require_calls(clock, ("generate", "score", "rollout"), total, "GRPOTrainer.train")
    iterations = gate.iteration_seconds()[warmup:]
    seconds = {name: values[warmup:] for name, values in clock.seconds.items()}
    rollout_ends = clock.ends["rollout"][warmup:]
    return {
        "side": "trl",
        "engine": engine,
        "iteration_s": iterations,
        "phases_s": {
            "generate": seconds["generate"],
            "score": seconds["score"],
            # Padding, masks and group-normalised advantages: the rest of the rollout.
            "experience": [
                r - g - s
                for r, g, s in zip(
                    seconds["rollout"], seconds["generate"], seconds["score"], strict=True
                )
            ],
            # Loss forward and backward, gradient clipping, optimizer step.
            "update": [o - r for o, r in zip(optimizer_steps[warmup:], rollout_ends, strict=True)],
        },
        "completion_tokens": clock.completion_tokens[warmup:],
    }


def main() -> None:
    run_side(run, __doc__)


if __name__ == "__main__":
    main()
