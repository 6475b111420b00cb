"""PrefixRL's problem pool: prefixes cut from successful traces, mixed with plain problems.

PrefixRL conditions the policy on a prefix of a successful off-policy trace and runs on-policy
RL on the completion; the prefix's length sets how hard the rest is. The prefix becomes part of
the *prompt*, so the policy gradient never sees its tokens: only the tokens the policy sampled
carry a log-prob, an advantage and a loss term.

Pure functions over token lists, ids and a seeded ``random.Random``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence


def cut_point(n_tokens: int, fraction: float) -> int:
    """Tokens in a prefix cut at ``fraction`` of an ``n_tokens``-token trace:
    ``floor(fraction * n_tokens)``, so ``fraction=0`` is no prefix and ``1`` the whole trace."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"cut fraction {fraction} must lie in [0, 1]")
    # The small epsilon keeps 0.3 * 10 = 2.9999999999999996 from flooring to 2.
    return min(n_tokens, math.floor(fraction * n_tokens + 1e-9))


def cut_trace(token_ids: Sequence[int], fraction: float) -> tuple[list[int], list[int]]:
    """``(prefix, rest)`` of a trace's tokens, the prefix ``cut_point(len, fraction)`` long."""
    k = cut_point(len(token_ids), fraction)
    return list(token_ids[:k]), list(token_ids[k:])


def draw_fraction(rng: random.Random, low: float, high: float) -> float:
    """A cut fraction drawn uniformly from ``[low, high]``."""
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"need 0 <= low <= high <= 1, got [{low}, {high}]")
    return rng.uniform(low, high)


def _cycle_shuffled(ids: Sequence[str], count: int, rng: random.Random) -> list[str]:
    """``count`` ids: passes over ``ids``, each in a fresh random order (no id repeats within a
    pass, so every id appears ``count // len(ids)`` or one more times)."""
    out: list[str] = []
    while len(out) < count:
        order = list(ids)
        rng.shuffle(order)
        out += order[: count - len(out)]
    return out


def draw_pool(
    problem_ids: Sequence[str],
    hard_ids: Sequence[str],
    size: int,
    plain_fraction: float,
    rng: random.Random,
) -> list[tuple[str, bool]]:
    """The RL pool as ``(problem id, prefixed?)`` pairs, ``size`` of them.

    ``round((1 - plain_fraction) * size)`` entries are prefixed, spread evenly over
    ``hard_ids`` (the problems that have a successful trace and count as hard); the rest are
    plain problems spread evenly over ``problem_ids``. Without hard problems every entry is
    plain.
    """
    if not 0.0 <= plain_fraction <= 1.0:
        raise ValueError(f"plain_fraction {plain_fraction} must lie in [0, 1]")
    n_prefixed = round((1.0 - plain_fraction) * size) if hard_ids else 0
    n_plain = size - n_prefixed
    if n_plain and not problem_ids:
        raise ValueError("no problems to draw plain entries from")
    prefixed = _cycle_shuffled(hard_ids, n_prefixed, rng) if n_prefixed else []
    plain = _cycle_shuffled(problem_ids, n_plain, rng) if n_plain else []
    return [(i, True) for i in prefixed] + [(i, False) for i in plain]
