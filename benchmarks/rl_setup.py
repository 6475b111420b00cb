"""What both sides of the RL benchmark share: the model on disk, the prompts, the settings.

Two workloads (``--workload``):

- ``tiny``: reftlab's embedded tiny model (``conf/model/tiny.yaml``: a 2-layer Llama with a
  512-token BPE trained offline on the ``arith`` training texts), built once with reftlab's own
  builders; the ``arith`` training questions; fp32.
- ``real``: SmolLM2-135M-Instruct (the offline GGUF preset, dequantized once); the GSM8K
  training questions from ``../shared/data/gsm8k`` (the ``arith`` ones if that folder is
  absent); up to 128 new tokens; bf16 compute on both sides.

The model is written with ``save_pretrained`` and both reftlab and TRL load that folder. The
prompts are in the N-CoT template (``conf/cot/natural.yaml``), step by step in the order
reftlab's RL loop draws them, so both sides see the same prompts at the same step.

    python benchmarks/rl_setup.py OUT_DIR [--workload real]   # build and save the model
"""

from __future__ import annotations

import argparse
import functools
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
GSM8K_TRAIN = ROOT.parent / "shared" / "data" / "gsm8k" / "train.jsonl"


@dataclass(frozen=True)
class Workload:
    """One RL iteration of either side: the GRPO shape of reftlab's engine.

    reftlab runs ``advantage=group_norm``, ``policy_loss=ppo_clip``, one PPO epoch and one
    minibatch of all completions, ``kl_coef=0`` and no reference model; TRL's ``GRPOTrainer``
    runs ``beta=0``, ``num_iterations=1``, ``scale_rewards="group"``, ``loss_type="dapo"``
    (a token mean over the batch, like reftlab's default ``token_mean``), one optimizer step
    per generation batch. Both: AdamW at a constant ``lr``, gradient norm clipped at 1, fp32.
    """

    name: str = "tiny"
    prompts_per_step: int = 8
    completions_per_prompt: int = 8
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    lr: float = 2e-5
    clip_range: float = 0.2
    seed: int = 0
    # fp32, or bf16 autocast over fp32 weights (reftlab precision=bf16, TRL bf16=True).
    precision: str = "fp32"
    # Completions per forward/backward pass, gradients added up to one optimizer step: a real
    # model's logits for all 64 completions at once (64 x 300 tokens x 49k vocabulary) would
    # not fit in this machine's memory. reftlab method.micro_batch_size; TRL
    # per_device_train_batch_size with gradient_accumulation_steps (one generation per step).
    micro_batch: int = 64

    @property
    def completions_per_step(self) -> int:
        return self.prompts_per_step * self.completions_per_prompt

    def as_dict(self) -> dict:
        return asdict(self)


WORKLOADS = {
    "tiny": Workload(),
    "real": Workload(name="real", max_new_tokens=128, lr=1e-6, precision="bf16", micro_batch=8),
}
WORKLOAD = WORKLOADS["tiny"]


@functools.cache
def load_yaml(relative: str):
    from omegaconf import OmegaConf

    return OmegaConf.load(ROOT / "conf" / relative)


def arith_train():
    """The ``arith`` training split exactly as a default run generates it."""
    from reftlab.data.arith import generate_arith_splits

    d = load_yaml("dataset/arith.yaml")
    train, _ = generate_arith_splits(
        d.train_size, d.test_size, seed=d.generator_seed, max_steps=d.max_steps
    )
    return train


def train_questions(workload: Workload) -> list:
    """The training questions of the workload, in file order."""
    if workload.name == "real" and GSM8K_TRAIN.exists():
        return gsm8k_train()
    return arith_train()


def gsm8k_train() -> list:
    """GSM8K's training questions, answers read after ``####`` (thousands commas dropped)."""
    import json

    from reftlab.data import Example

    rows = [json.loads(line) for line in GSM8K_TRAIN.read_text().splitlines()]
    return [
        Example(f"gsm8k-{i}", r["question"], r["answer"].split("####")[-1].strip().replace(",", ""))
        for i, r in enumerate(rows)
    ]


def build_model(out_dir: Path, workload: Workload = WORKLOAD) -> Path:
    """Build the workload's model and tokenizer; save both to ``out_dir``."""
    if workload.name == "real":
        from reftlab.models.pretrained import load_packaged_gguf

        model, tokenizer = load_packaged_gguf()
        model_dir = out_dir / "model"
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        return model_dir
    return build_tiny(out_dir)


def build_tiny(out_dir: Path) -> Path:
    """Build the tiny model and its tokenizer as a default run does; save both to ``out_dir``."""
    from reftlab.data.splits import Splits
    from reftlab.models import build_tiny_model, get_or_build_tokenizer

    m = load_yaml("model/tiny.yaml")
    corpus = Splits(train=arith_train(), test=[], sources={}, answer_type="number").texts()
    tokenizer = get_or_build_tokenizer(corpus, m.vocab_size, out_dir / "cache")
    model = build_tiny_model(
        tokenizer,
        m.hidden_size,
        m.num_layers,
        m.num_heads,
        m.intermediate_size,
        m.max_length,
        seed=WORKLOAD.seed,
    )
    model_dir = out_dir / "model"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return model_dir


def make_prompt(example) -> str:
    """The N-CoT prompt of a default run (``conf/cot/natural.yaml``)."""
    from reftlab.data import format_prompt

    return format_prompt(load_yaml("cot/natural.yaml").prompt_template, example)


def make_scorer():
    """The N-CoT scorer of a default run with a binary reward (reftlab's own `Scorer`)."""
    from reftlab.rewards.scorer import Scorer

    c = load_yaml("cot/natural.yaml")
    return Scorer(c.name, 0.0, list(c.answer_markers), c.answer_fallback, c.program_timeout_s)


def step_examples(steps: int, workload: Workload = WORKLOAD) -> list[list]:
    """The questions of each RL step, in the order reftlab's loop draws them (`question_batch`)."""
    from reftlab.stages.batches import question_batch

    train = train_questions(workload)
    per_step = workload.prompts_per_step
    return [question_batch(train, step, per_step, workload.seed) for step in range(steps)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="tiny")
    args = parser.parse_args()
    print(build_model(args.out_dir, WORKLOADS[args.workload]))


if __name__ == "__main__":
    main()


def run_side(run, doc: str) -> None:
    """The command line of one RL side (`rl_reftlab.py`, `rl_trl.py`): run it in this process
    and print or write its timings as JSON."""
    import json

    import torch
    from gate import Gate

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--json-out", type=Path, help="write the result here instead of stdout")
    parser.add_argument("--gate", help="READ_FD,WRITE_FD of the parent's turnstile (gate.py)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="tiny")
    parser.add_argument(
        "--engine",
        choices=("hf", "static", "vllm"),
        default="hf",
        help="what samples (static: reftlab's own decoder, reftlab's side only)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    workload = WORKLOADS[args.workload]
    result = json.dumps(
        run(args.model_dir, args.warmup, args.steps, Gate(args.gate), workload, args.engine)
    )
    if args.json_out is None:
        print(result)
    else:
        args.json_out.write_text(result)
