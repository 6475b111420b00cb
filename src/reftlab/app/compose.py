"""Compose and check a command line's overrides before anything heavy loads.

Every override is parsed, checked against the config groups and the schema's keys, composed and
validated here, so a wrong group option, a wrong type or a forbidden combination ends in one line
on stderr and exit code 2. The verbs use `compose_run` for their one configuration; a training
command line is pre-checked with `precheck` before Hydra starts a job.
"""

from __future__ import annotations

import itertools
import sys
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reftlab.errors import ReftlabError

if TYPE_CHECKING:
    from reftlab.config import RunConfig

USAGE_ERROR = 2
# A sweep larger than this is still launched, but only its first combinations are pre-checked.
MAX_PRECHECKED_COMBINATIONS = 256
QUOTE_HINT = (
    "quote a value that holds non-ASCII or special characters, e.g. \"key='données.jsonl'\""
)


def conf_dir() -> Path:
    """The config groups: shipped inside the wheel, or `conf/` at the repository root."""
    packaged = Path(__file__).resolve().parents[1] / "conf"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "conf"


def fail(message: str) -> None:
    print(f"reftlab: error: {message}", file=sys.stderr)
    raise SystemExit(USAGE_ERROR)


def group_options(group: str) -> list[str]:
    folder = conf_dir() / group
    return sorted(p.stem for p in folder.glob("*.yaml"))


USER_GROUPS = ("method", "cot", "dataset", "model", "budget", "logger")
# Groups that conf/config.yaml does not list, added with `+`: `+experiment=reft_table`.
ADDED_GROUPS = ("experiment", "bandit_ablation")


def _override_values(override) -> list[str]:
    """The string values an override takes: one, or each value of a sweep."""
    if override.is_sweep_override():
        return list(override.sweep_string_iterator())
    return [override.get_value_element_as_str()]


def _check_group_options(overrides) -> None:
    for override in overrides:
        group = override.key_or_group
        if group not in USER_GROUPS + ADDED_GROUPS or override.is_delete():
            continue
        known = group_options(group)
        for value in _override_values(override):
            if value not in known:
                fail(f"unknown {group} '{value}'; choose one of: {', '.join(known)}")


def default_option(group: str) -> str | None:
    """The option `conf/config.yaml` picks for `group` when the command line names none."""
    from omegaconf import OmegaConf

    defaults = OmegaConf.to_container(OmegaConf.load(conf_dir() / "config.yaml").defaults)
    for entry in defaults:
        if isinstance(entry, dict) and group in entry:
            return str(entry[group])
    return None


def _chosen_methods(overrides) -> list[str]:
    for override in overrides:
        if override.key_or_group == "method" and not override.is_delete():
            return _override_values(override)
    default = default_option("method")
    return [default] if default else []


def _unknown_key(key: str, fields: Iterable[str], where: str) -> None:
    import difflib

    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(fields), n=3)
    if close:
        fail(f"unknown key '{key}'; did you mean {' or '.join(close)}?")
    fail(f"unknown key '{key}'; known keys{where}: {', '.join(sorted(fields))}")


def _check_method_key(key: str, methods: Sequence[str]) -> None:
    """A `method.KNOB` override must be a knob of every chosen method; say whose knob it is."""
    import dataclasses

    from reftlab.methods.registry import METHODS

    knob = key.split(".")[1]
    for name in methods:
        if name not in METHODS:
            continue
        fields = [f.name for f in dataclasses.fields(METHODS[name].schema)]
        if knob in fields:
            continue
        owners = [m for m, spec in METHODS.items() if knob in spec.schema.__dataclass_fields__]
        if owners:
            fail(
                f"method={name} has no knob '{knob}' (it belongs to method="
                f"{', '.join(owners)}); drop {key} or choose one of those methods"
            )
        _unknown_key(key, fields, f" of method={name}")


