"""The composer the config tests share: overrides -> a typed `RunConfig`, as the CLI composes it."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from reftlab.app.compose import conf_dir, register_configs
from reftlab.config import to_run_config


@pytest.fixture(scope="module")
def composer():
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        yield lambda *overrides: to_run_config(
            compose("config", overrides=[*overrides, "output_dir=."])
        )
    GlobalHydra.instance().clear()
