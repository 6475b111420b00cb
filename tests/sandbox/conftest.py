"""One sandbox pool shared by the sandbox tests (starting one costs about 0.1 s)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reftlab.sandbox.pool import DEFAULT_PRELOAD, SandboxPool

# socket is preloaded so that network attacks reach the kernel's defences instead of failing
# at "import socket"; resource so that a program can report its own limits.
TEST_PRELOAD = (*DEFAULT_PRELOAD, "socket", "resource")


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    with SandboxPool(workers=2, timeout_s=1.0, preload=TEST_PRELOAD) as sandbox:
        yield sandbox
