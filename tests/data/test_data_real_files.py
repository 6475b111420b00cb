"""Every real data file loads completely, and golden records come out as the sources say."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest

from reftlab.data import load_examples, load_examples_with_stats
from reftlab.data.options import format_options

# /work/main/tests/data/<this file> -> /work/shared/data
DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"

pytestmark = pytest.mark.skipif(
    not DATA_DIR.is_dir(), reason=f"real data sets not found at {DATA_DIR}"
)


@functools.cache
def load(relative: str, dataset: str):
    return load_examples(DATA_DIR / relative, dataset)


def by_id(relative: str, dataset: str, example_id: str):
    (example,) = [e for e in load(relative, dataset) if e.id == example_id]
    return example


def run_solution(program: str):
    namespace: dict = {}
    exec(program, namespace)  # the real files' programs are trusted, short and pure
    return namespace["solution"]()


# (file, dataset, records, with cot, with program, with options) as the data README counts them.
REAL_FILES = [
    ("gsm8k/train.jsonl", "gsm8k", 7473, 7473, 0, 0),
    ("gsm8k/test.jsonl", "gsm8k", 1319, 1319, 0, 0),
    ("reft/svamp_nl.json", "svamp", 3076, 3076, 0, 0),
    ("reft/svamp_python_sdp.json", "svamp", 3043, 0, 3043, 0),
    ("reft/svamp_test_set.json", "svamp", 1000, 0, 0, 0),
    ("reft/gsm8k_test_set.json", "gsm8k", 1319, 0, 0, 0),
    ("reft/mathqa_test_set.json", "mathqa", 1605, 0, 0, 1605),
    ("reft/mathqa-numeric_test_set.json", "mathqa_numeric", 1605, 0, 0, 0),
    ("pal/gsmhardv2.jsonl", "gsm_hard", 1319, 0, 1319, 0),
    ("mathqa/mathqa_test_nodup_our_filtered.json", "mathqa", 1605, 0, 0, 1605),
    ("svamp/SVAMP.json", "svamp", 1000, 0, 0, 0),
]


@pytest.mark.parametrize(
    ("relative", "dataset", "n", "n_cot", "n_program", "n_options"), REAL_FILES
)
def test_real_file_loads_completely(relative, dataset, n, n_cot, n_program, n_options):
    examples, stats = load_examples_with_stats(DATA_DIR / relative, dataset)
    assert (stats.n_examples, stats.n_with_cot, stats.n_with_program) == (n, n_cot, n_program)
    assert stats.n_with_options == n_options
    assert stats.n_blank_lines == 0
    assert len({e.id for e in examples}) == n
    assert all(e.question and e.answer for e in examples)


def test_gsm8k_train_line_1_golden():
    first = load("gsm8k/train.jsonl", "gsm8k")[0]
    assert first.id == "gsm8k_train_0"
    assert first.answer == "72"
    # "<<48/2=24>>" and "<<48+24=72>>" removed; "#### 72" becomes the final sentence.
    assert first.cot == (
        "Natalia sold 48/2 = 24 clips in May.\n"
        "Natalia sold 48+24 = 72 clips altogether in April and May.\n"
        "The answer is 72."
    )


def test_gsm8k_thousands_commas_are_removed_from_the_answer_only():
    # train.jsonl line 368 ends "#### 850,000".
    example = load("gsm8k/train.jsonl", "gsm8k")[367]
    assert example.answer == "850000"
    assert example.cot.endswith("$1,000,000-$150,000=$850,000 per year.\nThe answer is 850000.")
    with_commas = [e for e in load("gsm8k/train.jsonl", "gsm8k") if "," in e.answer]
    assert with_commas == []


def test_gsm8k_negative_answer():
    # train.jsonl line 5845: three consecutive odd integers summing to -147; the largest is -47.
    example = load("gsm8k/train.jsonl", "gsm8k")[5844]
    assert example.answer == "-47"
    assert example.cot.endswith("The largest number is -47.\nThe answer is -47.")


def test_every_gsm8k_cot_ends_with_its_answer_and_has_no_annotations():
    for example in load("gsm8k/train.jsonl", "gsm8k") + load("gsm8k/test.jsonl", "gsm8k"):
        assert example.cot.endswith(f"\nThe answer is {example.answer}.")
        assert "<<" not in example.cot and "####" not in example.cot


def test_svamp_0_natural_golden():
    example = by_id("reft/svamp_nl.json", "svamp", "svamp_0")
    assert example.answer == "203.0"
    assert "29 species * 7 pairs per species = 203 pairs of birds" in example.cot
    # "Therefore, the answer is <203>." rewritten to the project's final sentence.
    assert example.cot.endswith("in the bird sanctuary.\n\nThe answer is 203.")
    assert example.program is None


def test_every_reft_natural_cot_ends_with_the_final_sentence():
    for example in load("reft/svamp_nl.json", "svamp"):
        assert re.search(r"\bThe answer is [^<>\s]+\.$", example.cot), example.id
        assert "<" not in example.cot[-40:]
    # A record without "Therefore, " and one whose bracket holds a percentage.
    assert by_id("reft/svamp_nl.json", "svamp", "svamp_852").cot == (
        "This question was already answered earlier. The answer is 4."
    )
    assert by_id("reft/svamp_nl.json", "svamp", "svamp_338").cot.endswith("The answer is 6%.")


def test_svamp_0_program_golden_runs_to_the_answer():
    example = by_id("reft/svamp_python_sdp.json", "svamp", "svamp_0")
    assert example.cot is None
    assert example.program.startswith('def solution():\n    """tyler an animal rights')
    assert example.program.endswith("    result = num_pairs_total\n    return result")
    assert run_solution(example.program) == 29 * 7 == float(example.answer)


