"""Records longer than the model's context never reach a tensor: a JSONL line over 1 MiB is
skipped unread, a prompt over `model.max_length` tokens is dropped, and both are counted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from reftlab.data import DataError, Example
from reftlab.data.lines import MAX_LINE_BYTES
from reftlab.data.splits import Splits
from reftlab.methods.inputs import MAX_CHARS_PER_TOKEN, fit_to_context


def words(text: str) -> dict[str, list[int]]:
    """A tokenizer of one token per word, which fails on a text it should never see."""
    assert len(text) < 10_000, "a prompt far over the context was tokenized"
    return {"input_ids": list(range(len(text.split())))}


def example(i: int, question: str) -> Example:
    return Example(id=f"q{i}", question=question, answer="5")


def run_with(max_length: int) -> SimpleNamespace:
    return SimpleNamespace(
        model=SimpleNamespace(max_length=max_length),
        cot=SimpleNamespace(prompt_template="Question: {question}\nAnswer:"),
    )


def test_prompts_over_the_context_are_dropped_and_counted(capsys):
    short, long = example(0, "two words"), example(1, "w " * 20)
    huge = example(2, "x" * (8 * MAX_CHARS_PER_TOKEN + 1))  # dropped without tokenizing
    splits = Splits([short, long, huge, short], [long, short], {}, "number")
    fitted = fit_to_context(run_with(8), splits, words)
    assert fitted.train == [short, short] and fitted.test == [short]
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "[data] warning: train split: dropped 2 of 4 examples whose prompt is longer than "
        "model.max_length=8 tokens",
        "[data] warning: test split: dropped 1 of 2 examples whose prompt is longer than "
        "model.max_length=8 tokens",
    ]


def test_a_split_left_empty_is_an_error_naming_the_fix():
    splits = Splits([example(0, "w " * 20)], [], {}, "number")
    with pytest.raises(DataError, match=r"train split: every prompt \(1\) is longer than model"):
        fit_to_context(run_with(8), splits, words)


@pytest.mark.slow
def test_a_run_on_a_file_with_huge_records_trains_on_the_rest(tmp_path):
    record = {"question": "Tom has 2 apples and buys 3. How many?", "answer": "2+3=5\n#### 5"}
    lines = [json.dumps(record | {"question": f"Tom has {i} apples. How many?"}) for i in range(40)]
    lines[5] = json.dumps(record | {"question": "How many? " * 30_000})  # 300 kB: over the context
    lines[9] = json.dumps(record | {"question": "x" * (2 * MAX_LINE_BYTES)})  # over the line cap
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "test.jsonl").write_text("\n".join(lines[20:]) + "\n")
    data = [
        f"dataset.train_file={tmp_path / 'train.jsonl'}",
        "dataset.test_file=" + str(tmp_path / "test.jsonl"),
    ]
    result = subprocess.run(
        [sys.executable, "-m", "reftlab", f"hydra.run.dir={tmp_path / 'run'}", "method=sft"]
        + ["budget=smoke", "budget.max_train_examples=null", "dataset=gsm8k", "model=tiny", *data],
        capture_output=True,
        text=True,
        env={**os.environ, "REFTLAB_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[data] train: 39 examples from" in result.stdout
    assert "(1 line(s) over 1 MiB skipped)" in result.stdout
    assert (
        "[data] warning: train split: dropped 1 of 39 examples whose prompt is longer than "
        "model.max_length=256 tokens"
    ) in result.stderr
