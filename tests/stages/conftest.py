"""One intra-op torch thread for the in-process tests here (the tiny-model RL steps)."""

from __future__ import annotations

import pytest
import torch

# The tiny model and tokenizer fixtures of the model tests, for the rollout tests here.
from tests.models.conftest import (  # noqa: F401
    build_small,
    corpus,
    tokenizer,
    trained_model,
    trained_pairs,
)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """On a small shared machine, one thread per core spins against the other processes and
    makes tiny-model steps ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
