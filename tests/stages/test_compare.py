"""The paired bootstrap that says whether a run's gain over its warm-up is more than test noise."""

from __future__ import annotations

import math

import pytest

from reftlab.stages.compare import paired_gain


def results(n: int, right: set[int]) -> dict[str, bool]:
    return {f"q{i}": i in right for i in range(n)}


def test_counts_fixed_and_broken_problems_and_the_gain():
    before = results(300, set(range(0, 300, 3)))  # 100 right
    # 20 fixed (right only after), 5 broken (right only before)
    after = results(300, (set(range(0, 300, 3)) - {0, 3, 6, 9, 12}) | set(range(1, 61, 3)))
    gain = paired_gain(before, after)
    assert (gain.fixed, gain.broken, gain.problems) == (20, 5, 300)
    assert gain.gain == pytest.approx(15 / 300)
    # Swapped, the same problems give the opposite gain.
    assert paired_gain(after, before).gain == pytest.approx(-15 / 300)


def test_the_interval_matches_the_normal_approximation():
    before = results(300, set())
    after = results(300, set(range(20)))  # 20 fixed, none broken
    gain = paired_gain(before, after, seed=1)
    # Standard error of the mean of 300 draws of +1 (p = 1/15) or 0.
    p = 20 / 300
    half = 1.96 * math.sqrt(p * (1 - p) / 300)
    assert gain.low == pytest.approx(p - half, abs=0.006)
    assert gain.high == pytest.approx(p + half, abs=0.006)
    assert gain.low > 0  # more than the noise


def test_unchanged_results_have_a_zero_width_interval_and_no_shared_ids_none():
    same = results(50, {1, 2, 3})
    gain = paired_gain(same, same)
    assert (gain.gain, gain.low, gain.high) == (0.0, 0.0, 0.0)
    assert paired_gain({"a": True}, {"b": True}) is None


def test_only_problems_both_answered_are_paired():
    before = {"a": False, "b": True, "c": False}
    after = {"a": True, "b": True, "z": True}
    gain = paired_gain(before, after)
    assert (gain.problems, gain.fixed, gain.broken) == (2, 1, 0)
    assert gain.gain == 0.5
