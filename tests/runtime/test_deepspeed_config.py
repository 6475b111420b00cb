"""`deepspeed=` and `grad_accum=`: validated before anything loads; the shipped ZeRO-2 config
builds Accelerate's plugin; where DeepSpeed cannot run, one clear line says why."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from reftlab.app.compose import validate_run
from reftlab.config import ConfigError
from reftlab.errors import ReftlabError
from reftlab.runtime.deepspeed import check_usable, load_config, make_plugin, resolve_config

HAS_GPU_AND_DEEPSPEED = torch.cuda.is_available() and importlib.util.find_spec("deepspeed")


def test_defaults_are_one_shard_and_no_deepspeed(composer):
    run = composer()
    assert (run.grad_accum, run.deepspeed) == (1, None)
    validate_run(run)


def test_shipped_zero2_is_zero_stage_2(composer):
    run = composer("deepspeed=zero2")
    validate_run(run)
    config = json.loads(resolve_config("zero2").read_text())
    assert config["zero_optimization"]["stage"] == 2
    assert config["gradient_accumulation_steps"] == 1


def test_a_deepspeed_json_path_is_accepted(composer, tmp_path):
    path = tmp_path / "zero1.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 1}}))
    validate_run(composer(f"deepspeed={path}"))
    assert load_config(str(path))["zero_optimization"]["stage"] == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["deepspeed=zero9"], "neither a shipped config (zero2) nor a DeepSpeed JSON file"),
        (["deepspeed=/no/such.json"], "neither a shipped config"),
        (["deepspeed=zero2", "grad_accum=2"], "set grad_accum=1"),
        (["grad_accum=0"], "grad_accum=0 must be >= 1"),
        (["save_every=-1"], "save_every=-1 must be >= 0"),
    ],
)
def test_invalid_scale_out_settings_fail_with_what_to_change(composer, overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_run(composer(*overrides))


def test_a_json_without_zero_section_or_with_zero3_is_rejected(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{}")
    with pytest.raises(ReftlabError, match="no zero_optimization section"):
        load_config(str(path))
    path.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    with pytest.raises(ReftlabError, match="ZeRO stage 3 is not supported"):
        load_config(str(path))


def test_the_plugin_is_built_from_the_shipped_config():
    # Building the plugin reads the JSON only; deepspeed itself is imported by the Accelerator.
    plugin = make_plugin("zero2")
    assert plugin.zero_stage == 2
    assert plugin.gradient_clipping == 1.0
    assert plugin.deepspeed_config["zero_optimization"]["stage"] == 2


def test_where_deepspeed_cannot_run_one_line_says_why():
    with pytest.raises(ReftlabError, match="needs GPUs and none is visible"):
        check_usable("zero2", cuda_available=False, deepspeed_installed=True)
    with pytest.raises(ReftlabError, match="make install-gpu"):
        check_usable("zero2", cuda_available=True, deepspeed_installed=False)
    check_usable("zero2", cuda_available=True, deepspeed_installed=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_make_accelerator_refuses_deepspeed_on_cpu():
    from reftlab.methods.env import make_accelerator

    with pytest.raises(ReftlabError, match="needs GPUs"):
        make_accelerator("fp32", "zero2")


@pytest.mark.skipif(not HAS_GPU_AND_DEEPSPEED, reason="needs DeepSpeed/GPU")
def test_accelerator_runs_deepspeed_zero2():
    from accelerate.utils import DistributedType

    from reftlab.methods.env import make_accelerator

    accelerator = make_accelerator("bf16", "zero2")
    assert accelerator.distributed_type == DistributedType.DEEPSPEED
    assert accelerator.state.deepspeed_plugin.zero_stage == 2
