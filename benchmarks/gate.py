"""Take turns: two benchmark processes run their iterations alternately, never at once.

A worker calls `Gate.wait()` at the start of every iteration and once after the last; the
parent (`rl_throughput`) lets one worker through at a time. Load on the machine from elsewhere
then falls on both sides alike, iteration by iteration, and neither side's iterations overlap
the other's. The protocol is one line each way over a pair of pipes: the worker writes
``wait``, the parent answers ``go``.
"""

from __future__ import annotations

import os
import time


class Gate:
    """The worker's end. With no pipes (a worker run by hand) it never blocks."""

    def __init__(self, spec: str | None = None):
        self.arrivals: list[float] = []
        self.departures: list[float] = []
        self._pipes = None
        if spec:
            read_fd, write_fd = (int(fd) for fd in spec.split(","))
            self._pipes = (os.fdopen(read_fd, "r"), os.fdopen(write_fd, "w"))

    def wait(self) -> None:
        """Block until the parent says go; the times of arriving and leaving are kept."""
        self.arrivals.append(time.perf_counter())
        if self._pipes is not None:
            commands, replies = self._pipes
            replies.write("wait\n")
            replies.flush()
            commands.readline()  # "go", or end of file if the parent is gone: go on either way
        self.departures.append(time.perf_counter())

    def iteration_seconds(self) -> list[float]:
        """Time from leaving each gate to arriving at the next: the iterations, waits excluded."""
        pairs = zip(self.departures[:-1], self.arrivals[1:], strict=True)
        return [arrive - leave for leave, arrive in pairs]


class Turnstile:
    """The parent's end for one worker: started with ``pass_fds``, let through one step at a time."""

    def __init__(self) -> None:
        self._to_worker = os.pipe()
        self._from_worker = os.pipe()
        self._commands = None
        self._replies = None

    @property
    def worker_fds(self) -> tuple[int, int]:
        return self._to_worker[0], self._from_worker[1]

    @property
    def spec(self) -> str:
        return ",".join(str(fd) for fd in self.worker_fds)

    def started(self) -> None:
        """Close the worker's ends here, once the worker process holds them."""
        for fd in self.worker_fds:
            os.close(fd)
        self._commands = os.fdopen(self._to_worker[1], "w")
        self._replies = os.fdopen(self._from_worker[0], "r")

    def await_worker(self) -> bool:
        """Block until the worker reaches its next gate; False if it exited instead."""
        return self._replies.readline() == "wait\n"

    def release(self) -> None:
        self._commands.write("go\n")
        self._commands.flush()

    def close(self) -> None:
        for stream in (self._commands, self._replies):
            if stream is not None:
                stream.close()
