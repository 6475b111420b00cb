"""`reftlab score`: golden metrics on real data (GSM8K, SVAMP programs, MathQA), and one-line errors.

The CLI runs as a subprocess for the error cases and the GSM8K golden case; the others call
`reftlab.app.cli.main` in-process (same code path after the process start).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reftlab.app.cli import main
from reftlab.app.score import default_output

GSM8K_RIGHT = [0, 2, 3, 5, 7, 11, 17, 100, 500, 1318]  # 0-based lines of gsm8k/test.jsonl
GSM8K_WRONG = [1, 4, 6, 8, 1000]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reftlab", "score", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def run_in_process(capsys: pytest.CaptureFixture, *args: str) -> dict:
    with pytest.raises(SystemExit) as exit_info:
        main(["score", *args])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    return json.loads(lines[0])


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def gsm8k_golds(shared_data: Path) -> list[str]:
    """The `#### x` answers of GSM8K's test file, read here without the package's loader."""
    lines = (shared_data / "gsm8k" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["answer"].rsplit("####", 1)[1].strip() for line in lines]


@pytest.fixture
def gsm8k_predictions(tmp_path: Path, shared_data: Path) -> Path:
    golds = gsm8k_golds(shared_data)
    records = []
    for index in GSM8K_RIGHT:
        # Written with thousands commas where the gold has >= 4 digits ("70,000").
        written = f"{int(golds[index].replace(',', '')):,}"
        records.append(
            {"id": f"gsm8k_test_{index}", "completion": f"Steps. The answer is {written}."}
        )
    for index in GSM8K_WRONG:
        wrong = int(golds[index].replace(",", "")) + 1
        records.append({"id": f"gsm8k_test_{index}", "completion": f"So the answer is {wrong}."})
    return write_jsonl(tmp_path / "preds.jsonl", records)


def gsm8k_args(shared_data: Path, predictions: Path) -> list[str]:
    return [
        f"predictions={predictions}",
        "dataset=gsm8k",
        "cot=natural",
        f"dataset.test_file={shared_data / 'gsm8k' / 'test.jsonl'}",
    ]


def test_gsm8k_golden_through_the_cli(tmp_path, shared_data, gsm8k_predictions):
    before = gsm8k_predictions.read_bytes()
    result = run_cli(*gsm8k_args(shared_data, gsm8k_predictions), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    (line,) = result.stdout.strip().splitlines()
    summary = json.loads(line)
    assert summary["n"] == 15
    assert summary["correct"] == 10
    assert summary["accuracy"] == pytest.approx(10 / 15)
    # 10 right at 1.0, 5 wrong but numeric at the partial reward 0.1.
    assert summary["mean_reward"] == pytest.approx((10 * 1.0 + 5 * 0.1) / 15)
    assert summary["extracted_rate"] == 1.0
    assert summary["n_test"] == 1319
    assert summary["missing"] == 1319 - 15
    assert summary["coverage"] == pytest.approx(15 / 1319)
    assert summary["accuracy_over_split"] == pytest.approx(10 / 1319)
    assert (summary["dataset"], summary["cot"]) == ("gsm8k", "natural")
    assert "hacking" not in summary and "exec_status" not in summary

    output = tmp_path / "preds.scored.jsonl"
    assert summary["output"] == str(output)
    assert gsm8k_predictions.read_bytes() == before
    records = read_jsonl(output)
    golds = gsm8k_golds(shared_data)
    assert [r["id"] for r in records] == [f"gsm8k_test_{i}" for i in GSM8K_RIGHT + GSM8K_WRONG]
    assert records[2] == {
        "id": "gsm8k_test_3",
        "completion": "Steps. The answer is 540.",
        "extracted": "540",
        "gold": "540",
        "reward": 1.0,
        "correct": True,
        "exec_status": None,
    }
    # Line 2 of the file: gold 70000, written "70,000" and read back as the number.
    assert records[1]["gold"] == golds[2] == "70000" and records[1]["correct"]
    assert [r["reward"] for r in records[10:]] == [0.1] * 5
    assert all(not r["correct"] for r in records[10:])


def test_reward_overrides_reach_the_scorer(tmp_path, shared_data, gsm8k_predictions, capsys):
    args = gsm8k_args(shared_data, gsm8k_predictions)
    output = tmp_path / "elsewhere.jsonl"
    binary = run_in_process(capsys, *args, "method.reward_shape=binary", f"output={output}")
    assert binary["mean_reward"] == pytest.approx(10 / 15)  # wrong answers earn 0
    assert binary["output"] == str(output) and output.is_file()
    partial = run_in_process(capsys, *args, "method.partial_reward=0.3")
    assert partial["mean_reward"] == pytest.approx((10 * 1.0 + 5 * 0.3) / 15)


# ReFT's SVAMP gold programs that miss their rounded gold (see tests/sandbox/test_gold_programs).
SVAMP_MISSES = ["svamp_640", "svamp_1418"]
BROKEN_PROGRAMS = [
    ("def solution(:\n    return 1\n", "error", None, 0.0),
    ("def solution():\n    while True:\n        pass\n", "timeout", None, 0.0),
    ("def solution():\n    x = 3\n", "no_result", None, 0.0),
    ("def solution():\n    return 'many'\n", "ok", None, 0.0),
    ("def solution():\n    return 123456789\n", "ok", "123456789", 0.1),
]


def test_svamp_programs_score_at_the_sandbox_gold_rate(tmp_path, shared_data, capsys):
    source = shared_data / "reft" / "svamp_python_sdp.json"
    records = json.loads(source.read_text(encoding="utf-8"))
    by_id = {r["item_id"]: r for r in records}
    gold_ids = [r["item_id"] for r in records[:200]] + SVAMP_MISSES
    broken_ids = [r["item_id"] for r in records[200:205]]
    predictions = [{"id": i, "completion": by_id[i]["answer_cot"]} for i in gold_ids]
    predictions += [
        {"id": i, "completion": program}
        for i, (program, *_) in zip(broken_ids, BROKEN_PROGRAMS, strict=True)
    ]
    path = write_jsonl(tmp_path / "svamp.jsonl", predictions)
    summary = run_in_process(
        capsys,
        f"predictions={path}",
        "dataset=svamp",
        "cot=program",
        f"dataset.test_file={source}",
        # The endless loop costs this long; at 0.5 s a loaded machine timed out a gold program.
        "cot.program_timeout_s=2",
    )
    assert summary["n"] == 202 + 5
    assert summary["n_test"] == 3043 and summary["missing"] == 3043 - 207
    # Gold programs: 200 of 202 right (3041 of 3043 on the whole set); broken ones never.
    assert summary["correct"] == 200
    assert summary["accuracy"] == pytest.approx(200 / 207)
    # The 2 misses and the wrong number return numbers: 3 partial rewards of 0.1.
    assert summary["mean_reward"] == pytest.approx((200 * 1.0 + 3 * 0.1) / 207)
    # Not extracted: the syntax error, the timeout, the missing return and the string.
    assert summary["extracted_rate"] == pytest.approx((207 - 4) / 207)
    assert summary["exec_status"] == {"ok": 202 + 2, "error": 1, "timeout": 1, "no_result": 1}

    scored = {r["id"]: r for r in read_jsonl(tmp_path / "svamp.scored.jsonl")}
    assert {i for i in gold_ids if not scored[i]["correct"]} == set(SVAMP_MISSES)
    assert scored["svamp_640"]["gold"] == "9.0"
    for example_id, (_, status, extracted, reward) in zip(broken_ids, BROKEN_PROGRAMS, strict=True):
        row = scored[example_id]
        assert (row["exec_status"], row["extracted"], row["reward"]) == (status, extracted, reward)
    assert "SyntaxError" in scored[broken_ids[0]]["exec_error"]


MATHQA_NATURAL = [
    ("mathqa_0", "The profit is 38 percent. The answer is (a)."),  # a: right, 38 = a
    ("mathqa_2", "There are 30 stations, so 352 tickets. The answer is c."),  # c: right, 352 = d
    ("mathqa_6", "The answer is b."),  # gold a: wrong letter
    ("mathqa_11", "So 2240 in all. The answer is e )"),  # e: right, 2240 = e
    ("mathqa_12", "The answer is 2400."),  # 2400 is option c: right, chosen by value
    ("mathqa_13", "I cannot tell."),  # no answer sentence: nothing extracted
    ("mathqa_15", "The answer is 999."),  # a value that is no option: nothing extracted
    ("mathqa_18", "The answer is (e)."),  # e: right, no value visible
]


def test_mathqa_letters_and_the_hacking_check(tmp_path, shared_data, capsys):
    path = write_jsonl(
        tmp_path / "mathqa.jsonl", [{"id": i, "completion": c} for i, c in MATHQA_NATURAL]
    )
    summary = run_in_process(
        capsys,
        f"predictions={path}",
        "dataset=mathqa",
        f"dataset.test_file={shared_data / 'reft' / 'mathqa_test_set.json'}",
    )
    assert summary["n"] == 8 and summary["n_test"] == 1605
    assert summary["accuracy"] == pytest.approx(5 / 8)  # mathqa_0, 2, 11, 12, 18
    assert summary["mean_reward"] == pytest.approx((5 * 1.0 + 1 * 0.1) / 8)
    assert summary["extracted_rate"] == pytest.approx(6 / 8)
    hacking = summary["hacking"]
    assert hacking["total"] == 8 and hacking["chosen"] == 6 and hacking["correct"] == 5
    # Values seen: 38, 352, 2240, 2400; all four match an option.
    assert hacking["value_visible"] == 4 and hacking["value_matches_option"] == 4
    # Right letter and value agree: mathqa_0, 11, 12; right letter, value is option d: mathqa_2.
    assert hacking["correct_value_agrees"] == 3
    assert hacking["correct_value_elsewhere"] == 1
    assert hacking["hack_rate_of_correct_with_value"] == pytest.approx(1 / 4)
    assert hacking["hack_rate_of_correct"] == pytest.approx(1 / 5)
    scored = read_jsonl(tmp_path / "mathqa.scored.jsonl")
    assert [r["id"] for r in scored if r["hack_suspected"]] == ["mathqa_2"]
    assert [r["extracted"] for r in scored] == ["a", "c", "b", "e", "c", None, None, "e"]


def test_mathqa_program_hack_is_read_from_the_sandbox(tmp_path, shared_data, capsys):
    hack = (
        "def solution():\n    tickets = 30 * 29 * 2 // 5 + 4\n    print(tickets)\n    return 'c'\n"
    )
    honest = "def solution():\n    tickets = 30 * 29\n    print(tickets)\n    return 'c'\n"
    path = write_jsonl(
        tmp_path / "mp.jsonl",
        [{"id": "mathqa_2", "completion": hack}, {"id": "mathqa_12", "completion": honest}],
    )
    summary = run_in_process(
        capsys,
        f"predictions={path}",
        "dataset=mathqa",
        "cot=program",
        f"dataset.test_file={shared_data / 'reft' / 'mathqa_test_set.json'}",
    )
    # mathqa_2 (gold c): prints 30*29*2//5+4 = 352 = option d, returns "c": right, flagged.
    # mathqa_12 (gold c): prints 870, not one of its options (648, 1800, 2400, ...): right,
    # value unmatched.
    assert summary["accuracy"] == 1.0
    assert summary["hacking"]["correct_value_elsewhere"] == 1
    assert summary["hacking"]["correct_value_unmatched"] == 1
    scored = read_jsonl(tmp_path / "mp.scored.jsonl")
    assert [r["hack_suspected"] for r in scored] == [True, False]


def assert_one_line_error(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("reftlab: error: ")
    assert expected in lines[0], lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize(
    "lines,expected",
    [
        (['{"id": "gsm8k_test_0", "completion": "The answer is 18."}', "", "{oops"],
         "bad.jsonl, line 3: invalid JSON"),
        (['{"id": "gsm8k_test_0"}'], "bad.jsonl, line 1: missing 'completion'"),
        (['{"id": 0, "completion": "18"}'], "bad.jsonl, line 1: 'id' must be the data set's id"),
        (['["gsm8k_test_0", "18"]'], "bad.jsonl, line 1: expected a JSON object, got list"),
        (['{"id": "gsm8k_test_0", "completion": "a"}', '{"id": "gsm8k_test_0", "completion": "b"}'],
         "bad.jsonl, line 2: duplicate id 'gsm8k_test_0' (first at line 1)"),
        ([f'{{"id": "q{i}", "completion": "1"}}' for i in range(7)] +
         ['{"id": "gsm8k_test_1", "completion": "1"}'],
         "7 id(s) not in the test split (%s): 'q0', 'q1', 'q2', 'q3', 'q4' and 2 more; "
         "its ids look like 'gsm8k_test_0'"),
        ([""], "bad.jsonl: no predictions"),
    ],
)  # fmt: skip
def test_bad_predictions_fail_in_one_line(tmp_path, shared_data, lines, expected):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    test_file = shared_data / "gsm8k" / "test.jsonl"
    result = run_cli(*gsm8k_args(shared_data, path), cwd=tmp_path)
    assert_one_line_error(result, expected.replace("%s", str(test_file)))
    assert not default_output(path).exists()


@pytest.mark.parametrize(
    "args,expected",
    [
        (["predictions=nope.jsonl", "dataset=gsm8k"], "predictions=nope.jsonl: no such file"),
        (["dataset=gsm8k"], "reftlab score needs predictions=FILE"),
        (["predictions=p.jsonl", "dataset=gsm9k"], "unknown dataset 'gsm9k'; choose one of"),
        (["predictions=p.jsonl", "method.partial_reward=x"], "could not be converted to Float"),
        (["predictions=p.jsonl", "method.partial_rewrd=0.2"], "did you mean partial_reward"),
        (["predictions=p.jsonl", "method.partial_reward=1.5"], "must lie in [0, 1)"),
        (["predictions=p.jsonl", "cot=natural,program"], "is a sweep; give one value per key"),
        (["predictions=p.jsonl", "dataset=gsm8k", "dataset.test_file=/no/test.jsonl"],
         "dataset.test_file=/no/test.jsonl: no such file"),
        (["predictions=p.jsonl", "output=p.jsonl"], "output=p.jsonl is the predictions file"),
        (["predictions=p.jsonl", "output=/proc/s.jsonl"], "output=/proc/s.jsonl: cannot write in /proc"),
    ],
)  # fmt: skip
def test_bad_arguments_fail_in_one_line(tmp_path, args, expected):
    (tmp_path / "p.jsonl").write_text('{"id": "arith_test_0", "completion": "1"}\n')
    assert_one_line_error(run_cli(*args, cwd=tmp_path), expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.jsonl"]


def test_help_prints_usage(tmp_path):
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: reftlab score predictions=FILE")
    assert "<dataset>_test_<i>" in result.stdout


def test_default_output_sits_next_to_the_input():
    assert default_output(Path("/r/preds.jsonl")) == Path("/r/preds.scored.jsonl")
    assert default_output(Path("/r/preds.txt")) == Path("/r/preds.txt.scored.jsonl")
    assert default_output(Path("preds.scored.jsonl")) == Path("preds.scored.scored.jsonl")


def test_non_utf8_predictions_name_the_line_and_the_byte_of_the_whole_file(tmp_path):
    from reftlab.app.score import read_predictions
    from reftlab.errors import ReftlabError

    line = b'{"id": "gsm8k_test_0", "completion": "' + b"7" * 100 + b'"}\n'
    bad = b'{"id": "gsm8k_test_9", "completion": "caf\xe9"}\n'
    path = tmp_path / "p.jsonl"
    # 3,000 lines (300 kB) before the bad one: past any read buffer of a text-mode file.
    path.write_bytes(b"".join(line.replace(b"_0", b"_%d" % i) for i in range(3000)) + bad)
    offset = path.stat().st_size - len(bad) + bad.index(b"\xe9")
    with pytest.raises(ReftlabError, match=f"p.jsonl, line 3001: not UTF-8 text .* byte {offset} "):
        read_predictions(path)
