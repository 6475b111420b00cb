"""A control run: the same reftlab run, with each RL step's rewards shuffled among its rollouts.

The step's reward values stay the same (the same mean, the same spread, the same number of
correct programs), but a rollout's reward no longer says anything about that rollout. Whatever
such a run does to the model is what the update's noise does on its own; a real run that ends in
the same place learned nothing that the noise did not. Evaluation is untouched (it scores with
the real scorer).

    python benchmarks/shuffled_reward.py method=reft model=smollm2-135m dataset=svamp \
        cot=program dataset.path=../shared/data/reft budget=laptop rollout.engine=vllm

Takes the CLI's arguments and runs the CLI in this process, with `stages.rl.roll_out_shard`
replaced by one that hands it a shuffling scorer (one process only: a torchrun or SLURM job's
other ranks would score unshuffled). The run dir records the run as usual (its config does not
say that the rewards were shuffled: name the run dir so that it does).
"""

from __future__ import annotations

import random
import sys


class ShufflingScorer:
    """A scorer whose scores come back permuted among the batch (seeded per call)."""

    def __init__(self, scorer, seed: int) -> None:
        self.scorer = scorer
        self.rng = random.Random(seed)

    def score(self, completions, examples):
        scores = list(self.scorer.score(completions, examples))
        self.rng.shuffle(scores)
        return scores


def main() -> None:
    from reftlab.app import cli
    from reftlab.stages import rl

    real = rl.roll_out_shard

    def roll_out_shuffled(
        policy, ref_model, tokenizer, examples, make_prompt, scorer, s, accelerator, seed, *rest
    ):
        # The step's own seed: the same shuffle every time the run is repeated.
        shuffling = ShufflingScorer(scorer, seed)
        return real(
            policy,
            ref_model,
            tokenizer,
            examples,
            make_prompt,
            shuffling,
            s,
            accelerator,
            seed,
            *rest,
        )

    rl.roll_out_shard = roll_out_shuffled
    cli.main(sys.argv[1:])


if __name__ == "__main__":
    main()
