"""The attempts of one run (the first, then each resume or requeue), kept in progress.json.

An attempt records how it started (`fresh`, `resume`, `force` with the keys it changed, or
`requeue`), when, and when it ended. A killed attempt cannot record its end; the next one takes
the last time the run dir was written to (progress.json, metrics.jsonl). The run's `wall_time_s`
is the sum over all attempts, so a resumed run reports all the time it took.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

# Files a running attempt writes to; the newest of their times is when a killed one stopped.
WRITTEN_FILES = ("progress.json", "metrics.jsonl")


def start_attempt(mode: str, changed: dict[str, list[Any]] | None = None) -> dict[str, Any]:
    attempt: dict[str, Any] = {"mode": mode, "started": round(time.time(), 3), "ended": None}
    if changed:
        attempt["changed"] = changed
    return attempt


def last_write_time(run_dir: Path) -> float | None:
    times = [
        (run_dir / name).stat().st_mtime for name in WRITTEN_FILES if (run_dir / name).exists()
    ]
    return max(times, default=None)


def close_killed(attempts: list[dict[str, Any]], last_write: float | None) -> None:
    """Give an attempt that never recorded its end (it was killed) its last write as its end."""
    if attempts and attempts[-1].get("ended") is None:
        last = attempts[-1]
        last["ended"] = round(max(last["started"], last_write or last["started"]), 3)


def end_attempt(attempt: dict[str, Any]) -> None:
    if attempt.get("ended") is None:
        attempt["ended"] = round(time.time(), 3)


def total_wall_time(attempts: list[dict[str, Any]]) -> float:
    """Seconds spent in all attempts (a running one counts up to now)."""
    now = time.time()
    return sum((a["ended"] if a.get("ended") is not None else now) - a["started"] for a in attempts)
