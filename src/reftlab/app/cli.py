"""The `reftlab` command: verbs first, otherwise one Hydra-composed training run (or sweep).

    reftlab [OVERRIDES]            train/evaluate one run (Hydra; `-m` for a sweep)
    reftlab score predictions=...  score a JSONL of completions against a data set
    reftlab eval CHECKPOINT ...    evaluate a saved model on a data set's test split
    reftlab report PATH            results table and plots of a run or sweep dir

Every override is composed and validated here before Hydra starts a job, so a wrong group
option, a wrong type or a forbidden combination ends in one line on stderr and exit code 2.
"""

from __future__ import annotations

import itertools
import sys
import typing
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reftlab.errors import ReftlabError

if TYPE_CHECKING:
    from reftlab.config import RunConfig

USAGE_ERROR = 2
# A sweep larger than this is still launched, but only its first combinations are pre-checked.
MAX_PRECHECKED_COMBINATIONS = 256


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


def _override_values(override) -> list[str]:
    """The string values an override takes: one, or each value of a sweep."""
    if override.is_sweep_override():
        return list(override.sweep_string_iterator())
    return [override.get_value_element_as_str()]


def _check_group_options(overrides) -> None:
    for override in overrides:
        group = override.key_or_group
        if group not in USER_GROUPS or override.is_delete():
            continue
        known = group_options(group)
        for value in _override_values(override):
            if value not in known:
                fail(f"unknown {group} '{value}'; choose one of: {', '.join(known)}")


def _check_keys(overrides) -> None:
    """Name an unknown key and the nearest known ones, instead of OmegaConf's struct error."""
    import dataclasses
    import difflib

    from reftlab.config import RunConfig

    for override in overrides:
        if override.key_or_group in USER_GROUPS or override.package is not None:
            continue
        node = RunConfig
        for depth, part in enumerate(override.key_or_group.split(".")):
            if not dataclasses.is_dataclass(node):
                break
            fields = {f.name: f for f in dataclasses.fields(node)}
            if part not in fields:
                prefix = ".".join(override.key_or_group.split(".")[:depth])
                close = difflib.get_close_matches(part, list(fields), n=3)
                where = f" in {prefix}" if prefix else ""
                if close:
                    fail(
                        f"unknown key '{override.key_or_group}'; did you mean {' or '.join(close)}?"
                    )
                fail(
                    f"unknown key '{override.key_or_group}'; known keys{where}: "
                    f"{', '.join(sorted(fields))}"
                )
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
        fail(_first_line_of(exc))
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

    from reftlab.config import register_configs, to_run_config, validate

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
                validate(run)
            except ReftlabError as exc:
                fail(str(exc))
            runs.append(run)
    GlobalHydra.instance().clear()
    return runs


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


def _hydra_args(argv: Sequence[str]):
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()
    try:
        return parser.parse_args(list(argv))
    except SystemExit:
        raise SystemExit(USAGE_ERROR) from None


def train(argv: Sequence[str]) -> None:
    """Run Hydra's main with our config dir; the job itself is `reftlab.app.run.run_job`."""
    import hydra
    from omegaconf import DictConfig

    from reftlab.config import register_configs

    args = _hydra_args(argv)
    if not args.help and not args.hydra_help and not args.info and not args.shell_completion:
        precheck(args.overrides)

    register_configs()

    @hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
    def _job(cfg: DictConfig) -> float | None:
        from reftlab.app.run import run_job

        try:
            return run_job(cfg)
        except ReftlabError as exc:
            print(f"reftlab: error: {exc}", file=sys.stderr)
            raise SystemExit(USAGE_ERROR) from None

    sys.argv = ["reftlab", *argv]
    _job()


def _verbs() -> dict[str, Callable[[Sequence[str]], int | None]]:
    from reftlab.app import verbs

    return {"score": verbs.score, "eval": verbs.eval_checkpoint, "report": verbs.report}


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbs = _verbs()
    if argv and argv[0] in verbs:
        try:
            code = verbs[argv[0]](argv[1:])
        except ReftlabError as exc:
            fail(str(exc))
        raise SystemExit(code or 0)
    train(argv)


if __name__ == "__main__":
    main()
