"""One intra-op torch thread for the in-process tests here (the tiny-model RL steps)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """On a small shared machine, one thread per core spins against the other processes and
    makes tiny-model steps ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
