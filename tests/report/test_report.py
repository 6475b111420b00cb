"""`reftlab report`: fake run dirs with real-shaped files in, table, CSV, Markdown and PNGs out.

No training: each run dir is written by hand the way a real run leaves it (config.yaml,
.hydra/config.yaml and overrides.yaml, metrics.jsonl whose last line a kill tore in half,
progress.json, summary.json). The error cases run `python -m reftlab report` as a subprocess.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reftlab.app.cli import main
from reftlab.report import CURVES_PNG, HEATMAP_PNG, KNOBS_PNG, make_report
from reftlab.report.collect import collect, count_samples, parse_overrides
from reftlab.report.plots import moving_average, stage_starts
from reftlab.report.tables import format_duration
from reftlab.report.types import format_percent

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BATCH_SIZE, ROLLOUTS = 8, 2  # method.batch_size, method.rollouts_per_query of the fake runs
RL_STEPS = 20
SFT_STEPS_PER_EPOCH = 10
TORN_LINE = '{"step": 999, "stage": "ppo", "train/rew'  # a kill in the middle of a write

# (kl_coef, warmup_epochs) -> (test accuracy, warm-up accuracy), one job each, in Hydra's
# job order for `method.kl_coef=0.01,0.05 method.warmup_epochs=1,2` (last key fastest).
SWEEP = {
    ("0.01", "1"): (0.31, 0.25),
    ("0.01", "2"): (0.36, 0.30),
    ("0.05", "1"): (0.27, 0.25),
    ("0.05", "2"): (0.42, 0.30),
}


def write_config(run_dir: Path, method: str = "reft", **method_fields) -> None:
    config = {
        "method": {
            "name": method,
            "batch_size": BATCH_SIZE,
            "rollouts_per_query": ROLLOUTS,
            "kl_coef": 0.05,
            "warmup_epochs": 1,
            **method_fields,
        },
        "cot": {"name": "natural", "prompt_template": "Question: {question}\nAnswer:"},
        "dataset": {"name": "arith", "answer_type": "number"},
        "model": {"name": "tiny", "kind": "tiny"},
        "seed": 0,
        "output_dir": str(run_dir),
    }
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config, sort_keys=False)
    (run_dir / "config.yaml").write_text(text)
    # Hydra's composed config keeps the interpolation; the resolved one above does not.
    (run_dir / ".hydra" / "config.yaml").write_text(
        text.replace(str(run_dir), "${hydra:runtime.output_dir}")
    )


def write_overrides(run_dir: Path, overrides: list[str]) -> None:
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))


def make_metrics(warmup_epochs: int, warmup_acc: float, test_acc: float, rl_steps: int) -> list:
    """SFT steps, the warm-up evaluation, RL steps, the final evaluation (as the engine logs)."""
    records, step, t = [], 0, 1_795_283_392.0
    for _ in range(warmup_epochs * SFT_STEPS_PER_EPOCH):
        step += 1
        records.append(
            {"step": step, "stage": "sft_warmup", "time": t + step, "train/sft_loss": 2.0 / step}
        )
    records.append(
        {
            "step": step,
            "stage": "sft_warmup",
            "time": t + step,
            "eval/accuracy": warmup_acc,
            "eval/n": 400,
        }
    )
    for i in range(rl_steps):
        step += 1
        reward = 0.1 + 0.01 * i
        records.append(
            {
                "step": step,
                "stage": "ppo",
                "time": t + step,
                "train/reward_mean": reward,
                "train/kl": 0.1,
            }
        )
    if test_acc is not None:
        records.append(
            {
                "step": step,
                "stage": "evaluate",
                "time": t + step,
                "eval/accuracy": test_acc,
                "eval/n": 400,
            }
        )
    return records


def write_metrics(run_dir: Path, records: list[dict], torn: bool = True) -> None:
    lines = "".join(json.dumps(r) + "\n" for r in records)
    (run_dir / "metrics.jsonl").write_text(lines + (TORN_LINE if torn else ""))


def write_summary(run_dir: Path, test_acc: float, warmup_acc: float | None, **extra) -> None:
    summary = {"test_accuracy": test_acc, "eval/accuracy": test_acc, "eval/n": 400}
    if warmup_acc is not None:
        summary["warmup_test_accuracy"] = warmup_acc
    summary.update(wall_time_s=437.2, method="reft", cot="natural", dataset="arith", model="tiny")
    summary.update(extra)
    summary["config"] = yaml.safe_load((run_dir / "config.yaml").read_text())
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))


def write_done_run(
    run_dir: Path,
    overrides: list[str],
    test_acc: float,
    warmup_acc: float,
    warmup_epochs: int,
    **summary_extra,
) -> None:
    write_config(run_dir, warmup_epochs=warmup_epochs)
    write_overrides(run_dir, overrides)
    write_metrics(run_dir, make_metrics(warmup_epochs, warmup_acc, test_acc, RL_STEPS))
    write_summary(run_dir, test_acc, warmup_acc, **summary_extra)


def write_sweep(root: Path) -> Path:
    """A Hydra multirun dir of the 2 x 2 sweep in ``SWEEP``."""
    sweep = root / "multirun" / "2025-11-21" / "17-49-03"
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    task:\n    - method=reft\n"
        "    - method.kl_coef=0.01,0.05\n    - method.warmup_epochs=1,2\n"
    )
    for job, ((kl, epochs), (test_acc, warmup_acc)) in enumerate(SWEEP.items()):
        overrides = ["method=reft", f"method.kl_coef={kl}", f"method.warmup_epochs={epochs}"]
        run_dir = sweep / f"{job}_{','.join(overrides[1:])}"
        extra = {"samples_drawn": 999} if job == 0 else {}
        if job == 3:
            extra.update({"eval/maj@4": 0.45, "eval/pass@4": 0.6})
        write_done_run(run_dir, overrides, test_acc, warmup_acc, int(epochs), **extra)
    return sweep


def write_partial_run(run_dir: Path, overrides: list[str]) -> None:
    """Killed in the 6th PPO step, after the warm-up (25.0%) finished."""
    write_config(run_dir)
    write_overrides(run_dir, overrides)
    write_metrics(run_dir, make_metrics(1, 0.25, None, rl_steps=5))
    progress = {"completed": {"sft_warmup": {"result": {}, "global_step": 10}}, "global_step": 10}
    (run_dir / "progress.json").write_text(json.dumps(progress))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def check_png(path: Path, min_width: int, min_height: int) -> None:
    import matplotlib.image

    assert path.is_file(), f"{path} was not written"
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert path.stat().st_size > 10_000, "an almost empty image"
    height, width, channels = matplotlib.image.imread(path).shape
    assert width >= min_width and height >= min_height and channels in (3, 4)


def run_report(capsys: pytest.CaptureFixture, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["report", *args])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


# --- a 2 x 2 sweep --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The sweep and the report's terminal output, made once (the plots take about a second)."""
    sweep = write_sweep(tmp_path_factory.mktemp("sweep"))
    process = subprocess.run(
        [sys.executable, "-m", "reftlab", "report", str(sweep)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 0, process.stderr
    return sweep, process.stdout


def test_sweep_csv_has_one_row_per_job_with_its_numbers(sweep_report):
    sweep, _ = sweep_report
    rows = read_csv(sweep / "report.csv")
    assert len(rows) == 4
    assert [row["run"].split("_")[0] for row in rows] == ["0", "1", "2", "3"]
    for row in rows:
        test_acc, warmup_acc = SWEEP[(row["method.kl_coef"], row["method.warmup_epochs"])]
        assert row["status"] == "done"
        assert (row["method"], row["cot"], row["dataset"], row["model"]) == (
            "reft",
            "natural",
            "arith",
            "tiny",
        )
        assert float(row["test_accuracy"]) == test_acc
        assert float(row["warmup_test_accuracy"]) == warmup_acc
        assert float(row["wall_time_s"]) == 437.2
    # method=reft is in every job's overrides: not a swept knob, so no column of its own.
    assert "method.kl_coef" in rows[0] and "method.warmup_epochs" in rows[0]
    # Summary's samples_drawn wins; else 20 RL steps x batch 8 x 2 rollouts = 320.
    assert (rows[0]["samples_drawn"], rows[0]["samples_source"]) == ("999", "summary")
    assert (rows[1]["samples_drawn"], rows[1]["samples_source"]) == (str(20 * 8 * 2), "metrics")
    # Voting and pass@k columns appear when any run has them, blank for the others.
    assert (rows[3]["eval/maj@4"], rows[3]["eval/pass@4"]) == ("0.45", "0.6")
    assert rows[0]["eval/maj@4"] == ""


def test_sweep_terminal_table_shows_percentages_and_plot_files(sweep_report):
    sweep, out = sweep_report
    assert "4 run(s), 4 done; swept: method.kl_coef, method.warmup_epochs" in out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("run "))
    assert header.split() == [
        "run",
        "status",
        "method",
        "cot",
        "dataset",
        "model",
        "method.kl_coef",
        "method.warmup_epochs",
        "test",
        "warm-up",
        "maj@4",
        "pass@4",
        "wall",
        "samples",
    ]
    # job 3: kl 0.05, 2 epochs, 42% after 30% warm-up, maj@4 45%, pass@4 60%, 437.2 s = 7m17s
    job3 = next(line for line in lines if line.startswith("3 "))
    assert job3.split() == [
        "3",
        "done",
        "reft",
        "natural",
        "arith",
        "tiny",
        "0.05",
        "2",
        "42.0%",
        "30.0%",
        "45.0%",
        "60.0%",
        "7m17s",
        "320",
    ]
    # Aligned: numbers are right-aligned, so each row's test cell ends where "test" ends.
    end = header.index(" test") + len(" test") - 1
    table = [line for line in lines if line[:2] in {"0 ", "1 ", "2 ", "3 "}]
    assert len(table) == 4
    assert all(line[end] == "%" and line[end + 1] == " " for line in table)
    assert f"wrote {sweep / HEATMAP_PNG}" in out and f"wrote {sweep / CURVES_PNG}" in out
    markdown = (sweep / "report.md").read_text()
    assert "| 3 | done | reft | natural | arith | tiny | 0.05 | 2 | 42.0% | 30.0% |" in markdown
    assert f"![accuracy_heatmap]({HEATMAP_PNG})" in markdown


def test_sweep_draws_a_heat_map_and_curves(sweep_report):
    sweep, _ = sweep_report
    check_png(sweep / HEATMAP_PNG, min_width=300, min_height=250)
    check_png(sweep / CURVES_PNG, min_width=800, min_height=600)
    assert not (sweep / KNOBS_PNG).exists()


def test_one_swept_knob_draws_accuracy_against_it(tmp_path, capsys):
    for job, kl in enumerate(["0", "0.01", "0.1"]):
        overrides = ["method=reft", f"method.kl_coef={kl}"]
        write_done_run(tmp_path / f"{job}_method.kl_coef={kl}", overrides, 0.3 + job / 10, 0.25, 1)
    out = run_report(capsys, str(tmp_path), "--out", str(tmp_path / "out"))
    assert "swept: method.kl_coef" in out
    check_png(tmp_path / "out" / KNOBS_PNG, min_width=300, min_height=250)
    assert not (tmp_path / "out" / HEATMAP_PNG).exists()


# --- partial and failed runs ----------------------------------------------------------------


def test_partial_run_shows_where_it_stopped(tmp_path):
    write_partial_run(tmp_path / "run", ["method=reft"])
    (run,) = collect(tmp_path).runs
    assert run.status == "partial"
    # 10 SFT steps, the warm-up eval at 10, PPO steps 11..15; the torn line (step 999) is ignored.
    assert (run.last_step, run.last_stage) == (15, "ppo")
    assert run.last_eval_accuracy == 0.25
    assert run.test_accuracy is None
    assert run.note == "stopped at step 15 in ppo; last eval 25.0% at step 10; finished: sft_warmup"
    assert run.samples_drawn == 5 * BATCH_SIZE * ROLLOUTS


def test_a_run_killed_during_evaluation_stopped_in_evaluate(tmp_path):
    # The final evaluation logs nothing until it ends: its last record is PPO's, but
    # progress.json names the stage that was running.
    write_partial_run(tmp_path / "run", ["method=reft"])
    progress = {"completed": {}, "global_step": 15, "running": {"stage": "evaluate"}}
    (tmp_path / "run" / "progress.json").write_text(json.dumps(progress))
    (run,) = collect(tmp_path).runs
    assert (run.last_step, run.last_stage) == (15, "evaluate")
    assert run.note.startswith("stopped at step 15 in evaluate;")


@pytest.mark.parametrize(
    ("break_run", "why"),
    [
        (lambda d: None, "no summary.json or metrics.jsonl"),
        (
            lambda d: (d / "metrics.jsonl").write_text(TORN_LINE),
            "metrics.jsonl holds no complete line",
        ),
        (
            lambda d: (d / "summary.json").write_text('{"test_accuracy": 0.'),
            "summary.json unreadable",
        ),
        (lambda d: (d / "summary.json").write_bytes(b"\xff\xfe{}"), "summary.json unreadable"),
        (
            lambda d: (d / "summary.json").write_text('{"wall_time_s": 3}'),
            "summary.json has no test_accuracy",
        ),
    ],
    ids=["nothing-logged", "only-a-torn-line", "torn-summary", "not-utf8", "no-test-accuracy"],
)
def test_broken_run_shows_failed_and_why(tmp_path, break_run, why):
    run_dir = tmp_path / "run"
    write_config(run_dir)
    write_overrides(run_dir, ["method=reft"])
    break_run(run_dir)
    (run,) = collect(tmp_path).runs
    assert run.status == "failed"
    assert why in run.note
    assert run.names["method"] == "reft"  # still read from config.yaml


def test_failed_run_quotes_the_last_log_line(tmp_path):
    run_dir = tmp_path / "run"
    write_config(run_dir)
    (run_dir / "cli.log").write_text("[data] loading\nOSError: disk quota exceeded\n\n")
    (run,) = collect(tmp_path).runs
    assert run.note.endswith("; log: OSError: disk quota exceeded")


def test_sweep_with_partial_and_failed_runs_lists_every_run(tmp_path, capsys):
    write_done_run(tmp_path / "0_method.kl_coef=0.01", ["method.kl_coef=0.01"], 0.31, 0.25, 1)
    write_partial_run(tmp_path / "1_method.kl_coef=0.05", ["method.kl_coef=0.05"])
    write_config(tmp_path / "2_method.kl_coef=0.1")
    write_overrides(tmp_path / "2_method.kl_coef=0.1", ["method.kl_coef=0.1"])
    out = run_report(capsys, str(tmp_path))
    assert "3 run(s), 1 done, 1 partial, 1 failed" in out
    rows = read_csv(tmp_path / "report.csv")
    assert [(r["method.kl_coef"], r["status"]) for r in rows] == [
        ("0.01", "done"),
        ("0.05", "partial"),
        ("0.1", "failed"),
    ]
    assert rows[1]["last_step"] == "15" and rows[1]["last_eval_accuracy"] == "0.25"
    assert rows[1]["test_accuracy"] == ""
    # Only one finished run: nothing to plot accuracy against.
    assert "accuracy plot skipped" in out
    check_png(tmp_path / CURVES_PNG, min_width=800, min_height=600)


# --- a single run ---------------------------------------------------------------------------


def test_single_run_dir(tmp_path, capsys):
    run_dir = tmp_path / "outputs" / "2025-11-21" / "17-49-03_reft_arith"
    overrides = ["method=reft", "method.warmup_epochs=2", "method.sft_lr=3e-3"]
    write_done_run(run_dir, overrides, 0.36, 0.30, 2)
    out = run_report(capsys, str(run_dir))
    fields = dict(line.split(maxsplit=1) for line in out.splitlines()[2:19] if " " in line)
    assert fields["status"] == "done" and fields["test"] == "36.0%"
    assert fields["warm-up"] == "30.0%" and fields["wall"] == "7m17s"
    # A lone run's knobs are its overrides (method=reft has the method column already).
    assert fields["method.warmup_epochs"] == "2" and fields["method.sft_lr"] == "3e-3"
    (row,) = read_csv(run_dir / "report.csv")
    assert (row["run"], row["test_accuracy"]) == ("17-49-03_reft_arith", "0.36")
    check_png(run_dir / CURVES_PNG, min_width=800, min_height=600)
    assert "accuracy plot skipped: a single run" in out


def test_a_runs_gain_over_its_warmup_shows_with_its_interval(tmp_path, capsys):
    run_dir = tmp_path / "run"
    gain = {
        "eval/gain_over_warmup": 0.06,
        "eval/gain_over_warmup_ci_low": 0.0133,
        "eval/gain_over_warmup_ci_high": 0.1067,
    }
    write_done_run(run_dir, ["method=reft"], 0.36, 0.30, 2, **gain)
    out = run_report(capsys, str(run_dir))
    fields = dict(line.split(maxsplit=1) for line in out.splitlines()[2:19] if " " in line)
    # Points over the warm-up, then the 95% paired-bootstrap interval.
    assert fields["gain"] == "+6.0 [+1.3, +10.7]"
    (row,) = read_csv(run_dir / "report.csv")
    assert (row["gain_over_warmup"], row["gain_over_warmup_ci_low"]) == ("0.06", "0.0133")


# --- errors: one line, exit code 2 ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/nowhere"], "nowhere: no such file or folder"),
        (["{tmp}/empty"], "no run dir below it"),
        (["{tmp}/file.txt"], "is not a folder"),
        (["{tmp}/run", "--out", "{tmp}/file.txt/out"], "cannot write the report to"),
        (["{tmp}/run", "--bogus"], "unrecognized arguments: --bogus"),
    ],
    ids=["missing", "no-run-dir", "a-file", "out-not-writable", "bad-option"],
)
def test_errors_are_one_line_and_exit_2(tmp_path, args, message):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "file.txt").write_text("not a folder")
    write_config(tmp_path / "run")
    process = subprocess.run(
        [sys.executable, "-m", "reftlab", "report", *(a.format(tmp=tmp_path) for a in args)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 2
    assert process.stdout == ""
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reftlab: error: ")
    assert message in lines[0]


def test_help_exits_0_without_writing(tmp_path, capsys):
    out = run_report(capsys, "--help")
    assert out.startswith("usage: reftlab report PATH [--out DIR]")


# --- the parts ------------------------------------------------------------------------------


def test_parse_overrides_drops_hydra_and_bookkeeping_keys():
    lines = [
        "method=reft",
        "+method.extra=1",
        "++seed=3",
        "hydra/launcher=slurm",
        "hydra.run.dir=x",
        "resume=true",
        "~logger",
        "method.rl_lr=1.5e-4",
    ]
    assert parse_overrides(lines) == {
        "method": "reft",
        "method.extra": "1",
        "seed": "3",
        "method.rl_lr": "1.5e-4",
    }


def test_stage_starts_skip_zero_step_stages():
    records = [
        {"step": 10, "stage": "sft_warmup"},
        {"step": 11, "stage": "ppo"},
        {"step": 12, "stage": "ppo"},
        {"step": 12, "stage": "evaluate"},  # logs at the step where ppo ended: no boundary
    ]
    assert stage_starts(records) == [(10.5, "sft_warmup", "ppo")]


def test_moving_average_is_a_trailing_mean():
    # window 2: [1], [1, 3], [3, 5], [5, 7]
    assert moving_average([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert moving_average([1.0, 3.0], 1) == [1.0, 3.0]


def test_count_samples():
    config = {"method": {"batch_size": 8, "rollouts_per_query": 4}}
    rl_steps = [{"stage": "ppo", "train/reward_mean": 0.1}] * 3
    assert count_samples(rl_steps, config) == 3 * 8 * 4
    # A sampling stage's own count plus the RL steps after it (PrefixRL): 400 + 3 x 8 x 4.
    traces = {"stage": "collect_traces", "samples_drawn": 400}
    assert count_samples([traces, *rl_steps], config) == 400 + 3 * 8 * 4
    assert count_samples([traces], {}) == 400  # offline self-training: no RL step
    assert count_samples([{"train/sft_loss": 1.0}], config) is None  # nothing sampled: unknown
    assert count_samples(rl_steps, {}) is None  # RL steps without the config to size them


def test_formats():
    assert [format_percent(x) for x in (0.36, 0.355, 1.0, None)] == ["36.0%", "35.5%", "100.0%", ""]
    # 437.2 s = 7 * 60 + 17; 3725 s = 1 h 2 min 5 s
    assert [format_duration(s) for s in (42.4, 437.2, 3725, None)] == ["42s", "7m17s", "1h02m", ""]


def test_make_report_writes_into_out_dir_only(tmp_path):
    sweep = write_sweep(tmp_path / "in")
    out = tmp_path / "elsewhere" / "report"
    report = make_report(sweep, out, plots=False)
    assert sorted(p.name for p in out.iterdir()) == ["report.csv", "report.md"]
    assert not (sweep / "report.csv").exists()
    assert report.knobs == ["method.kl_coef", "method.warmup_epochs"]


def test_sweep_jobs_without_a_run_dir_are_named(tmp_path):
    sweep = write_sweep(tmp_path)
    # multirun.yaml asks for 1 x 2 x 2 = 4 jobs; job 2 never started (no dir at all).
    shutil.rmtree(next(sweep.glob("2_*")))
    report = collect(sweep)
    assert [run.name.split("_")[0] for run in report.runs] == ["0", "1", "3"]
    assert report.notes == [
        f"warning: {sweep} asks for 4 jobs; job(s) 2 have no run dir (not started yet, or lost)"
    ]


def test_runs_that_leave_a_knob_alone_count_with_their_config_value(tmp_path):
    # a: kl_coef left at its config value 0.05; b: 5e-2 (the same value); c: 0.1.
    for name, overrides in [
        ("a", []),
        ("b", ["method.kl_coef=5e-2"]),
        ("c", ["method.kl_coef=0.1"]),
    ]:
        write_config(tmp_path / name, kl_coef=0.05)
        write_overrides(tmp_path / name, ["method=reft", *overrides])
    report = collect(tmp_path)
    assert report.knobs == ["method.kl_coef"]  # method=reft everywhere: not swept
    assert [run.knob_values["method.kl_coef"] for run in report.runs] == ["0.05", "0.05", "0.1"]
