"""How one RL step's work splits into shards (processes x grad_accum), and how shards combine.

A step's questions are cut into `n_shards` contiguous parts (`runtime.distributed`); a shard
keeps every rollout of its questions, so a question's group never straddles two processes. Shard
`i` samples with its own seed, so a shard's rollouts do not depend on which process draws them.

The PPO minibatch `j` of a step is the union of each shard's `j`-th slice of its own shuffled
rows. Its loss is normalised by the count of the whole minibatch (summed over every shard and
process: its response tokens, or its responses with `loss_agg=seq_mean`), so that the summed
gradient is that of one average over the minibatch, as in a single process. A shard with no questions (a step with fewer questions than shards)
samples the step's first question with weight 0 (`distributed.shard_part`): it still joins
every gradient all-reduce.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from reftlab.runtime import distributed

# Spreads the seeds of the shards of one step far from the next steps' seeds.
SHARD_SEED_STRIDE = 10_000_019


@dataclass(frozen=True)
class ShardLayout:
    """How many shards a step has in all, and over how many processes they are spread."""

    n_shards: int = 1
    processes: int = 1


SINGLE = ShardLayout()


@dataclass(frozen=True)
class MinibatchSplit:
    """Minibatches per PPO epoch, and the rows each shard puts into one minibatch."""

    count: int
    rows_per_shard: int


def shard_seed(step_seed: int, shard: int) -> int:
    """The sampling and shuffling seed of shard `shard` in a step (shard 0: the step's seed)."""
    return step_seed + SHARD_SEED_STRIDE * shard


def split_minibatches(
    global_rows: int, max_shard_rows: int, mini_batch_size: int, n_shards: int
) -> MinibatchSplit:
    """As many minibatches as one process would take for `global_rows` rollouts; each shard's
    slice is big enough to cover its rows (with one shard: exactly `mini_batch_size`)."""
    count = max(1, math.ceil(global_rows / mini_batch_size))
    rows = max(math.ceil(mini_batch_size / n_shards), math.ceil(max_shard_rows / count))
    return MinibatchSplit(count, rows)


def combine_metrics(parts: Sequence[tuple[dict[str, float], float]], layout: ShardLayout):
    """Weighted means of each metric over the local shards' `(metrics, weight)` and every
    process; with a single shard in all, its metrics as they are. Every process must pass the
    same keys."""
    if layout.n_shards == 1 and len(parts) == 1:
        return dict(parts[0][0])
    keys = sorted(parts[0][0]) if parts else []
    local = [sum(m[key] * w for m, w in parts) for key in keys] + [sum(w for _, w in parts)]
    *sums, total = distributed.all_reduce_sum(local)
    return {
        key: value / total if total else math.nan for key, value in zip(keys, sums, strict=True)
    }


class WeightedMeans:
    """Running weighted means of named values (the update's per-minibatch statistics)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.weights: dict[str, float] = {}

    def add(self, values: dict[str, float], weight: float) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value * weight
            self.weights[key] = self.weights.get(key, 0.0) + weight

    def means(self, layout: ShardLayout) -> dict[str, float]:
        """The means over every process (a collective when the layout has several shards)."""
        keys = sorted(self.sums)
        if layout.n_shards > 1:
            reduced = distributed.all_reduce_sum(
                [self.sums[k] for k in keys] + [self.weights[k] for k in keys]
            )
            sums, weights = reduced[: len(keys)], reduced[len(keys) :]
        else:
            sums, weights = [self.sums[k] for k in keys], [self.weights[k] for k in keys]
        return {k: s / w if w else math.nan for k, s, w in zip(keys, sums, weights, strict=True)}
