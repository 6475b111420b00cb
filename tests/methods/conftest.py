"""Shared fixtures: arith examples, a tokenizer trained on them, small models, composed configs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from reftlab.app.compose import conf_dir, register_configs
from reftlab.config import to_run_config
from reftlab.data import generate_arith_splits
from reftlab.methods.schedule import make_schedule
from reftlab.models import build_tiny_model, build_tokenizer


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One intra-op thread: on a small shared machine more threads only spin against others."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def examples():
    train, _ = generate_arith_splits(24, 1, seed=0)
    return train


@pytest.fixture(scope="session")
def tokenizer(examples, tmp_path_factory):
    corpus = [text for e in examples for text in (e.question, e.cot, e.program)]
    return build_tokenizer(corpus, vocab_size=400, save_dir=tmp_path_factory.mktemp("tok"))


@pytest.fixture()
def small_model(tokenizer):
    return build_tiny_model(
        tokenizer,
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        intermediate_size=64,
        max_position_embeddings=256,
        seed=0,
    )


@pytest.fixture(scope="module")
def method_env():
    """``method_env(*overrides)``: a stand-in for a run's ``Env`` with the composed config and
    its schedule, enough for ``methods.env.rl_settings``."""
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):

        def make(*overrides: str):
            run = to_run_config(compose("config", overrides=[*overrides, "output_dir=."]))
            return SimpleNamespace(run=run, schedule=make_schedule(run))

        yield make
    GlobalHydra.instance().clear()
