"""Finding split files in folders, and the dataset registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from reftlab.data import DATASETS, DataError, get_spec, resolve_split_file
from reftlab.data.records import CHOICE, NUMBER

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_real_data = pytest.mark.skipif(
    not DATA_DIR.is_dir(), reason=f"real data sets not found at {DATA_DIR}"
)


def test_registry_names_and_answer_types():
    assert {"gsm8k", "svamp", "mathqa", "mathqa_numeric", "arith"} <= set(DATASETS)
    assert get_spec("mathqa").answer_type == CHOICE
    for name in ("gsm8k", "svamp", "mathqa_numeric", "arith"):
        assert get_spec(name).answer_type == NUMBER
    assert (get_spec("gsm8k").hub_id, get_spec("gsm8k").hub_config) == ("openai/gsm8k", "main")
    assert get_spec("svamp").hub_id == "ChilleD/SVAMP"
    assert get_spec("mathqa").hub_id == "allenai/math_qa"
    assert all(name == spec.name for name, spec in DATASETS.items())


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(DataError, match=r"unknown dataset 'gsm9k'; known datasets: arith, gsm8k"):
        get_spec("gsm9k")


@needs_real_data
@pytest.mark.parametrize(
    ("folder", "split", "dataset", "cot_type", "expected"),
    [
        ("gsm8k", "train", "gsm8k", "natural", "train.jsonl"),
        ("gsm8k", "test", "gsm8k", "natural", "test.jsonl"),
        ("reft", "test", "gsm8k", "natural", "gsm8k_test_set.json"),
        ("reft", "train", "svamp", "natural", "svamp_nl.json"),
        ("reft", "train", "svamp", "program", "svamp_python_sdp.json"),
        ("reft", "test", "svamp", "program", "svamp_test_set.json"),
        ("reft", "test", "mathqa", "natural", "mathqa_test_set.json"),
        ("reft", "test", "mathqa_numeric", "natural", "mathqa-numeric_test_set.json"),
        ("svamp", "test", "svamp", "natural", "SVAMP.json"),
        ("mathqa", "test", "mathqa", "natural", "mathqa_test_nodup_our_filtered.json"),
        ("pal", "test", "gsm_hard", "program", "gsmhardv2.jsonl"),
        ("gsm8k", "test", None, "natural", "test.jsonl"),
    ],
)
def test_resolve_split_file_in_real_folders(folder, split, dataset, cot_type, expected):
    path = resolve_split_file(DATA_DIR / folder, split, dataset, cot_type)
    assert path == DATA_DIR / folder / expected


def test_cot_specific_reft_file_wins_over_generic_train_file(tmp_path):
    # train.jsonl has no programs, so for cot=program ReFT's program file must come first.
    for name in ("train.jsonl", "gsm8k_python_sdp.json"):
        (tmp_path / name).write_text("[]")
    assert resolve_split_file(tmp_path, "train", "gsm8k", "program").name == "gsm8k_python_sdp.json"
    assert resolve_split_file(tmp_path, "train", "gsm8k", "natural").name == "train.jsonl"


def test_resolve_split_file_failure_lists_tried_names_and_folder(tmp_path):
    (tmp_path / "other.json").write_text("[]")
    with pytest.raises(DataError) as info:
        resolve_split_file(tmp_path, "validation", "svamp")
    message = str(info.value)
    assert "svamp_validation_set.json, validation.jsonl, validation.json" in message
    assert "other.json" in message
    with pytest.raises(DataError, match=r"no such data folder"):
        resolve_split_file(tmp_path / "absent", "train")
    with pytest.raises(DataError, match=r"unknown cot type 'latex'"):
        resolve_split_file(tmp_path, "train", cot_type="latex")
