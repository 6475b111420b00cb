"""Progress of a loop: tqdm's bar on a terminal; plain lines in a log file.

A bar redraws itself with carriage returns, one per update, which a log file (SLURM's `.out`, a
redirected run) keeps as one endless line. When stderr is not a terminal, `progress_bar` writes
a plain line instead: after the first update, then every `PLAIN_EVERY_S` seconds, and at the
end, e.g. `[ppo] step 40/250 reward=0.310 12.3 s/step eta 8m`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

PLAIN_EVERY_S = 30.0
# How a unit reads in a plain line.
UNIT_WORDS = {"q": "question"}


def progress_bar(total: int, desc: str, unit: str = "step", initial: int = 0, disable=False):
    """tqdm's bar on a terminal, else `PlainProgress`; both take `update(n)`,
    `set_postfix(...)` and `close()`."""
    if disable or sys.stderr.isatty():
        from tqdm.auto import tqdm

        return tqdm(
            total=total,
            initial=initial,
            desc=desc,
            unit=unit,
            dynamic_ncols=True,
            disable=disable,
        )
    return PlainProgress(total, desc, unit, initial)


def quiet_library_bars() -> None:
    """In a log file, also silence the bars of transformers and huggingface_hub (loading and
    writing weights), which would write carriage returns of their own."""
    if sys.stderr.isatty():
        return
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as hf_logging

    disable_progress_bars()
    hf_logging.disable_progress_bar()


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


class PlainProgress:
    """A bar for log files: a plain line now and then, never a carriage return."""

    def __init__(self, total: int, desc: str, unit: str = "step", initial: int = 0) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self.initial = initial
        self.postfix: dict[str, Any] = {}
        self.started = time.monotonic()
        self.printed_at: float | None = None
        self.printed: tuple[int, dict[str, Any]] | None = None

    def set_postfix(self, values: Mapping[str, Any] | None = None, **more: Any) -> None:
        self.postfix = {**(values or {}), **more}

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        due = self.printed_at is None or now - self.printed_at >= PLAIN_EVERY_S
        if due or self.n >= self.total:
            self._print(now)

    def close(self) -> None:
        if self.n > self.initial and self.printed != (self.n, self.postfix):
            self._print(time.monotonic())

    def _print(self, now: float) -> None:
        done = self.n - self.initial
        per = (now - self.started) / max(done, 1)
        word = UNIT_WORDS.get(self.unit, self.unit)
        shown = " ".join(f"{k}={v}" for k, v in self.postfix.items())
        eta = format_duration(per * max(self.total - self.n, 0))
        line = f"[{self.desc}] {word} {self.n}/{self.total} {shown} {per:.1f} s/{word} eta {eta}"
        print(" ".join(line.split()), file=sys.stderr, flush=True)
        self.printed_at, self.printed = now, (self.n, dict(self.postfix))
