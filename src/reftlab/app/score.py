"""`reftlab score predictions=FILE [output=FILE] [OVERRIDES ...]`: score a JSONL of completions.

The completions are scored against the test split of a data set with the reward a run composed
from the same overrides would use; one result per item is written next to the input and one
JSON line of metrics is printed. Every input error (missing or malformed file, unknown or
duplicate id, bad override) is a `ReftlabError`: one line on stderr, exit code 2.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reftlab.app.io import OUTPUT_ARG, asks_for_help, print_json_line
from reftlab.app.writable import check_writable
from reftlab.config import RunConfig
from reftlab.data import CHOICE, Example
from reftlab.data.lines import read_lines
from reftlab.errors import ReftlabError
from reftlab.rewards import Score, check_choice_hacking, extract_program, score_program
from reftlab.rewards.scorer import Scorer
from reftlab.sandbox.result import ExecResult

if TYPE_CHECKING:
    from reftlab.data.splits import Splits

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

# The argument of `reftlab score` that names its input (output=FILE is the other, in `io`).
PREDICTIONS_ARG = "predictions"
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
    # No cap on a line's length: a runaway completion is a prediction to score, not bad data.
    for number, line in read_lines(path, max_bytes=None):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ReftlabError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        prediction = _to_prediction(record, where, number)
        if prediction.id in first_line:
            raise ReftlabError(
                f"{where}: duplicate id {prediction.id!r} "
                f"(first at line {first_line[prediction.id]})"
            )
        first_line[prediction.id] = number
        predictions.append(prediction)
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


def to_records(
    predictions: Sequence[Prediction],
    examples: Sequence[Example],
    scores: Sequence[Score],
    results: Sequence[ExecResult] | None,
    flagged: set[int] | None,
) -> list[dict]:
    """The lines of the scored file, one per prediction, in the predictions' order."""
    return [
        to_record(
            predictions[i],
            examples[i],
            scores[i],
            results[i] if results is not None else None,
            i in flagged if flagged is not None else None,
        )
        for i in range(len(predictions))
    ]


def load_test_split(run: RunConfig) -> Splits:
    """The test split the overrides name, cut to the budget (the train split is not read)."""
    # Imported here, once the arguments and the predictions file have been checked: methods.env
    # brings in torch and transformers, which a bad command line should not wait for.
    from reftlab.methods.inputs import load_run_splits

    return load_run_splits(run, need_train=False)


def score_predictions(
    run: RunConfig, splits: Splits, predictions: Sequence[Prediction], examples: Sequence[Example]
) -> tuple[dict, list[dict]]:
    """The summary (metrics, hacking check, sandbox statuses, the reward used) and the records."""
    from reftlab.methods.inputs import make_scorer

    completions = [p.completion for p in predictions]
    with make_scorer(run) as scorer:
        scores, results = score_all(scorer, completions, examples)
    summary = summarise(scores, len(splits.test))
    flagged: set[int] | None = None
    if splits.answer_type == CHOICE:
        summary["hacking"], flagged = check_hacking(run, completions, examples, results)
    if results is not None:
        summary["exec_status"] = dict(Counter(r.status for r in results))
    summary.update(
        dataset=run.dataset.name,
        cot=run.cot.name,
        reward_shape=run.method.reward_shape,
        partial_reward=scorer.partial_reward,
    )
    return summary, to_records(predictions, examples, scores, results, flagged)


def score(argv: Sequence[str]) -> int:
    """Score a JSONL of completions against a data set's test split (see ``SCORE_USAGE``)."""
    if asks_for_help(argv):
        print(SCORE_USAGE, end="")
        return 0
    from reftlab.app.compose import compose_run

    predictions_path, output, overrides = split_score_args(argv)
    output = output or default_output(predictions_path)
    if output.resolve() == predictions_path.resolve():
        raise ReftlabError(f"output={output} is the predictions file; name another output")
    run = compose_run(overrides)
    check_writable(output, OUTPUT_ARG)
    predictions = read_predictions(predictions_path)
    splits = load_test_split(run)
    examples = match_examples(predictions, splits.test, predictions_path, splits.sources["test"])
    summary, records = score_predictions(run, splits, predictions, examples)
    write_jsonl(output, records)
    summary.update(
        test_source=splits.sources["test"],
        predictions=str(predictions_path),
        output=str(output),
    )
    print_json_line(summary)
    return 0
