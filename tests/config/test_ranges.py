"""Every numeric knob has a range, checked before anything loads: a value outside it (nan and
inf included) ends in one line that names the key, the value and what is allowed."""

from __future__ import annotations

import dataclasses
import types
import typing

import pytest

from reftlab.config import ConfigError, Range, RunConfig, validate
from reftlab.methods.registry import METHODS

NUMBERS = (int, float)


def numeric_type(hint) -> type | None:
    """`int` or `float` for a numeric field (optional or not), None for any other."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else None
    return hint if hint in NUMBERS else None


def numeric_fields(schema, prefix: str = "") -> list[tuple[str, type, dataclasses.Field]]:
    """(key, int or float, field) of every numeric field of `schema` and the nodes below it."""
    hints = typing.get_type_hints(schema)
    found = []
    for f in dataclasses.fields(schema):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            found += numeric_fields(hint, f"{prefix}{f.name}.")
        elif numeric_type(hint) is not None:
            found.append((f"{prefix}{f.name}", numeric_type(hint), f))
    return found


def all_knobs() -> list[tuple[list[str], str, type, dataclasses.Field]]:
    """Every numeric knob with the overrides that select a schema holding it."""
    knobs = [
        ([], key, kind, f)
        for key, kind, f in numeric_fields(RunConfig)
        if not key.startswith("method.")
    ]
    seen = set()
    for name, spec in METHODS.items():
        for key, kind, f in numeric_fields(spec.schema, "method."):
            if key not in seen:
                seen.add(key)
                knobs.append(([f"method={name}"], key, kind, f))
    return knobs


KNOBS = all_knobs()
IDS = [key for _, key, _, _ in KNOBS]


def test_the_walk_finds_the_knobs_of_every_node():
    keys = set(IDS)
    assert {"seed", "method.kl_coef", "eval.batch_size", "rollout.vllm.max_num_seqs"} <= keys
    assert {"dataset.distractor_rate", "budget.max_test_examples", "model.max_new_tokens"} <= keys


@pytest.mark.parametrize("select,key,kind,f", KNOBS, ids=IDS)
def test_every_numeric_knob_declares_a_range(select, key, kind, f):
    assert isinstance(f.metadata.get("range"), Range), f"{key}: declare it with knob(..., ge=...)"


@pytest.mark.parametrize("select,key,kind,f", KNOBS, ids=IDS)
def test_every_numeric_knob_rejects_what_lies_outside(composer, select, key, kind, f):
    bad = ["nan", "inf", "-inf"] if kind is float else [str(-(10**12))]
    for value in bad:
        with pytest.raises(ConfigError) as caught:
            validate(composer(*select, f"{key}={value}"))
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith(f"{key}="), message
        assert "must be" in message or "must lie in" in message


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["method.kl_coef=nan"], "method.kl_coef=nan is not a finite number; it must be >= 0"),
        (["method.rl_lr=inf"], "method.rl_lr=inf is not a finite number; it must be > 0"),
        (["method.sft_lr=nan"], "method.sft_lr=nan is not a finite number"),
        (["method.temperature=nan"], "method.temperature=nan is not a finite number"),
        (["eval.batch_size=0"], "eval.batch_size=0 must be > 0"),
        (["budget.max_test_examples=0"], "budget.max_test_examples=0 must be > 0"),
        (["budget.max_train_examples=0"], "budget.max_train_examples=0 must be > 0"),
        (["model.max_new_tokens=0"], "model.max_new_tokens=0 must be > 0"),
        (["seed=-1"], r"seed=-1 must lie in \[0, 4294967295\]"),
        (["seed=4294967296"], r"must lie in \[0, 4294967295\]"),
        (["method.partial_reward=1"], r"method.partial_reward=1.0 must lie in \[0, 1\)"),
        (["method.top_p=0"], r"method.top_p=0.0 must lie in \(0, 1\]"),
        (["eval.samples=4", "eval.temperature=0"], "set eval.temperature > 0"),
        (["model.max_new_tokens=256"], "leaves no room for a prompt in model.max_length=256"),
        (["model.num_heads=3"], "not divisible by model.num_heads=3"),
    ],
)
def test_absurd_values_name_the_key_and_the_allowed_range(composer, overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(composer(*overrides))


def test_greedy_evaluation_may_say_temperature_zero(composer):
    validate(composer("eval.samples=1", "eval.temperature=0"))
