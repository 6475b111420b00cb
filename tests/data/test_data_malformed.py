"""Malformed files and records end in one DataError naming the file and the place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reftlab.data import DataError, load_examples, load_examples_with_stats

GOOD_GSM8K = {
    "question": "Tom has 2 apples and buys 3. How many?",
    "answer": "2+3=<<2+3=5>>5\n#### 5",
}


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_json(path: Path, records: object) -> Path:
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def test_bad_json_line_names_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", [json.dumps(GOOD_GSM8K), '{"question": "x",'])
    with pytest.raises(DataError, match=r"train\.jsonl, line 2: invalid JSON") as info:
        load_examples(path, "gsm8k")
    assert str(path) in str(info.value)
    assert info.value.__cause__ is None  # one message, not a chain from inside json


def test_missing_field_names_line(tmp_path):
    lines = [json.dumps(GOOD_GSM8K)] * 2 + [json.dumps({"question": "no answer here"})]
    path = write_jsonl(tmp_path / "test.jsonl", lines)
    with pytest.raises(DataError, match=r"test\.jsonl, line 3: missing field\(s\) \['answer'\]"):
        load_examples(path, "gsm8k")


def test_missing_final_line_in_gsm8k_answer(tmp_path):
    record = {"question": "q", "answer": "2 + 3 = 5"}
    path = write_jsonl(tmp_path / "train.jsonl", [json.dumps(GOOD_GSM8K), json.dumps(record)])
    with pytest.raises(DataError, match=r"line 2: answer has no final '#### <answer>' line"):
        load_examples(path, "gsm8k")


def test_non_numeric_answer_in_numeric_set_names_list_index(tmp_path):
    records = [
        {"item_id": "s_0", "question": "q0", "answer_value": "3.0"},
        {"item_id": "s_1", "question": "q1", "answer_value": "three"},
    ]
    path = write_json(tmp_path / "svamp_test_set.json", records)
    with pytest.raises(DataError, match=r"svamp_test_set\.json, record 1: answer 'three' is not a"):
        load_examples(path, "svamp")


def test_choice_file_loaded_as_numeric_set_fails_clearly(tmp_path):
    records = [{"item_id": "m_0", "question": "q\na ) 1 , b ) 2", "answer_value": "b"}]
    path = write_json(tmp_path / "mathqa_test_set.json", records)
    with pytest.raises(DataError, match=r"record 0: answer 'b' is not a number"):
        load_examples(path, "mathqa_numeric")
    assert load_examples(path, "mathqa")[0].options == {"a": "1", "b": "2"}


def test_choice_answer_not_among_options(tmp_path):
    records = [{"item_id": "m_0", "question": "q\na ) 1 , b ) 2", "answer_value": "e"}]
    path = write_json(tmp_path / "mathqa_test_set.json", records)
    with pytest.raises(DataError, match=r"record 0: answer 'e' is not one of the options"):
        load_examples(path, "mathqa")


def test_choice_question_without_options_line(tmp_path):
    records = [{"item_id": "m_0", "question": "no options here", "answer_value": "a"}]
    path = write_json(tmp_path / "mathqa_test_set.json", records)
    with pytest.raises(DataError, match=r"record 0: multiple-choice question has no options"):
        load_examples(path, "mathqa")


def test_natural_cot_without_final_sentence(tmp_path):
    records = [{"item_id": "s_0", "question": "q", "answer_value": "3", "answer_cot": "1 + 2 = 3"}]
    path = write_json(tmp_path / "svamp_nl.json", records)
    with pytest.raises(DataError, match=r"record 0: natural chain of thought does not end"):
        load_examples(path, "svamp")


def test_bad_json_list_file_names_line(tmp_path):
    path = tmp_path / "test.json"
    path.write_text('[\n{"item_id": "a", "question": "q", "answer_value": "1"},\n{oops}\n]')
    with pytest.raises(DataError, match=r"test\.json, line 3: invalid JSON"):
        load_examples(path, "gsm8k")


def test_json_file_that_is_not_a_list(tmp_path):
    path = write_json(tmp_path / "test.json", {"question": "q", "answer": "#### 1"})
    with pytest.raises(DataError, match=r"expected a JSON list of records, got dict"):
        load_examples(path, "gsm8k")


def test_record_that_is_not_an_object(tmp_path):
    path = write_jsonl(tmp_path / "test.jsonl", [json.dumps(GOOD_GSM8K), "[1, 2]"])
    with pytest.raises(DataError, match=r"line 2: expected a JSON object, got list"):
        load_examples(path, "gsm8k")


def test_unknown_keys_name_the_known_formats(tmp_path):
    path = write_jsonl(tmp_path / "test.jsonl", [json.dumps({"prompt": "q", "label": 1})])
    with pytest.raises(DataError, match=r"line 1: cannot tell the format .*Pass fmt="):
        load_examples(path, "gsm8k")


def test_explicit_format_overrides_detection(tmp_path):
    # A ReFT-style record also has "question"; forcing the GSM8K format then needs "answer".
    record = {"item_id": "g_0", "question": "q", "answer_value": "1"}
    path = write_json(tmp_path / "test.json", [record])
    assert load_examples(path, "gsm8k")[0].id == "g_0"
    with pytest.raises(DataError, match=r"record 0: missing field\(s\) \['answer'\]"):
        load_examples(path, "gsm8k", fmt="openai_gsm8k")
    with pytest.raises(DataError, match=r"unknown format 'csv'"):
        load_examples(path, "gsm8k", fmt="csv")


def test_duplicate_ids_name_both_places(tmp_path):
    records = [{"item_id": "x", "question": f"q{i}", "answer_value": "1"} for i in range(3)]
    path = write_json(tmp_path / "test.json", records)
    with pytest.raises(DataError, match=r"record 1: duplicate id 'x' \(first at record 0\)"):
        load_examples(path, "gsm8k")


def test_missing_file_unknown_suffix_and_empty_file(tmp_path):
    with pytest.raises(DataError, match=r"no such data file"):
        load_examples(tmp_path / "absent.jsonl", "gsm8k")
    csv = tmp_path / "train.csv"
    csv.write_text("question,answer\n")
    with pytest.raises(DataError, match=r"unsupported file type '\.csv'"):
        load_examples(csv, "gsm8k")
    empty = write_jsonl(tmp_path / "empty.jsonl", [""])
    with pytest.raises(DataError, match=r"empty\.jsonl: no records"):
        load_examples(empty, "gsm8k")


def test_unknown_dataset_without_answer_type(tmp_path):
    path = write_jsonl(tmp_path / "test.jsonl", [json.dumps(GOOD_GSM8K)])
    with pytest.raises(DataError, match=r"unknown dataset 'mine'; known datasets: arith, gsm8k"):
        load_examples(path, "mine")
    (example,) = load_examples(path, "mine", answer_type="number")
    assert example.id == "mine_test_0"


def test_blank_lines_are_counted_not_silently_dropped(tmp_path):
    line = json.dumps(GOOD_GSM8K)
    path = write_jsonl(tmp_path / "train.jsonl", [line, "", "   ", line])
    examples, stats = load_examples_with_stats(path, "gsm8k")
    assert [e.id for e in examples] == ["gsm8k_train_0", "gsm8k_train_1"]
    assert (stats.n_examples, stats.n_blank_lines, stats.fmt) == (2, 2, "openai_gsm8k")
    # A bad record after blank lines is still reported at its real line number.
    path = write_jsonl(tmp_path / "test.jsonl", [line, "", '{"question": "q"}'])
    with pytest.raises(DataError, match=r"test\.jsonl, line 3: missing field"):
        load_examples(path, "gsm8k")


def test_a_binary_file_names_the_line_and_the_byte_of_the_whole_file(tmp_path):
    line = json.dumps(GOOD_GSM8K) + "\n"
    # 2,000 good lines (past any read buffer), then a line with a byte that is not UTF-8.
    path = tmp_path / "train.jsonl"
    path.write_bytes(line.encode() * 2000 + b'{"question": "x\xff"}\n')
    offset = len(line.encode()) * 2000 + len('{"question": "x')
    message = rf"train\.jsonl, line 2001: not UTF-8 text \(invalid start byte at byte {offset} "
    with pytest.raises(DataError, match=message):
        load_examples(path, "gsm8k")
    gzip_like = tmp_path / "test.json"
    gzip_like.write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)))
    with pytest.raises(DataError, match=r"test\.json: not UTF-8 text .*is it a binary file"):
        load_examples(gzip_like, "gsm8k")


def test_a_line_over_the_cap_is_skipped_unread_and_counted(tmp_path):
    from reftlab.data.lines import MAX_LINE_BYTES

    huge = json.dumps({**GOOD_GSM8K, "question": "x" * (3 * MAX_LINE_BYTES)})
    line = json.dumps(GOOD_GSM8K)
    path = write_jsonl(tmp_path / "train.jsonl", [line, huge, line, '{"question": "q"}'])
    with pytest.raises(DataError, match=r"train\.jsonl, line 4: missing field"):
        load_examples(path, "gsm8k")  # the lines after the long one keep their numbers
    path = write_jsonl(tmp_path / "train.jsonl", [line, huge, line])
    examples, stats = load_examples_with_stats(path, "gsm8k")
    assert len(examples) == 2 and stats.n_long_lines == 1
    assert stats.skipped_note() == " (1 line(s) over 1 MiB skipped)"
