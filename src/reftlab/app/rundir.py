"""Whether this command may use its run dir: decided before anything is written there.

    fresh    the dir holds no run: start one
    resume   `resume=true` (or a requeued SLURM job) on a dir that holds a run with the same config
    finished `resume=true` on a run that wrote summary.json: nothing to do, nothing rewritten

Everything else is refused with one line (exit 2), and the run dir is left byte for byte as it
was: a second run into a used dir, `resume=true` on a dir that holds no run, and `resume=true`
with a config that differs from the run's in a key outside `MAY_DIFFER_ON_RESUME`.
`resume=force` continues anyway; the changed keys are then recorded with the attempt
(progress.json's and summary.json's `attempts`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from reftlab.errors import ReftlabError

# Keys of the resolved config that may differ between the attempts of one run: they change
# where things are or how often they are saved, never what the run computes. The launcher,
# time limits and every other `hydra.*` setting are not part of the run's config at all.
MAY_DIFFER_ON_RESUME = (
    "resume",  # the flag itself
    "dry_run",  # a dry run writes nothing
    "output_dir",  # the same dir, spelt relative or absolute
    "cache_dir",  # where reusable artifacts live (a moved or shared cache)
    "save_every",  # how often checkpoints are written; steps and metrics do not depend on it
)
FORCE = "force"
RUN_FILES = ("progress.json", "config.yaml")


@dataclass(frozen=True)
class Decision:
    """What this command does with its run dir."""

    resume: bool
    finished: bool = False
    # The attempt's mode, recorded in progress.json: fresh, resume, force or requeue.
    mode: str = "fresh"
    # key -> [the run's value, this command's], for `resume=force`.
    changed: dict[str, list[Any]] = field(default_factory=dict)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"method": {"kl_coef": 0.05}}` -> `{"method.kl_coef": 0.05}` (lists stay values)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def changed_keys(recorded: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The keys whose values differ (a key on one side only counts), except the allowed ones."""
    old, new = flatten(recorded), flatten(given)
    keys = sorted(set(old) | set(new))
    allowed = set(MAY_DIFFER_ON_RESUME)
    return {
        k: [old.get(k), new.get(k)]
        for k in keys
        if k not in allowed and old.get(k, "<absent>") != new.get(k, "<absent>")
    }


def format_changes(changed: Mapping[str, list[Any]]) -> str:
    return ", ".join(f"{key}: {old} -> {new}" for key, (old, new) in changed.items())


def holds_run(run_dir: Path) -> bool:
    return any((run_dir / name).is_file() for name in RUN_FILES)


def recorded_config(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as exc:
        raise ReftlabError(
            f"{path} is unreadable ({exc.__class__.__name__}); cannot resume"
        ) from None


def decide(
    run_dir: Path,
    resume: bool | str,
    requeued: bool,
    config: dict[str, Any],
    in_sweep: bool = False,
) -> Decision:
    """Fresh, resume or finished for `config` (the resolved config) in `run_dir`; raises
    `ReftlabError` for a command that must not touch the dir. A job of a sweep (`-m`) resumed
    with `resume=true` whose dir holds no run starts it: the sweep stopped before reaching it."""
    asked = resume is True or resume == FORCE
    if not asked and not requeued:
        if holds_run(run_dir):
            raise ReftlabError(
                f"{run_dir} already holds a run; pass resume=true to continue it, or use a new "
                "hydra.run.dir"
            )
        return Decision(resume=False)
    if not holds_run(run_dir):
        if requeued or in_sweep:
            return Decision(resume=False)
        raise ReftlabError(
            f"resume=true: no run to resume in {run_dir} (no progress.json or config.yaml); "
            "check hydra.run.dir"
        )
    recorded = recorded_config(run_dir)
    changed = {} if recorded is None else changed_keys(recorded, config)
    if changed and resume != FORCE:
        raise ReftlabError(
            f"resume: the config differs from the run's ({format_changes(changed)}); resume with "
            "the run's config (its config.yaml), or pass resume=force to continue with the new "
            "values (recorded in the run)"
        )
    mode = FORCE if changed else ("resume" if asked else "requeue")
    finished = (run_dir / "summary.json").is_file()
    return Decision(resume=True, finished=finished, mode=mode, changed=changed)


def check_named_dir(overrides: list[str]) -> None:
    """Before Hydra starts (and creates the run dir): `resume=true` with a `hydra.run.dir` that
    holds no run is a mistyped dir, refused without creating it."""
    given = dict(o.split("=", 1) for o in overrides if "=" in o)
    asked = given.get("resume", "false").lower() in ("true", "yes", "on", "1", FORCE)
    named = given.get("hydra.run.dir")
    if asked and named and not holds_run(Path(named)):
        raise ReftlabError(
            f"resume=true: no run to resume in {named} (no progress.json or config.yaml); "
            "check hydra.run.dir"
        )
