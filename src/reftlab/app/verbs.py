"""The verbs beside training: `reftlab score ...`, `reftlab eval CHECKPOINT` and
`reftlab report PATH`.

`reftlab eval` evaluates a saved model on a data set's test split exactly as a run evaluates
(`reftlab.stages.evaluate`), writes the predictions and prints one JSON line of metrics.

`reftlab report` (the table and plots themselves live in `reftlab.report.collect`) reads a run or sweep
dir and fails in one line when PATH holds no run or the report cannot be written.

`reftlab score` scores a JSONL of completions against the test split of a data set with the
reward a run composed from the same overrides would use, writes one result per item next to
the input and prints one JSON line of metrics. Every input error (missing or malformed file,
unknown or duplicate id, bad override) is a `ReftlabError`: one line on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reftlab.config import RunConfig
from reftlab.data import CHOICE, Example, format_prompt
from reftlab.errors import ReftlabError
from reftlab.rewards import Score, check_choice_hacking, extract_program, score_program
from reftlab.sandbox.result import ExecResult
from reftlab.rewards.scorer import Scorer

SCORE_USAGE = """\
usage: reftlab score predictions=FILE [output=FILE] [OVERRIDES ...]

Score a JSONL file of completions against the test split of a data set, with the reward that a
run composed from the same overrides uses (cot, method.reward_shape, method.partial_reward).

  predictions=FILE  one JSON object per line: {"id": ..., "completion": ...}. Other keys are
                    ignored, so a run's predictions/*.jsonl can be scored again. Ids are the
                    data set's own: ReFT files' item_id (e.g. svamp_0), a record's id/ID field,
                    else <dataset>_test_<i> with i the 0-based record index in the test file
                    (e.g. gsm8k_test_0 for the first line of GSM8K's test.jsonl).
                    With cot=program each completion must hold the whole def solution() program.
  output=FILE       per-item results (default: FILE with .jsonl replaced by .scored.jsonl;
                    never the input itself).
  OVERRIDES         Hydra overrides as for training, e.g. dataset=gsm8k cot=natural
                    dataset.test_file=test.jsonl (or dataset.path=DIR) method.partial_reward=0.1

Prints one JSON line: n (items predicted), accuracy and mean_reward and extracted_rate over
those, coverage (n / test items), missing (test items without a prediction), and for
multiple-choice data sets the reward-hacking check. Input errors: one line on stderr, exit 2.

example:
  reftlab score predictions=preds.jsonl dataset=gsm8k dataset.test_file=gsm8k/test.jsonl
"""

# The arguments of `reftlab score` that are not config keys.
PREDICTIONS_ARG = "predictions"
OUTPUT_ARG = "output"
# How many unknown ids an error message lists.
MAX_IDS_SHOWN = 5


@dataclass(frozen=True)
class Prediction:
    """One line of a predictions file; ``line`` is its 1-based line number."""

    id: str
    completion: str
    line: int


def split_score_args(argv: Sequence[str]) -> tuple[Path, Path | None, list[str]]:
    """``predictions=FILE``, the optional ``output=FILE``, and the config overrides left."""
    named: dict[str, str] = {}
    overrides = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key in (PREDICTIONS_ARG, OUTPUT_ARG):
            if key in named:
                raise ReftlabError(f"{key}= given twice; give it once")
            if not value:
                raise ReftlabError(f"{key}= needs a file path")
            named[key] = value
        else:
            overrides.append(arg)
    if PREDICTIONS_ARG not in named:
        raise ReftlabError(
            'reftlab score needs predictions=FILE (a JSONL of {"id", "completion"}); '
            "see reftlab score --help"
        )
    output = named.get(OUTPUT_ARG)
    return (
        Path(named[PREDICTIONS_ARG]).expanduser(),
        Path(output).expanduser() if output else None,
        overrides,
    )


def _to_prediction(record: object, where: str, number: int) -> Prediction:
    if not isinstance(record, dict):
        raise ReftlabError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [key for key in ("id", "completion") if key not in record]
    if missing:
        raise ReftlabError(f"{where}: missing {' and '.join(map(repr, missing))}")
    example_id, completion = record["id"], record["completion"]
    if not isinstance(example_id, str) or not example_id:
        # An int id would silently never match: data set ids are strings (gsm8k_test_0).
        raise ReftlabError(
            f"{where}: 'id' must be the data set's id as a string, got {example_id!r}"
        )
    if not isinstance(completion, str):
        raise ReftlabError(
            f"{where}: 'completion' must be a string, got {type(completion).__name__}"
        )
    return Prediction(example_id, completion, number)


def read_predictions(path: Path) -> list[Prediction]:
    """The predictions of a JSONL file, in file order; blank lines are skipped.

    A line that is not a JSON object with a string ``id`` and ``completion``, or that repeats
    an id, raises ``ReftlabError`` naming the file and the 1-based line.
    """
    if not path.is_file():
        raise ReftlabError(f"predictions={path}: no such file")
    predictions: list[Prediction] = []
    first_line: dict[str, int] = {}
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                where = f"{path}, line {number}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ReftlabError(
                        f"{where}: invalid JSON ({exc.msg} at column {exc.colno})"
                    ) from None
                prediction = _to_prediction(record, where, number)
                if prediction.id in first_line:
                    raise ReftlabError(
                        f"{where}: duplicate id {prediction.id!r} "
                        f"(first at line {first_line[prediction.id]})"
                    )
                first_line[prediction.id] = number
                predictions.append(prediction)
    except UnicodeDecodeError as exc:
        raise ReftlabError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not predictions:
        raise ReftlabError(f"{path}: no predictions (expected one JSON object per line)")
    return predictions


def match_examples(
    predictions: Sequence[Prediction], examples: Sequence[Example], path: Path, source: str
) -> list[Example]:
    """The example each prediction answers; any id not in ``examples`` is an error."""
    by_id = {example.id: example for example in examples}
    unknown = [p.id for p in predictions if p.id not in by_id]
    if unknown:
        shown = ", ".join(repr(i) for i in unknown[:MAX_IDS_SHOWN])
        more = f" and {len(unknown) - MAX_IDS_SHOWN} more" if len(unknown) > MAX_IDS_SHOWN else ""
        hint = f"; its ids look like {examples[0].id!r}" if examples else ""
        raise ReftlabError(
            f"{path}: {len(unknown)} id(s) not in the test split ({source}): {shown}{more}{hint}"
        )
    return [by_id[p.id] for p in predictions]


def score_all(
    scorer: Scorer, completions: Sequence[str], examples: Sequence[Example]
) -> tuple[list[Score], list[ExecResult] | None]:
    """Scores, and for programs the sandbox results (the hacking check and the output read them).

    Programs run in one batch through a sandbox pool built from the scorer's settings and are
    scored exactly as ``Scorer.score`` does; it is not called for them because it does not
    return the sandbox results.
    """
    if scorer.cot != "program":
        return scorer.score(completions, examples), None
    from reftlab.sandbox.pool import SandboxError, SandboxPool

    try:
        with SandboxPool(scorer.workers, timeout_s=scorer.program_timeout_s) as pool:
            results = pool.run([extract_program(c) for c in completions])
    except SandboxError as exc:
        raise ReftlabError(f"the program sandbox could not start: {exc}") from None
    scores = [
        score_program(result, example, partial_reward=scorer.partial_reward)
        for result, example in zip(results, examples, strict=True)
    ]
    return scores, results


def to_record(
    prediction: Prediction,
    example: Example,
    score: Score,
    result: ExecResult | None,
    hack_suspected: bool | None,
) -> dict:
    """One line of the scored file (``exec_error`` for programs, ``hack_suspected`` for choices)."""
    record = {
        "id": prediction.id,
        "completion": prediction.completion,
        "extracted": score.extracted,
        "gold": example.answer,
        "reward": score.reward,
        "correct": score.correct,
        "exec_status": score.exec_status,
    }
    if result is not None:
        record["exec_error"] = result.error
    if hack_suspected is not None:
        record["hack_suspected"] = hack_suspected
    return record


def default_output(path: Path) -> Path:
    """``preds.jsonl`` -> ``preds.scored.jsonl``; any other name gets ``.scored.jsonl`` added."""
    stem = path.name[: -len(".jsonl")] if path.name.endswith(".jsonl") else path.name
    return path.with_name(f"{stem}.scored.jsonl")


def write_jsonl(path: Path, records: Sequence[dict]) -> None:
    """Write the records, replacing the file only once all are written."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("w", encoding="utf-8") as out:
            for record in records:
                out.write(json.dumps(record) + "\n")
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ReftlabError(f"output={path}: cannot write ({exc.strerror})") from None


def summarise(scores: Sequence[Score], n_test: int) -> dict:
    """The metrics over the predicted items, and how much of the test split they cover."""
    n = len(scores)
    correct = sum(s.correct for s in scores)
    return {
        "n": n,
        "accuracy": correct / n,
        "mean_reward": sum(s.reward for s in scores) / n,
        "extracted_rate": sum(s.extracted is not None for s in scores) / n,
        "coverage": n / n_test,
        "missing": n_test - n,
        "n_test": n_test,
        "correct": correct,
        # Missing items counted as wrong: comparable across partial prediction files.
        "accuracy_over_split": correct / n_test,
    }


def check_hacking(
    run: RunConfig,
    completions: Sequence[str],
    examples: Sequence[Example],
    results: Sequence[ExecResult] | None,
) -> tuple[dict, set[int]]:
    """The reward-hacking counts and rates of a multiple-choice batch, and the flagged indices."""
    hacking = check_choice_hacking(
        completions,
        examples,
        cot=run.cot.name,
        exec_results=results,
        markers=run.cot.answer_markers,
    )
    counts = {k: v for k, v in dataclasses.asdict(hacking).items() if k != "flagged"}
    return {**counts, **hacking.rates()}, set(hacking.flagged)


def score(argv: Sequence[str]) -> int:
    """Score a JSONL of completions against a data set's test split (see ``SCORE_USAGE``)."""
    if any(arg in ("-h", "--help") for arg in argv):
        print(SCORE_USAGE, end="")
        return 0
    from reftlab.app.cli import compose_run
    from reftlab.data.splits import load_splits
    from reftlab.rewards.scorer import make_scorer

    predictions_path, output, overrides = split_score_args(argv)
    output = output or default_output(predictions_path)
    if output.resolve() == predictions_path.resolve():
        raise ReftlabError(f"output={output} is the predictions file; name another output")
    run = compose_run(overrides)
    predictions = read_predictions(predictions_path)
    splits = load_splits(run, need_train=False)
    examples = match_examples(predictions, splits.test, predictions_path, splits.sources["test"])
    completions = [p.completion for p in predictions]

    with make_scorer(run) as scorer:
        scores, results = score_all(scorer, completions, examples)
    summary = summarise(scores, len(splits.test))
    flagged: set[int] | None = None
    if run.dataset.answer_type == CHOICE:
        summary["hacking"], flagged = check_hacking(run, completions, examples, results)
    if results is not None:
        summary["exec_status"] = dict(Counter(r.status for r in results))

    records = [
        to_record(
            predictions[i],
            examples[i],
            scores[i],
            results[i] if results is not None else None,
            i in flagged if flagged is not None else None,
        )
        for i in range(len(predictions))
    ]
    write_jsonl(output, records)
    summary.update(
        dataset=run.dataset.name,
        cot=run.cot.name,
        reward_shape=run.method.reward_shape,
        partial_reward=scorer.partial_reward,
        test_source=splits.sources["test"],
        predictions=str(predictions_path),
        output=str(output),
    )
    print(json.dumps(summary))
    sys.stdout.flush()
    return 0


EVAL_USAGE = """\
usage: reftlab eval CHECKPOINT [output=FILE] [OVERRIDES ...]

Evaluate a saved model on the test split of a data set with the evaluation a run uses: greedy
accuracy; with eval.samples=K also majority voting (maj@K) and pass@K; with eval.rerank=true
also reranking of the K samples by a trained reward model (rerank@K); on multiple-choice data
sets the reward-hacking check.

  CHECKPOINT   a transformers model folder (config.json, weights, tokenizer): a run's
               checkpoints/<stage>/final, or a warm-up in cache_dir/stages/sft-*.
  output=FILE  per-question predictions, JSONL (default: eval_<dataset>_<cot>.jsonl here).
  OVERRIDES    Hydra overrides as for training: dataset=..., cot=... (the prompt format the
               model was trained with), budget.max_test_examples=N, model.max_new_tokens=N,
               eval.samples=K, eval.temperature=T, eval.batch_size=B, precision=...;
               eval.rerank=true needs eval.reward_model=DIR, a reward model that a run with
               eval.rerank=true trained (cache_dir/stages/reward_model-*).

Prints one JSON line: the eval/* metrics, and the checkpoint, data set, cot, test source and
output file. Input errors: one line on stderr, exit 2.

example:
  reftlab eval outputs/.../checkpoints/ppo/final dataset=gsm8k dataset.path=DIR eval.samples=8
"""


def split_eval_args(argv: Sequence[str]) -> tuple[Path, Path | None, list[str]]:
    """The checkpoint folder (the one argument without ``=``), ``output=FILE``, the overrides."""
    positional = [arg for arg in argv if "=" not in arg and not arg.startswith("-")]
    if len(positional) != 1:
        found = f"got {len(positional)}: {' '.join(positional)}" if positional else "got none"
        raise ReftlabError(
            f"reftlab eval needs one CHECKPOINT folder ({found}); see reftlab eval --help"
        )
    output = None
    overrides = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if arg in positional:
            continue
        if sep and key == OUTPUT_ARG:
            if output is not None or not value:
                raise ReftlabError("output= needs one file path, given once")
            output = Path(value).expanduser()
        else:
            overrides.append(arg)
    return Path(positional[0]).expanduser(), output, overrides


def check_model_folder(path: Path, what: str = "CHECKPOINT") -> None:
    """A folder that transformers can load a model from; else a one-line error."""
    if not path.exists():
        raise ReftlabError(f"{what} {path}: no such folder")
    if not path.is_dir() or not (path / "config.json").is_file():
        raise ReftlabError(
            f"{what} {path} is not a model folder (no config.json); give a transformers "
            "checkpoint folder such as a run's checkpoints/<stage>/final"
        )


def weights_dtype_for(precision: str) -> str:
    """The dtype to load weights in for ``precision`` (auto: bf16 on GPUs that support it)."""
    import torch

    if precision == "auto":
        use_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return "bfloat16" if use_bf16 else "float32"
    return {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}[precision]


def eval_checkpoint(argv: Sequence[str]) -> int:
    """Evaluate a saved model on a data set's test split (see ``EVAL_USAGE``)."""
    if any(arg in ("-h", "--help") for arg in argv):
        print(EVAL_USAGE, end="")
        return 0
    import torch

    from reftlab.app.cli import compose_run
    from reftlab.data.splits import load_splits
    from reftlab.stages.evaluate import evaluate_model
    from reftlab.models.pretrained import load_pretrained
    from reftlab.app.plan import make_schedule
    from reftlab.stages.reward_model import REWARD_HEAD_FILE, load_reward_model, make_reranker
    from reftlab.rewards.scorer import make_scorer

    checkpoint, output, overrides = split_eval_args(argv)
    check_model_folder(checkpoint)
    run = compose_run(overrides)
    e = run.eval
    reward_model = Path(e.reward_model).expanduser() if e.reward_model else None
    if e.rerank and reward_model is None:
        raise ReftlabError(
            "eval.rerank=true in reftlab eval needs eval.reward_model=DIR (a reward model a run "
            "with eval.rerank=true trained, under cache_dir/stages/reward_model-*)"
        )
    if reward_model is not None:
        check_model_folder(reward_model, "eval.reward_model")
        if not (reward_model / REWARD_HEAD_FILE).is_file():
            raise ReftlabError(
                f"eval.reward_model={reward_model} is not a reward model folder "
                f"(no {REWARD_HEAD_FILE})"
            )
    output = output or Path(f"eval_{run.dataset.name}_{run.cot.name}.jsonl")
    schedule = make_schedule(run)
    splits = load_splits(run, need_train=False)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = weights_dtype_for(run.precision)
    try:
        model, tokenizer = load_pretrained(checkpoint, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ReftlabError(
            f"CHECKPOINT {checkpoint}: cannot load the model: {str(exc).splitlines()[0]}"
        ) from None
    model.to(device)
    rerank = None
    if e.rerank and schedule.eval_samples > 1:
        rm, rm_tokenizer = load_reward_model(reward_model, device, dtype)
        rerank = make_reranker(rm, rm_tokenizer, e.batch_size, run.model.max_length)

    with make_scorer(run) as scorer:
        metrics = evaluate_model(
            model,
            tokenizer,
            splits.test,
            lambda example: format_prompt(run.cot.prompt_template, example),
            scorer,
            batch_size=e.batch_size,
            max_new_tokens=schedule.max_new_tokens,
            samples=schedule.eval_samples,
            temperature=e.temperature,
            seed=run.seed,
            rerank=rerank,
            check_hacking=run.dataset.answer_type == CHOICE,
            predictions_path=output,
            show_progress=False,
        )
    summary = {
        **metrics,
        "checkpoint": str(checkpoint),
        "dataset": run.dataset.name,
        "cot": run.cot.name,
        "test_source": splits.sources["test"],
        "reward_model": str(reward_model) if rerank is not None else None,
        "output": str(output),
    }
    print(json.dumps(summary))
    sys.stdout.flush()
    return 0


REPORT_USAGE = """\
usage: reftlab report PATH [--out DIR]

Results of a run dir, or of every run dir below PATH (a sweep's multirun/DATE/TIME/, or any
folder of runs): one row per run with method, cot, dataset, model, the swept knobs, test and
warm-up accuracy, voting/pass@k/rerank accuracy when evaluated, wall time, samples drawn and a
status: done (summary.json), partial (metrics but no summary: where it stopped) or failed (why).

Prints the table and writes report.csv (accuracies as fractions), report.md and plots:
curves.png (training reward and eval accuracy against step), and test accuracy against the
swept knobs (accuracy_heatmap.png for two knobs, accuracy_by_knob.png otherwise).

  PATH       a run dir (holds config.yaml or .hydra/config.yaml) or a folder above run dirs
  --out DIR  where the files go (default: PATH)
"""


class _ReportArgs(argparse.ArgumentParser):
    """argparse that ends a usage error in one line (``ReftlabError``) instead of two."""

    def error(self, message: str):
        raise ReftlabError(f"{message}; see reftlab report --help")


def report(argv: Sequence[str]) -> int:
    """Results table, report.csv, report.md and plots of a run or sweep dir (``REPORT_USAGE``)."""
    if any(arg in ("-h", "--help") for arg in argv):
        print(REPORT_USAGE, end="")
        return 0
    from reftlab.report.collect import format_report, make_report

    parser = _ReportArgs(prog="reftlab report", add_help=False)
    parser.add_argument("path", type=Path, metavar="PATH")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(list(argv))
    result = make_report(args.path.expanduser(), args.out.expanduser() if args.out else None)
    print(format_report(result))
    sys.stdout.flush()
    return 0
