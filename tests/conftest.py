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


# Under pytest-xdist (`make test`), the tests of one group run in one worker, one after another.
# slurm: the local cluster's daemons are started once per worker session and shared.
# vllm, real_model: the longest runs (vLLM engines, SmolLM2-135M), several GB each; two groups of
# about equal length, so that the two workers end together.
REAL_MODEL_TESTS = (
    "test_the_bandit_on_the_offline_real_model_with_vllm",
    "test_real_pretrained_model_path",
)
REAL_MODEL_FILES = ("test_gguf.py", "test_vllm_engine.py")


def xdist_group_of(item) -> str | None:
    if item.get_closest_marker("slurm"):
        return "slurm"
    if item.name in REAL_MODEL_TESTS or item.path.name in REAL_MODEL_FILES:
        return "real_model"
    if item.path.name == "test_vllm_runs.py":
        return "vllm"
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        group = xdist_group_of(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
