"""The `reftlab` command: verbs first, otherwise one Hydra-composed training run (or sweep).

    reftlab [OVERRIDES]            train/evaluate one run (Hydra; `-m` for a sweep)
    reftlab score predictions=...  score a JSONL of completions against a data set
    reftlab eval CHECKPOINT ...    evaluate a saved model on a data set's test split
    reftlab report PATH            results table and plots of a run or sweep dir

The overrides are checked before Hydra starts a job (`app.compose`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from reftlab.app.compose import USAGE_ERROR, conf_dir, fail, precheck, register_configs
from reftlab.app.writable import disk_full_message
from reftlab.errors import ReftlabError


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

    args = _hydra_args(argv)
    if not args.help and not args.hydra_help and not args.info and not args.shell_completion:
        precheck(args.overrides)
        if not args.multirun:
            from reftlab.app.rundir import check_named_dir

            try:
                check_named_dir(args.overrides)
            except ReftlabError as exc:
                fail(str(exc))
        check_output_root(args.overrides, args.multirun)

    register_configs()

    @hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
    def _job(cfg: DictConfig) -> float | None:
        from reftlab.app.run import run_job

        try:
            return run_job(cfg)
        except ReftlabError as exc:
            print(f"reftlab: error: {exc}", file=sys.stderr)
            raise SystemExit(USAGE_ERROR) from None
        except (OSError, RuntimeError) as exc:
            disk_full = disk_full_message(exc, Path(cfg.output_dir))
            if disk_full is None:
                raise
            print(f"reftlab: error: {disk_full}", file=sys.stderr)
            raise SystemExit(USAGE_ERROR) from None

    sys.argv = ["reftlab", *argv]
    _job()


def check_output_root(overrides: Sequence[str], multirun: bool) -> None:
    """The run (or sweep) dir the command line names, or `outputs/` here, can be written."""
    from reftlab.app.writable import check_writable

    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    given = [o.partition("=")[2] for o in overrides if o.partition("=")[0] == key]
    try:
        check_writable(Path(given[-1] if given else "outputs"), key)
    except ReftlabError as exc:
        fail(str(exc))


def _verbs() -> dict[str, Callable[[Sequence[str]], int | None]]:
    from reftlab.app import evaluate, report, score

    return {"score": score.score, "eval": evaluate.eval_checkpoint, "report": report.report}


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbs = _verbs()
    if argv and argv[0] in verbs:
        try:
            code = verbs[argv[0]](argv[1:])
        except ReftlabError as exc:
            fail(str(exc))
        except OSError as exc:
            disk_full = disk_full_message(exc, Path.cwd())
            if disk_full is None:
                raise
            fail(disk_full)
        raise SystemExit(code or 0)
    train(argv)


if __name__ == "__main__":
    main()
