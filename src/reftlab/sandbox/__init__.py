"""Executing untrusted ``def solution():`` programs: a pool of confined worker processes.

``SandboxPool(...)(programs) -> list[ExecResult]``, in input order. How programs are confined,
and what that does and does not protect, is described in ``confine``; the pool's process
structure in ``pool``.
"""

from reftlab.sandbox.pool import SandboxPool, default_worker_count
from reftlab.sandbox.result import STATUSES, ExecResult, RunPrograms

__all__ = ["STATUSES", "ExecResult", "RunPrograms", "SandboxPool", "default_worker_count"]
