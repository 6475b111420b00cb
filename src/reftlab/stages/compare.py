"""How sure a gain is: the paired bootstrap of two models' results on the same test problems.

Two evaluations of the same test split (a warm-up and the RL run started from it) are compared
problem by problem. Only the problems one model solves and the other does not move the
difference; resampling the problems with replacement gives the spread the difference would have
on another draw of test problems of the same kind. A gain whose 95% interval excludes 0 is more
than the noise of the test set (it says nothing of seed-to-seed noise of training).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

RESAMPLES = 10_000


@dataclass(frozen=True)
class PairedGain:
    """`after` minus `before` accuracy on the problems both answered, with its 95% interval."""

    gain: float
    low: float
    high: float
    problems: int
    fixed: int  # right after, wrong before
    broken: int  # wrong after, right before

    def as_metrics(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}": self.gain,
            f"{prefix}_ci_low": self.low,
            f"{prefix}_ci_high": self.high,
            f"{prefix}_fixed": self.fixed,
            f"{prefix}_broken": self.broken,
        }


def paired_gain(
    before: Mapping[str, bool], after: Mapping[str, bool], seed: int = 0
) -> PairedGain | None:
    """The paired bootstrap over the problem ids both results share; None when they share none.

    Each resample draws the problems with replacement, which for paired right/wrong results is a
    multinomial draw of the counts of fixed, broken and unchanged problems.
    """
    ids = sorted(before.keys() & after.keys())
    if not ids:
        return None
    fixed = sum(after[i] and not before[i] for i in ids)
    broken = sum(before[i] and not after[i] for i in ids)
    n = len(ids)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, [fixed / n, broken / n, (n - fixed - broken) / n], RESAMPLES)
    gains = (counts[:, 0] - counts[:, 1]) / n
    low, high = np.percentile(gains, [2.5, 97.5])
    return PairedGain((fixed - broken) / n, float(low), float(high), n, fixed, broken)