def test_svamp_negative_answer_kept():
    assert by_id("reft/svamp_python_sdp.json", "svamp", "svamp_2352").answer == "-120.0"


def test_mathqa_options_split_from_the_question():
    example = load("reft/mathqa_test_set.json", "mathqa")[0]
    assert example.id == "mathqa_0"
    assert example.question.endswith("if no discount had been offered ?")
    assert example.options == {
        "a": "38",
        "b": "27.675",
        "c": "30",
        "d": "data inadequate",
        "e": "none of these",
    }
    assert example.answer == "a"


def test_mathqa_list_string_options_record():
    # Record 41 (mathqa_95) writes its options as "['a ) 12', 'b ) 15', ...]".
    example = load("reft/mathqa_test_set.json", "mathqa")[41]
    assert example.id == "mathqa_95"
    assert example.question.endswith("what is height of the of the cylinder ?")
    assert "[" not in example.question
    assert example.options == {"a": "12", "b": "15", "c": "10", "d": "8", "e": "14"}
    assert example.answer == "a"


def test_mathqa_units_and_fractions_inside_options_stay_whole():
    example = load("reft/mathqa_test_set.json", "mathqa")[91]
    assert example.options["b"] == "15 / 8 ohms"
    assert example.options["d"] == "8 / 15 ohms"


def test_mathqa_plain_layout_round_trips_to_the_source_text():
    raw = json.loads((DATA_DIR / "reft/mathqa_test_set.json").read_text(encoding="utf-8"))
    examples = load("reft/mathqa_test_set.json", "mathqa")
    plain = [(e, r) for e, r in zip(examples, raw, strict=True) if "\n[" not in r["question"]]
    assert len(plain) == 1605 - 41
    for example, record in plain:
        assert f"{example.question}\n{format_options(example.options)}" == record["question"]


def test_original_mathqa_agrees_with_reft_mathqa():
    reft = load("reft/mathqa_test_set.json", "mathqa")
    original = load("mathqa/mathqa_test_nodup_our_filtered.json", "mathqa")
    assert [(e.id, e.question, e.answer, e.options) for e in original] == [
        (e.id, e.question, e.answer, e.options) for e in reft
    ]
    assert all(e.cot is None for e in original)


def test_mathqa_numeric_non_integer_answer():
    numeric = load("reft/mathqa-numeric_test_set.json", "mathqa_numeric")
    assert (numeric[2].id, numeric[2].answer) == ("mathqa-numeric_6", "0.036")
    non_integers = [e for e in numeric if float(e.answer) != int(float(e.answer))]
    assert len(non_integers) == 302
    # Same questions as the multiple-choice file, without the options line.
    assert numeric[0].question == load("reft/mathqa_test_set.json", "mathqa")[0].question


def test_pal_programs_run_to_their_targets():
    examples = load("pal/gsmhardv2.jsonl", "gsm_hard")
    first = examples[0]
    assert first.id == "gsm_hard_gsmhardv2_0"
    assert first.answer == "-9867630.0"
    # (16 - 3 - 4933828) * 2 = -9867630
    assert run_solution(first.program) == (16 - 3 - 4933828) * 2
    with_import = [e for e in examples if e.program.startswith("import datetime\ndef solution")]
    assert len(with_import) == 1
    assert run_solution(with_import[0].program) == pytest.approx(float(with_import[0].answer))
    blank_inside = examples[1050]
    assert "\n\n" in blank_inside.program and not blank_inside.program.endswith("\n")
    assert run_solution(blank_inside.program) == pytest.approx(float(blank_inside.answer))


def test_svamp_original_body_and_question_joined():
    first = load("svamp/SVAMP.json", "svamp")[0]
    assert first.id == "chal-1"
    # The body ends mid-sentence, so the question continues it after a comma.
    assert first.question == (
        "Each pack of dvds costs 76 dollars. If there is a discount of 25 dollars on each pack, "
        "how much do you have to pay to buy each pack?"
    )
    assert first.answer == "51.0"  # 76.0 - 25.0
