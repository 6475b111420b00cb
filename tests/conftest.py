"""Shared test helpers: the repository root, the shared real data, the composed configs."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared real data sets are not at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="module")
def composer():
    """Overrides -> a typed `RunConfig`, as the CLI composes it (shared by every test folder)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from reftlab.app.compose import conf_dir, register_configs
    from reftlab.config import to_run_config

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        yield lambda *overrides: to_run_config(
            compose("config", overrides=[*overrides, "output_dir=."])
        )
    GlobalHydra.instance().clear()
