"""`reftlab report` on the paper experiments: each `+experiment=NAME` sweep in its paper's shape.

Each sweep is written by hand the way Hydra and a run leave it: `N_OVERRIDES/` job dirs holding
config.yaml (with `experiment: NAME`), .hydra/overrides.yaml, summary.json and metrics.jsonl.
The numbers are chosen so that the expected table cells and verdicts can be worked out by hand
(the arithmetic is in the comments).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from reftlab.report import HEATMAP_PNG, format_report, make_report
from reftlab.report.experiments import AblationRow, compare_to_baseline
from reftlab.report.types import ABLATIONS_PNG, REWARD_VS_SAMPLES_PNG

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BATCH_SIZE, ROLLOUTS = 4, 2  # 8 samples per RL step


def write_job(
    sweep: Path,
    job: int,
    overrides: list[str],
    config: dict,
    summary: dict | None = None,
    records: list[dict] | None = None,
) -> Path:
    """Job ``job`` of a sweep: config.yaml (resolved), overrides, and the files a run leaves."""
    run_dir = sweep / f"{job}_{','.join(overrides)}"
    (run_dir / ".hydra").mkdir(parents=True)
    method = {"batch_size": BATCH_SIZE, "rollouts_per_query": ROLLOUTS, **config.pop("method")}
    full = {"method": method, "seed": 0, "ablation": None, "output_dir": str(run_dir), **config}
    full.update(cot={"name": "natural"}, dataset={"name": "arith"}, model={"name": "tiny"})
    (run_dir / "config.yaml").write_text(yaml.safe_dump(full, sort_keys=False))
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if records is not None:
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if summary is not None:
        (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 5000


def rows_by_first_cell(rows: list[list[str]]) -> dict[str, list[str]]:
    return {row[0]: row for row in rows}


# --- bandit_ablations -----------------------------------------------------------------------

# Jobs in sweep order (ablation slowest, seed fastest): minimal is not the first ablation swept,
# and job 10 (after 9, not after 1) checks that rows follow job numbers, not text order.
ABLATION_JOBS = [
    ("kl", "0", 0.31),
    ("kl", "1", 0.33),
    ("minimal", "0", 0.30),
    ("minimal", "1", 0.32),
    ("rloo", "0", 0.36),
    ("rloo", "1", 0.37),
    ("gae", "0", 0.25),
    ("gae", "1", 0.29),
    ("batch_mean", "0", 0.35),
    ("batch_mean", "1", "partial"),
    ("partial_reward", "0", "failed"),
]


def write_ablations(root: Path) -> Path:
    sweep = root / "multirun" / "2025-12-01" / "10-00-00"
    for job, (ablation, seed, outcome) in enumerate(ABLATION_JOBS):
        overrides = ["+experiment=bandit_ablations", f"+bandit_ablation={ablation}", f"seed={seed}"]
        config = {
            "experiment": "bandit_ablations",
            "ablation": ablation,
            "seed": int(seed),
            "method": {"name": "bandit"},
        }
        steps = [{"step": i, "stage": "rl", "train/reward_mean": 0.1} for i in range(1, 4)]
        if outcome == "partial":
            write_job(sweep, job, overrides, config, records=steps)
        elif outcome == "failed":
            write_job(sweep, job, overrides, config)
        else:
            write_job(sweep, job, overrides, config, {"test_accuracy": outcome}, steps)
    return sweep


def test_ablation_table_gives_effects_against_the_seed_spread(tmp_path):
    report = make_report(write_ablations(tmp_path), plots=False)
    section = report.section
    assert section.experiment == "bandit_ablations"
    assert section.headers == [
        "ablation",
        "runs",
        "seed 0",
        "seed 1",
        "mean",
        "spread",
        "effect",
        "paired by seed",
        "verdict",
    ]
    # minimal: (30 + 32) / 2 = 31.0, spread 32 - 30 = 2.0
    # kl:      (31 + 33) / 2 = 32.0, spread 2.0; effect 32 - 31 = +1.0 <= max(2.0, 2.0)
    # rloo:    (36 + 37) / 2 = 36.5, spread 1.0; effect +5.5 > max(1.0, 2.0) = 2.0
    # gae:     (25 + 29) / 2 = 27.0, spread 4.0; effect -4.0: equal to the larger spread (gae's
    #          own 4.0, not minimal's 2.0), so within
    # batch_mean: one finished seed (35), no spread of its own; effect +4.0 > minimal's 2.0
    # partial_reward: its only run failed, no mean
    assert section.rows == [
        ["minimal", "2 done", "30.0%", "32.0%", "31.0%", "2.0", "", "", "reference"],
        [
            "kl",
            "2 done",
            "31.0%",
            "33.0%",
            "32.0%",
            "2.0",
            "+1.0",
            "+1.0 / +1.0",
            "within seed spread (1.0 <= 2.0)",
        ],
        [
            "rloo",
            "2 done",
            "36.0%",
            "37.0%",
            "36.5%",
            "1.0",
            "+5.5",
            "+6.0 / +5.0",
            "beyond seed spread (5.5 > 2.0)",
        ],
        [
            "gae",
            "2 done",
            "25.0%",
            "29.0%",
            "27.0%",
            "4.0",
            "-4.0",
            "-5.0 / -3.0",
            "within seed spread (4.0 <= 4.0)",
        ],
        [
            "batch_mean",
            "1 done, 1 partial",
            "35.0%",
            "partial",
            "35.0%",
            "",
            "+4.0",
            "+5.0 / n/a",
            "beyond seed spread (4.0 > 2.0)",
        ],
        [
            "partial_reward",
            "1 failed",
            "failed",
            "",
            "",
            "",
            "",
            "",
            "no effect: a mean is missing",
        ],
    ]
    assert section.verdicts[1:] == [
        "measured beyond seed spread: rloo +5.5, batch_mean +4.0",
        "measured within seed spread: kl +1.0, gae -4.0",
        # batch_mean has one seed to pair: it is in no list
        "paired with minimal's run of the same seed (the same warm-up), higher in every seed: "
        "kl, rloo",
        "paired with minimal's run of the same seed (the same warm-up), lower in every seed: gae",
        "paired with minimal's run of the same seed (the same warm-up), mixed across seeds: none",
    ]
    assert section.notes == [
        "left out of the numbers: 2 unfinished run(s): 9 (partial), 10 (failed)"
    ]


@pytest.mark.parametrize(
    ("row_accuracies", "verdict"),
    [
        # effect (35 + 35) / 2 - 31 = +4.0; spreads: row 0.0, minimal 2.0 -> 4.0 > 2.0
        ((0.35, 0.35), "beyond seed spread (4.0 > 2.0)"),
        # effect (33 + 37) / 2 - 31 = +4.0; spreads: row 4.0, minimal 2.0 -> 4.0 <= 4.0
        ((0.33, 0.37), "within seed spread (4.0 <= 4.0)"),
        # effect (32 + 38) / 2 - 31 = +4.0; spreads: row 6.0, minimal 2.0 -> 4.0 <= 6.0
        ((0.32, 0.38), "within seed spread (4.0 <= 6.0)"),
        # effect (28 + 28) / 2 - 31 = -3.0; the size counts, not the sign: 3.0 > 2.0
        ((0.28, 0.28), "beyond seed spread (3.0 > 2.0)"),
    ],
)
def test_an_effect_is_beyond_noise_only_above_the_larger_spread(row_accuracies, verdict):
    minimal = AblationRow("minimal", [], {"0": 0.30, "1": 0.32})
    row = AblationRow("x", [], dict(zip(("0", "1"), row_accuracies, strict=True)))
    assert compare_to_baseline(row, minimal)[1] == verdict


def test_ablation_report_draws_and_links_its_plot(tmp_path):
    sweep = write_ablations(tmp_path)
    report = make_report(sweep)
    assert is_png(sweep / ABLATIONS_PNG)
    assert sweep / ABLATIONS_PNG in report.files
    markdown = (sweep / "report.md").read_text()
    section = markdown[markdown.index("## Experiment `bandit_ablations`") :]
    assert (
        "| rloo | 2 done | 36.0% | 37.0% | 36.5% | 1.0 | +5.5 | +6.0 / +5.0 | beyond seed"
        in section
    )
    assert f"![ablations]({ABLATIONS_PNG})" in section
    assert "- measured beyond seed spread: rloo +5.5, batch_mean +4.0" in section
    # The terminal shows the runs' table first, then the experiment's, then the files.
    out = format_report(report)
    assert out.index("seed") < out.index("experiment bandit_ablations:") < out.index("wrote")
    assert "measured within seed spread: kl +1.0, gae -4.0" in out


# --- reft_table -----------------------------------------------------------------------------


def write_reft_table(root: Path, greedy: dict[str, tuple[float, ...]]) -> Path:
    """A job per method and seed, in an order unlike the paper's; vote@4 = greedy + 2 points,
    rerank@4 = greedy + 3 points except for SFT (greedy - 1), pass@4 = greedy + 20 points."""
    jobs = [(m, seed, acc) for m in greedy for seed, acc in enumerate(greedy[m])]
    for job, (method, seed, acc) in enumerate(jobs):
        rerank = acc - 0.01 if method == "sft" else acc + 0.03
        summary = {
            "test_accuracy": acc,
            "warmup_test_accuracy": 0.30,
            "eval/maj@4": acc + 0.02,
            "eval/rerank@4": rerank,
            "eval/pass@4": acc + 0.2,
            "eval/gain_over_warmup": acc - 0.30,
            "eval/gain_over_warmup_ci_low": acc - 0.33,
            "eval/gain_over_warmup_ci_high": acc - 0.27,
        }
        config = {"experiment": "reft_table", "seed": seed, "method": {"name": method}}
        write_job(
            root,
            job,
            ["+experiment=reft_table", f"method={method}", f"seed={seed}"],
            config,
            summary,
        )
    return root


@pytest.mark.parametrize(
    ("greedy", "verdict"),
    [
        (
            {"reft": (0.39, 0.41), "sft": (0.30,), "online_st": (0.35,), "offline_st": (0.32,)},
            # ReFT: (39 + 41) / 2 = 40.0
            "measured greedy: ReFT 40.0% > online ST 35.0% > offline ST 32.0% > SFT 30.0%: "
            "the claim holds here",
        ),
        (
            {"reft": (0.382,), "sft": (0.36,), "online_st": (0.41,), "offline_st": (0.355,)},
            "measured greedy: online ST 41.0% > ReFT 38.2% > SFT 36.0% > offline ST 35.5%: "
            "the claim does not hold here (not so: ReFT > online ST, offline ST > SFT)",
        ),
        (
            {"reft": (0.40,), "sft": (0.30,), "online_st": (0.35,)},
            "measured greedy: ReFT 40.0% > online ST 35.0% > SFT 30.0% (no finished offline ST): "
            "the claim holds here",
        ),
        (
            # a tie is not "better than"
            {"reft": (0.38,), "sft": (0.30,), "online_st": (0.38,), "offline_st": (0.32,)},
            "measured greedy: online ST 38.0% = ReFT 38.0% > offline ST 32.0% > SFT 30.0%: "
            "the claim does not hold here (not so: ReFT > online ST)",
        ),
    ],
    ids=["holds", "does-not-hold", "a-method-missing", "a-tie"],
)
def test_reft_table_checks_the_claimed_order(tmp_path, greedy, verdict):
    section = make_report(write_reft_table(tmp_path, greedy), plots=False).section
    assert section.verdicts[1] == verdict


def test_reft_table_rows_in_the_papers_order_with_sampled_columns(tmp_path):
    greedy = {"reft": (0.39, 0.41), "sft": (0.30,), "online_st": (0.35,), "offline_st": (0.32,)}
    section = make_report(write_reft_table(tmp_path, greedy), plots=False).section
    assert section.headers == [
        "method",
        "runs",
        "greedy",
        "vote@4",
        "rerank@4",
        "pass@4",
        "gain over warm-up",
    ]
    # ReFT's two seeds: mean and spread (41 - 39 = 2.0 points); gain (9 + 11) / 2 = +10.0
    assert section.rows == [
        ["SFT", "1 done", "30.0%", "32.0%", "29.0%", "50.0%", "+0.0 [-3.0, +3.0]"],
        ["offline ST", "1 done", "32.0%", "34.0%", "35.0%", "52.0%", "+2.0 [-1.0, +5.0]"],
        ["online ST", "1 done", "35.0%", "37.0%", "38.0%", "55.0%", "+5.0 [+2.0, +8.0]"],
        [
            "ReFT",
            "2 done",
            "40.0% (2.0)",
            "42.0% (2.0)",
            "43.0% (2.0)",
            "60.0% (2.0)",
            "+10.0 (2.0)",
        ],
    ]
    # Voting adds 2 points everywhere; reranking costs SFT a point. pass@K gets no claim.
    assert section.verdicts[2:] == [
        "measured vote@4 minus greedy (points): SFT +2.0, offline ST +2.0, online ST +2.0, "
        "ReFT +2.0: adds on top for every method (4 of 4)",
        "measured rerank@4 minus greedy (points): SFT -1.0, offline ST +3.0, online ST +3.0, "
        "ReFT +3.0: does not add everywhere (3 of 4)",
    ]


def test_reft_table_leaves_unfinished_runs_out_of_the_means(tmp_path):
    write_reft_table(tmp_path, {"reft": (0.40,), "sft": (0.30,)})
    # A second ReFT seed killed mid-run: shown in the runs column, not in ReFT's mean.
    config = {"experiment": "reft_table", "seed": 1, "method": {"name": "reft"}}
    steps = [{"step": 1, "stage": "ppo", "train/reward_mean": 0.2}]
    write_job(tmp_path, 2, ["+experiment=reft_table", "method=reft", "seed=1"], config, None, steps)
    section = make_report(tmp_path, plots=False).section
    assert rows_by_first_cell(section.rows)["ReFT"][1:3] == ["1 done, 1 partial", "40.0%"]
    assert section.notes == ["left out of the numbers: 1 unfinished run(s): 2 (partial)"]


# --- prefixrl -------------------------------------------------------------------------------

REJECTION_SAMPLES = 80  # collect_traces before RL (PrefixRL and its baseline; not plain RL)
RL_STEPS = 40  # a twentieth of 40: the reward is a moving average over 2 steps


def prefixrl_records(use: str) -> list[dict]:
    """The warm-up, trace collection, the baseline's SFT on the traces, then 40 RL steps.

    Plain-problem reward at RL step i (1..40):
      sft (baseline)  i / 64          smoothed (i/64 + (i-1)/64) / 2 = (2i - 1) / 128
      prefix          min(1, i / 23)  on plain problems; 1.0 on prefixed ones, so its
                                      train/reward_mean is higher and must not be used
      none            i / 128         smoothed (2i - 1) / 256
    """
    records = [{"step": 1, "stage": "sft_warmup", "train/sft_loss": 1.0}]
    if use != "none":
        records.append({"step": 1, "stage": "collect_traces", "samples_drawn": REJECTION_SAMPLES})
    if use == "sft":
        records.append({"step": 2, "stage": "sft_on_traces", "train/sft_loss": 0.5})
    for i in range(1, RL_STEPS + 1):
        step = {"step": 2 + i, "stage": "rl" if use != "prefix" else "prefix_rl"}
        if use == "prefix":
            plain = min(1.0, i / 23)
            step.update({"train/reward_plain": plain, "train/reward_prefixed": 1.0})
            step["train/reward_mean"] = (plain + 1.0) / 2
        else:
            step["train/reward_mean"] = i / 64 if use == "sft" else i / 128
        records.append(step)
    records.append({"step": 2 + RL_STEPS, "stage": "evaluate", "eval/accuracy": 0.3})
    return records


PREFIXRL_ACCURACY = {"prefix": 0.38, "sft": 0.35, "none": 0.32}  # after a 33.0% warm-up


def write_prefixrl(root: Path, uses=("prefix", "sft", "none"), partial=()) -> Path:
    for job, use in enumerate(uses):
        config = {"experiment": "prefixrl", "method": {"name": "prefixrl", "offpolicy_use": use}}
        acc = PREFIXRL_ACCURACY[use]
        summary = {
            "test_accuracy": acc,
            "warmup_test_accuracy": 0.33,
            "eval/gain_over_warmup": acc - 0.33,
            "eval/gain_over_warmup_ci_low": acc - 0.37,
            "eval/gain_over_warmup_ci_high": acc - 0.29,
            "samples_drawn": REJECTION_SAMPLES,  # what a PrefixRL summary holds: traces only
        }
        overrides = ["+experiment=prefixrl", f"method.offpolicy_use={use}"]
        done = summary if use not in partial else None
        write_job(root, job, overrides, config, done, prefixrl_records(use))
    return root


def test_prefixrl_samples_to_target_count_the_rejection_samples(tmp_path):
    section = make_report(write_prefixrl(tmp_path), plots=False).section
    # Final smoothed plain rewards: baseline (2*40 - 1) / 128 = 79/128 = 0.617; PrefixRL 1.000;
    # RL only 79/256 = 0.309. Target: the lower of PrefixRL's and the baseline's, 0.617.
    # Baseline reaches it only at step 40: 80 + 40 * 8 = 400 samples.
    # PrefixRL, smoothed (i/23 + (i-1)/23) / 2 = (2i - 1) / 46: step 14 gives 27/46 = 0.587,
    # step 15 gives 29/46 = 0.630 >= 0.617: 80 + 15 * 8 = 200 samples. Ratio 400 / 200 = 2.00
    # (without the rejection samples it would be 320 / 120 = 2.67).
    # Totals: 80 + 40 * 8 = 400 (not the summary's 80); RL only 40 * 8 = 320.
    assert section.rows == [
        ["PrefixRL", "1 done", "400", "1.000", "200", "38.0%", "33.0%", "+5.0 [+1.0, +9.0]"],
        [
            "SFT on traces + RL",
            "1 done",
            "400",
            "0.617",
            "400",
            "35.0%",
            "33.0%",
            "+2.0 [-2.0, +6.0]",
        ],
        ["RL only", "1 done", "320", "0.309", "not reached", "32.0%", "33.0%", "-1.0 [-5.0, +3.0]"],
    ]
    assert section.verdicts == [
        "claim: PrefixRL reaches the baseline's training reward about 2x sooner; measured: "
        "reward 0.617 after 400 samples for the baseline, 200 for PrefixRL (rejection sampling "
        "included): 2.00x: holds",
        "claim: PrefixRL ends at a higher training reward than the baseline; measured: 1.000 "
        "against 0.617: holds",
        "claim: RL on prefixed problems raises accuracy on plain ones (back-generalisation); "
        "measured: PrefixRL 38.0% against its warm-up 33.0% (gain +5.0 [+1.0, +9.0]: the 95% "
        "interval above 0): holds",
    ]
    assert "moving average over 2 step(s)" in section.notes[0]


def test_a_back_generalisation_gain_inside_the_noise_is_not_called_holding(tmp_path, monkeypatch):
    # PrefixRL 34.0% against its warm-up 33.0%: +1.0 points, the interval [-3.0, +5.0] holds 0.
    monkeypatch.setitem(PREFIXRL_ACCURACY, "prefix", 0.34)
    section = make_report(write_prefixrl(tmp_path), plots=False).section
    assert section.verdicts[2].endswith(
        "measured: PrefixRL 34.0% against its warm-up 33.0% (gain +1.0 [-3.0, +5.0]: the 95% "
        "interval includes 0): not shown: the gain is within the noise"
    )


def test_prefixrl_without_its_baseline_says_so(tmp_path):
    report = make_report(write_prefixrl(tmp_path, uses=("prefix", "none")))
    section = report.section
    assert [row[0] for row in section.rows] == ["PrefixRL", "RL only"]
    assert [row[4] for row in section.rows] == ["", ""]  # no target without the baseline
    why = "no finished SFT on traces + RL run (method.offpolicy_use=sft)"
    assert section.verdicts[0].endswith(f"about 2x sooner; cannot tell: {why}")
    assert section.verdicts[1].endswith(f"cannot tell: {why}")
    assert section.verdicts[2].endswith(": holds")  # needs PrefixRL alone
    assert why in section.notes
    assert is_png(tmp_path / REWARD_VS_SAMPLES_PNG)
    assert f"![reward_vs_samples]({REWARD_VS_SAMPLES_PNG})" in (tmp_path / "report.md").read_text()


def test_prefixrl_with_a_partial_baseline_leaves_it_out(tmp_path):
    section = make_report(write_prefixrl(tmp_path, partial=("sft",)), plots=False).section
    assert rows_by_first_cell(section.rows)["SFT on traces + RL"][1:5] == ["1 partial", "", "", ""]
    assert "cannot tell: no finished SFT on traces + RL run" in section.verdicts[0]
    assert "left out of the numbers: 1 unfinished run(s): 1 (partial)" in section.notes


# --- kl_warmup ------------------------------------------------------------------------------


# Cells in job order (warmup_epochs fastest): (0.01, 1), (0.01, 2), (0.05, 1), (0.05, 2).
KL_WARMUP_CELLS = [("0.01", "1"), ("0.01", "2"), ("0.05", "1"), ("0.05", "2")]


@pytest.mark.parametrize(
    ("accuracies", "best", "verdict"),
    [
        # kl 0.01: (31 + 36) / 2 = 33.5, kl 0.05: (27 + 42) / 2 = 34.5 -> range 1.0;
        # 1 epoch: (31 + 27) / 2 = 29.0, 2 epochs: (36 + 42) / 2 = 39.0 -> range 10.0
        (
            (0.31, 0.36, 0.27, 0.42),
            "best cell: kl_coef=0.05, warmup_epochs=2: 42.0%",
            "measured: means by kl_coef range 1.0 points, by warmup_epochs 10.0: "
            "accuracy depends more on the warm-up epochs",
        ),
        # kl 0.01: (29 + 31) / 2 = 30.0, kl 0.05: (41 + 40) / 2 = 40.5 -> range 10.5;
        # 1 epoch: (29 + 41) / 2 = 35.0, 2 epochs: (31 + 40) / 2 = 35.5 -> range 0.5
        (
            (0.29, 0.31, 0.41, 0.40),
            "best cell: kl_coef=0.05, warmup_epochs=1: 41.0%",
            "measured: means by kl_coef range 10.5 points, by warmup_epochs 0.5: "
            "accuracy depends more on the KL coefficient",
        ),
    ],
)
def test_kl_warmup_names_the_best_cell_and_the_knob_that_matters(
    tmp_path, accuracies, best, verdict
):
    for job, ((kl, epochs), acc) in enumerate(zip(KL_WARMUP_CELLS, accuracies, strict=True)):
        config = {
            "experiment": "kl_warmup",
            "method": {"name": "reft", "kl_coef": float(kl), "warmup_epochs": int(epochs)},
        }
        overrides = [
            "+experiment=kl_warmup",
            f"method.kl_coef={kl}",
            f"method.warmup_epochs={epochs}",
        ]
        write_job(tmp_path, job, overrides, config, {"test_accuracy": acc})
    report = make_report(tmp_path)
    assert report.section.verdicts[1:] == [best, verdict]
    assert report.section.headers == ["kl_coef \\ warmup_epochs", "1", "2", "mean"]
    assert is_png(tmp_path / HEATMAP_PNG)  # the grid is still drawn as the heat map


# --- which shape ----------------------------------------------------------------------------


def ordinary_job(root: Path, job: int, experiment: str | None) -> None:
    config = {"experiment": experiment, "method": {"name": "reft", "kl_coef": job / 10}}
    write_job(root, job, [f"method.kl_coef={job / 10}"], config, {"test_accuracy": 0.3})


def test_ordinary_runs_get_no_experiment_section(tmp_path):
    for job in range(2):
        ordinary_job(tmp_path, job, None)
    report = make_report(tmp_path, plots=False)
    assert report.section is None and report.notes == []
    assert "## Experiment" not in (tmp_path / "report.md").read_text()
    assert "\nexperiment " not in format_report(report)


@pytest.mark.parametrize(
    ("experiments", "note"),
    [
        (("prefixrl", None), "runs of several experiments (none, prefixrl): no experiment table"),
        (("mystery", "mystery"), "experiment mystery has no report shape (known: reft_table, "),
    ],
)
def test_runs_without_one_known_experiment_get_a_note(tmp_path, experiments, note):
    for job, experiment in enumerate(experiments):
        ordinary_job(tmp_path, job, experiment)
    report = make_report(tmp_path, plots=False)
    assert report.section is None
    assert any(n.startswith(note) for n in report.notes)
