"""Is one RL step's gradient signal or noise? The gradient noise scale of reftlab's RL step,
against SFT's on the gold solutions, measured on a run's own model and data.

Draws `--batches` independent batches of rollouts from one policy (the run's SFT warm-up,
trained or reused from the cache, or a PPO checkpoint with its value head), takes each batch's
gradient exactly as the first PPO minibatch of `stages.rl` does, and compares the batches
(`reftlab.rl.noise_scale`): the share of a step's squared gradient that is signal, and the noise
scale, the batch at which signal and noise are equal. With a trained value head the value
term's gradient into the shared backbone is measured separately (a second backward pass with
the value loss added, minus the first). The same for SFT on the gold solutions of as many
training problems, always from the warm-up, also when `--checkpoint` names a PPO checkpoint.

    python benchmarks/gradient_noise.py --batches 6 -- model=smollm2-135m dataset=svamp \
        cot=program dataset.path=../shared/data/reft budget=laptop rollout.engine=static

Overrides are reftlab's (`method=reft` unless given); run from where their relative paths
resolve. Writes nothing but a temporary run dir; ends with a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import tempfile
import time
from pathlib import Path

import torch


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=6, help="independent batches per term")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="rollouts per batch (default: the run's step)"
    )
    parser.add_argument("--checkpoint", type=Path, default=None, help="a PPO checkpoint folder")
    parser.add_argument("--no-sft", action="store_true", help="skip the SFT comparison")
    parser.add_argument("overrides", nargs="*", help="reftlab overrides (after --)")
    return parser.parse_args(argv)


def flat_grad(params) -> torch.Tensor:
    return torch.cat(
        [torch.zeros(p.numel()) if p.grad is None else p.grad.reshape(-1) for p in params]
    )


def rl_gradients(env, policy, reference, s, questions, seed):
    """{term: flat gradient over the LM's parameters} of one batch of rollouts, and its rewards.
    Terms: the policy loss, and (with a trained head) the value loss's share."""
    from reftlab.stages.rl import ShardWork, make_experience, minibatch_loss, whiten_step_advantages

    n = s.rollouts_per_query
    examples = [e for e in questions for _ in range(n)]
    policy.eval()
    batch = env.engine.generate(
        policy.policy,
        env.tokenizer,
        [env.prompt(e) for e in questions],
        max_new_tokens=s.max_new_tokens,
        temperature=s.temperature,
        top_p=s.top_p,
        do_sample=True,
        num_return_sequences=n,
        seed=seed,
    )
    scored = env.scorer.score(batch.texts, examples)
    scores = torch.tensor([x.reward for x in scored], dtype=torch.float32)
    exp = make_experience(policy, reference, batch, scores, s)
    if s.whiten_advantages:
        exp = whiten_step_advantages([ShardWork(exp, [], [], 1.0, None)])[0].exp
    policy.train()
    lm = [p for name, p in policy.named_parameters() if not name.startswith("value_head")]
    # A fresh head (zero weights) sends no value gradient into the backbone.
    with_value = s.uses_values and bool(policy.value_head.weight.abs().sum() > 0)
    grads = {}
    for term, vf_coef in [("policy", 0.0)] + ([("value", s.vf_coef)] if with_value else []):
        only = dataclasses.replace(s, vf_coef=vf_coef)
        policy.zero_grad(set_to_none=True)
        rows = exp.batch.response_mask.size(0)
        step = s.micro_batch_size or rows
        for start in range(0, rows, step):
            part = torch.arange(start, min(start + step, rows))
            loss, _ = minibatch_loss(policy, exp, part, only, env.accelerator)
            (loss * len(part) / rows).backward()  # seq_mean and token_mean alike, up to scale
        grads[term] = flat_grad(lm)
    if with_value:  # the value term alone: both terms minus the policy term
        grads["value"] = grads["value"] - grads["policy"]
    policy.zero_grad(set_to_none=True)
    return grads, scored


def sft_gradient(env, model, examples, micro_batch_size):
    """The flat gradient of SFT's token-mean loss on the gold solutions of `examples`."""
    from reftlab.methods.env import sft_pairs
    from reftlab.stages.batches import collate, completion_nll, count_target_tokens, encode_pairs

    prompts, targets = sft_pairs(env, examples)
    encoded = encode_pairs(env.tokenizer, prompts, targets, env.run.model.max_length)
    n_tokens = count_target_tokens(encoded)
    model.train()
    model.zero_grad(set_to_none=True)
    step = micro_batch_size or len(encoded)
    for start in range(0, len(encoded), step):
        part = collate(encoded[start : start + step], env.tokenizer.pad_token_id)
        (completion_nll(model, part, reduction="sum") / n_tokens).backward()
    grad = flat_grad(list(model.parameters()))
    model.zero_grad(set_to_none=True)
    return grad


def print_table(grads, batch_size, rewards, correct) -> None:
    """The Markdown table of each term's noise scale (`grads`: term -> flat gradients)."""
    from reftlab.rl.noise_scale import gradient_noise_scale

    batches = len(grads["policy"])
    print(
        f"\n{batches} batches of {batch_size} per term; rollouts: mean reward "
        f"{sum(rewards) / len(rewards):.3f}, {sum(correct)}/{len(correct)} correct"
    )
    print(
        "| gradient | mean norm | cosine between batches (min, max) | signal share | noise scale |"
    )
    print("|---|---:|---:|---:|---:|")
    for term, term_grads in grads.items():
        if len(term_grads) < 2:
            continue
        ns = gradient_noise_scale(term_grads, batch_size)
        print(
            f"| {term} | {ns.norm:.3g} | {ns.cosine:.3f} ({ns.cosine_min:.3f}, "
            f"{ns.cosine_max:.3f}) | {ns.signal_share:.3f} | {ns.noise_scale:.0f} |"
        )
    if grads["value"]:
        ratio = [
            float(v.norm() / p.norm()) for p, v in zip(grads["policy"], grads["value"], strict=True)
        ]
        print(
            f"\nvalue term's norm over the policy term's (same batch): {sum(ratio) / len(ratio):.2f}"
        )


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from reftlab.app.compose import compose_run
    from reftlab.methods.env import frozen_copy, rl_settings, setup, with_value_head
    from reftlab.methods.warmup import warmup
    from reftlab.models.value import PolicyWithValue
    from reftlab.runtime.context import RunContext
    from reftlab.runtime.tracking import MetricsLogger

    overrides = args.overrides
    if not any(o.startswith("method=") for o in overrides):
        overrides = ["method=reft", *overrides]
    run = compose_run(overrides)
    tmp = Path(tempfile.mkdtemp(prefix="gradient_noise-"))
    ctx = RunContext.open(tmp, MetricsLogger(tmp, enabled=False), resume=False, save_every=0)
    env, model = setup(run, ctx)
    grads = {"policy": [], "value": [], "sft": []}
    rewards, correct = [], []
    with env.scorer:
        warm = warmup(env, model)
        s = rl_settings(env, len(env.splits.train))
        b = args.batch_size or s.batch_size * s.rollouts_per_query
        if args.checkpoint is not None:
            policy = PolicyWithValue.from_pretrained(args.checkpoint)
            print(f"[noise] policy and value head from {args.checkpoint}", flush=True)
        else:
            policy = with_value_head(env, warm.model)
        reference = frozen_copy(warm.model)
        rng = random.Random(run.seed)
        train = list(env.splits.train)
        for k in range(args.batches):
            start = time.perf_counter()
            questions = rng.sample(train, b // s.rollouts_per_query)
            batch_grads, scored = rl_gradients(
                env, policy, reference, s, questions, run.seed * 1000 + k
            )
            for term, grad in batch_grads.items():
                grads[term].append(grad)
            rewards += [x.reward for x in scored]
            correct += [x.correct for x in scored]
            print(
                f"[noise] rl batch {k + 1}/{args.batches}: "
                f"{sum(x.correct for x in scored)}/{len(scored)} correct "
                f"({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
        for k in range(0 if args.no_sft else args.batches):
            grads["sft"].append(
                sft_gradient(env, warm.model, rng.sample(train, b), s.micro_batch_size)
            )
            print(f"[noise] sft batch {k + 1}/{args.batches}", flush=True)
    print_table(grads, b, rewards, correct)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
