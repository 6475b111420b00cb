"""The paper presets (`reftlab -m +experiment=NAME`): what each sweep expands to, and what each
bandit ablation changes relative to the minimal baseline."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import pytest

from reftlab.app.compose import group_options
from reftlab.config import validate

# Each preset's jobs: the overrides Hydra launches, without `+experiment=` and `dry_run=`.
EXPECTED_JOBS = {
    "reft_table": [f"method={m}" for m in ("sft", "offline_st", "online_st", "reft")],
    "kl_warmup": [
        f"method.kl_coef={kl} method.warmup_epochs={epochs}"
        for kl in ("0.0", "0.05", "0.2")
        for epochs in (1, 3)
    ],
    "prefixrl": [f"method.offpolicy_use={use}" for use in ("prefix", "sft", "none")],
    "bandit_ablations": [
        f"+bandit_ablation={name} seed={seed}"
        for name in (
            "minimal",
            "batch_mean",
            "rloo",
            "group_norm",
            "gae",
            "rollouts_4",
            "rollouts_8",
            "kl",
            "clip_reuse",
            "partial_reward",
        )
        for seed in (0, 1)
    ],
}

# What each ablation changes in `method` relative to `minimal` (and nothing else).
ABLATION_CHANGES = {
    "batch_mean": {"advantage": "batch_mean"},
    "rloo": {"advantage": "rloo", "rollouts_per_query": 4, "batch_size": 8},
    "group_norm": {"advantage": "group_norm", "rollouts_per_query": 4, "batch_size": 8},
    "gae": {"advantage": "gae"},
    "rollouts_4": {"rollouts_per_query": 4, "batch_size": 8},
    "rollouts_8": {"rollouts_per_query": 8, "batch_size": 4},
    "kl": {"kl_coef": 0.05},
    "clip_reuse": {
        "policy_loss": "ppo_clip",
        "clip_range": 0.2,
        "ppo_epochs": 2,
        "mini_batch_size": 16,
    },
    "partial_reward": {"reward_shape": "partial"},
}


def launched_jobs(tmp_path, *overrides: str) -> list[str]:
    """The jobs `reftlab -m ... dry_run=true` launches, as Hydra prints them (`#N : ...`)."""
    result = subprocess.run(
        [sys.executable, "-m", "reftlab", "-m", *overrides, "dry_run=true"]
        + [f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = re.findall(r"#\d+ : (.*)", result.stdout + result.stderr)
    assert result.stdout.count("reftlab plan:") == len(jobs)
    drop = {overrides[0], "dry_run=True"}
    return [" ".join(o for o in job.split() if o not in drop) for job in jobs]


def test_the_shipped_presets_are_the_documented_ones():
    assert group_options("experiment") == sorted(EXPECTED_JOBS)
    assert group_options("bandit_ablation") == sorted(["minimal", *ABLATION_CHANGES])


@pytest.mark.parametrize("name", sorted(EXPECTED_JOBS))
def test_each_preset_sweeps_its_documented_runs(tmp_path, name):
    assert launched_jobs(tmp_path, f"+experiment={name}") == EXPECTED_JOBS[name]


def test_a_command_line_value_narrows_a_preset_sweep(tmp_path):
    jobs = launched_jobs(tmp_path, "+experiment=bandit_ablations", "+bandit_ablation=minimal,kl")
    assert jobs == [f"+bandit_ablation={n} seed={s}" for n in ("minimal", "kl") for s in (0, 1)]


@pytest.mark.parametrize("name", sorted(ABLATION_CHANGES))
def test_each_ablation_adds_one_design_choice_to_the_minimal_baseline(composer, name):
    minimal = composer("+experiment=bandit_ablations", "+bandit_ablation=minimal")
    ablated = composer("+experiment=bandit_ablations", f"+bandit_ablation={name}")
    validate(ablated)
    before, after = dataclasses.asdict(minimal.method), dataclasses.asdict(ablated.method)
    changed = {k: v for k, v in after.items() if before[k] != v}
    assert changed == ABLATION_CHANGES[name]
    assert (minimal.ablation, ablated.ablation) == ("minimal", name)
    # Samples per step stay 32 whatever the split into questions and rollouts.
    assert ablated.method.batch_size * ablated.method.rollouts_per_query == 32


def test_the_minimal_baseline_is_the_papers(composer):
    m = composer("+experiment=bandit_ablations", "+bandit_ablation=minimal").method
    assert m.name == "bandit"
    assert (m.rollouts_per_query, m.batch_size, m.mini_batch_size, m.ppo_epochs) == (1, 32, 32, 1)
    assert (m.advantage, m.policy_loss, m.kl_coef, m.clip_range, m.reward_shape) == (
        "none",
        "pg",
        0.0,
        None,
        "binary",
    )


def test_presets_record_their_name_and_change_only_what_they_say(composer):
    default = composer()
    table = composer("+experiment=reft_table")
    assert (table.experiment, table.eval.samples, table.eval.rerank) == ("reft_table", 4, True)
    assert table.method == default.method and table.dataset == default.dataset
    assert table.budget.max_samples_per_question == 4
    prefix = composer("+experiment=prefixrl")
    assert (prefix.experiment, prefix.method.name) == ("prefixrl", "prefixrl")
    limits = (prefix.dataset.max_start, prefix.dataset.max_operand, prefix.dataset.max_value)
    assert limits == (30, 20, 120)
    m = prefix.method
    assert (m.batch_size * m.rollouts_per_query, m.rl_epochs) == (64, 1)
    assert composer("+experiment=kl_warmup").method == default.method
    assert default.experiment is None and default.ablation is None


def test_a_misspelt_preset_is_one_line_naming_the_choices(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "reftlab", "+experiment=reft_tabel", "dry_run=true"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "reftlab: error: unknown experiment 'reft_tabel'; choose one of: "
        "bandit_ablations, kl_warmup, prefixrl, reft_table"
    )
