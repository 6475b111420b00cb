"""`reftlab eval` input errors: one line on stderr naming the thing to fix, exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reftlab.app.cli import main


def run_eval(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", *args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def one_line_error(capsys: pytest.CaptureFixture, *args: str) -> str:
    code, out, err = run_eval(capsys, *args)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("reftlab: error: ")
    return lines[0]


@pytest.fixture
def fake_model_folder(tmp_path: Path) -> Path:
    """Looks like a model folder (config.json) but holds no loadable model."""
    folder = tmp_path / "fake"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"hello": 1}))
    return folder


def test_help_prints_usage(capsys) -> None:
    code, out, _ = run_eval(capsys, "--help")
    assert code == 0
    assert out.startswith("usage: reftlab eval CHECKPOINT")


def test_missing_checkpoint_argument(capsys) -> None:
    assert "needs one CHECKPOINT folder (got none)" in one_line_error(capsys, "eval.samples=2")


def test_two_checkpoint_arguments(capsys, tmp_path) -> None:
    line = one_line_error(capsys, str(tmp_path), str(tmp_path))
    assert "needs one CHECKPOINT folder (got 2" in line


def test_missing_folder(capsys, tmp_path) -> None:
    line = one_line_error(capsys, str(tmp_path / "nope"))
    assert line.endswith(f"CHECKPOINT {tmp_path / 'nope'}: no such folder")


def test_folder_that_is_not_a_model(capsys, tmp_path) -> None:
    line = one_line_error(capsys, str(tmp_path))
    assert f"CHECKPOINT {tmp_path} is not a model folder (no config.json)" in line
    (tmp_path / "file.txt").write_text("x")
    assert "is not a model folder" in one_line_error(capsys, str(tmp_path / "file.txt"))


def test_model_folder_that_does_not_load(capsys, fake_model_folder) -> None:
    line = one_line_error(capsys, str(fake_model_folder), "budget=smoke")
    assert f"CHECKPOINT {fake_model_folder}: cannot load the model" in line


def test_rerank_needs_a_reward_model(capsys, fake_model_folder) -> None:
    line = one_line_error(capsys, str(fake_model_folder), "eval.samples=4", "eval.rerank=true")
    assert "eval.rerank=true in reftlab eval needs eval.reward_model=DIR" in line


def test_reward_model_must_be_a_reward_model_folder(capsys, fake_model_folder) -> None:
    line = one_line_error(
        capsys,
        str(fake_model_folder),
        "eval.samples=4",
        "eval.rerank=true",
        f"eval.reward_model={fake_model_folder}",
    )
    assert "is not a reward model folder (no reward_head.pt)" in line


def test_reward_model_without_rerank_is_a_config_error(capsys, fake_model_folder) -> None:
    line = one_line_error(capsys, str(fake_model_folder), f"eval.reward_model={fake_model_folder}")
    assert "eval.reward_model is only used to rerank samples; add eval.rerank=true" in line


def test_bad_override(capsys, fake_model_folder) -> None:
    line = one_line_error(capsys, str(fake_model_folder), "eval.rm_samples=0")
    assert "eval.rm_samples=0 must be > 0" in line
    line = one_line_error(capsys, str(fake_model_folder), "eval.sample=3")
    assert "unknown key 'eval.sample'" in line


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A real saved tiny model (config, tokenizer, model.safetensors)."""
    from reftlab.data import generate_arith_splits
    from reftlab.models import build_tiny_model, build_tokenizer
    from reftlab.models.checkpoints import save_checkpoint

    train, _ = generate_arith_splits(16, 1, seed=0)
    folder = tmp_path_factory.mktemp("ckpt")
    corpus = [text for e in train for text in (e.question, e.cot)]
    tokenizer = build_tokenizer(corpus, vocab_size=300, save_dir=folder / "tok")
    model = build_tiny_model(tokenizer, 32, 1, 4, 64, 256, seed=0)
    save_checkpoint(model, tokenizer, folder / "final")
    return folder / "final"


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_safetensors_file_is_one_line(capsys, tmp_path, tiny_checkpoint, damage):
    import shutil

    folder = tmp_path / "final"
    shutil.copytree(tiny_checkpoint, folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x00garbage" * 64)
    line = one_line_error(capsys, str(folder), "budget=smoke", f"output={tmp_path / 'p.jsonl'}")
    assert f"CHECKPOINT {folder}: cannot load the model" in line


def test_an_unwritable_output_is_one_line_before_the_model_loads(capsys, tiny_checkpoint):
    line = one_line_error(capsys, str(tiny_checkpoint), "budget=smoke", "output=/proc/p.jsonl")
    assert "output=/proc/p.jsonl: cannot write in /proc" in line