def _check_keys(overrides) -> None:
    """Name an unknown key and the nearest known ones, instead of OmegaConf's struct error."""
    import dataclasses

    from reftlab.config import RunConfig

    methods = _chosen_methods(overrides)
    for override in overrides:
        key = override.key_or_group
        if key in USER_GROUPS + ADDED_GROUPS or override.package is not None:
            continue
        if key.startswith("method."):
            _check_method_key(key, methods)
            continue
        node = RunConfig
        for depth, part in enumerate(key.split(".")):
            if not dataclasses.is_dataclass(node):
                break
            fields = [f.name for f in dataclasses.fields(node)]
            if part not in fields:
                prefix = ".".join(key.split(".")[:depth])
                _unknown_key(key, fields, f" in {prefix}" if prefix else "")
            # Annotations are strings under `from __future__ import annotations`.
            node = typing.get_type_hints(node)[part]


def _first_line_of(exc: BaseException) -> str:
    """Hydra/OmegaConf messages span lines; keep the parts a user needs on one line."""
    parts = []
    while exc is not None:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        if lines:
            parts.append(lines[0])
        exc = exc.__cause__
    return ": ".join(dict.fromkeys(parts)) or "invalid configuration"


def _parse_checked(overrides_as_strings: Sequence[str]) -> list:
    """Parse the overrides (hydra.* dropped) and check group options and keys; fail in one line."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides_as_strings))
    except Exception as exc:  # Hydra's grammar errors
        message = _first_line_of(exc)
        if "LexerNoViableAlt" in message:  # a character the unquoted grammar has no rule for
            message += f"; {QUOTE_HINT}"
        fail(message)
    parsed = [o for o in parsed if not (o.key_or_group.startswith("hydra"))]
    _check_group_options(parsed)
    _check_keys(parsed)
    return parsed


def _choices(parsed) -> list[list[str]]:
    """For each override, the `key=value` strings it expands to (one unless it is a sweep)."""
    choices = []
    for override in parsed:
        key = override.get_key_element()
        try:
            values = _override_values(override)
        except Exception:  # glob sweeps and the like: let Hydra expand them
            continue
        choices.append([f"{key}={value}" for value in values])
    return choices


def _compose_validated(combos: Iterable[Sequence[str]]) -> list[RunConfig]:
    """Compose and validate each combination of overrides into a `RunConfig`; fail in one line."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from reftlab.config import to_run_config

    runs = []
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        for combo in combos:
            try:
                cfg = compose("config", overrides=[*combo, "output_dir=."])
                run = to_run_config(cfg)
            except Exception as exc:
                fail(_first_line_of(exc))
            try:
                validate_run(run)
            except ReftlabError as exc:
                fail(str(exc))
            runs.append(run)
    GlobalHydra.instance().clear()
    return runs


def register_configs() -> None:
    """Register the run schema and every method's schema (from the method registry)."""
    from reftlab.config import register_configs as register
    from reftlab.methods.registry import method_schemas

    register(method_schemas())


def validate_run(run: RunConfig) -> None:
    """`reftlab.config.validate`, and the DeepSpeed config a run names (a file to read)."""
    from reftlab.config import ConfigError, validate
    from reftlab.runtime.deepspeed import load_config
    from reftlab.stages.engines import check_engine_available

    validate(run)
    if run.rollout.engine == "vllm":
        try:
            check_engine_available(run.rollout.engine)
        except ReftlabError as exc:
            raise ConfigError(str(exc)) from None
    if run.deepspeed is not None:
        try:
            load_config(run.deepspeed)
        except ReftlabError as exc:
            raise ConfigError(str(exc)) from None


def precheck(overrides_as_strings: Sequence[str]) -> None:
    """Compose and validate every combination the command line asks for; fail in one line."""
    choices = _choices(_parse_checked(overrides_as_strings))
    combos = itertools.islice(itertools.product(*choices), MAX_PRECHECKED_COMBINATIONS)
    _compose_validated(combos)


def compose_run(overrides_as_strings: Sequence[str]) -> RunConfig:
    """The one validated `RunConfig` the overrides compose to (for verbs); fail in one line.

    A verb runs one configuration, so a sweep (`key=a,b`) is an error here.
    """
    parsed = _parse_checked(overrides_as_strings)
    for override in parsed:
        if override.is_sweep_override():
            fail(f"'{override.input_line}' is a sweep; give one value per key here")
    return _compose_validated([[values[0] for values in _choices(parsed)]])[0]
