"""The record one sandboxed program run comes back as, and the callable type that makes them.

This module holds no process code, so the pure reward functions can import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

# solution() returned a value that was converted to a plain answer string.
OK = "ok"
# The wall-clock or the CPU-time limit was hit.
TIMEOUT = "timeout"
# An exception escaped: syntax error, no solution(), MemoryError, RecursionError, SystemExit...
ERROR = "error"
# The process died without reporting (a signal such as SIGSEGV), or its worker died.
CRASHED = "crashed"
# It ran without an exception but gave nothing usable: returned None or an unconvertible
# object, or left through os._exit before returning.
NO_RESULT = "no_result"
STATUSES = (OK, TIMEOUT, ERROR, CRASHED, NO_RESULT)


@dataclass(frozen=True)
class ExecResult:
    """What one program run produced, as plain strings only.

    ``value`` is the return value of ``solution()`` converted inside the sandbox: ``str(int)``,
    ``repr(float)``, ``"p/q"`` for a Fraction, ``str`` of a Decimal, the (truncated) string
    itself for a str, and ``None`` unless ``status == "ok"``. ``value_type`` is the type name of
    the returned object. ``stdout``/``stderr`` are decoded as UTF-8 and truncated.
    """

    status: str
    value: str | None = None
    value_type: str | None = None
    error: str | None = None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0


class RunPrograms(Protocol):
    """Runs ``def solution():`` programs and returns one result per program, in input order."""

    def __call__(self, programs: Sequence[str]) -> list[ExecResult]: ...
