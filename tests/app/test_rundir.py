"""The run-dir decision's comparison of configs: which keys count as a change on resume."""

from __future__ import annotations

import pytest

from reftlab.app.rundir import MAY_DIFFER_ON_RESUME, changed_keys, decide, format_changes
from reftlab.errors import ReftlabError

RECORDED = {
    "seed": 0,
    "resume": False,
    "cache_dir": "/a",
    "save_every": 0,
    "method": {"name": "reft", "kl_coef": 0.05, "schedule": [1, 2]},
}


def test_changed_keys_are_named_with_both_values():
    given = {**RECORDED, "seed": 7, "method": {**RECORDED["method"], "kl_coef": 0.5}}
    changed = changed_keys(RECORDED, given)
    assert changed == {"method.kl_coef": [0.05, 0.5], "seed": [0, 7]}
    assert format_changes(changed) == "method.kl_coef: 0.05 -> 0.5, seed: 0 -> 7"


def test_a_key_on_one_side_only_is_a_change_and_lists_are_values():
    given = {**RECORDED, "method": {"name": "bandit", "schedule": [1, 3]}}
    assert changed_keys(RECORDED, given) == {
        "method.kl_coef": [0.05, None],
        "method.name": ["reft", "bandit"],
        "method.schedule": [[1, 2], [1, 3]],
    }


def test_bookkeeping_keys_may_differ():
    given = {**RECORDED, "resume": True, "cache_dir": "/b", "save_every": 5, "output_dir": "x"}
    assert set(MAY_DIFFER_ON_RESUME) >= {"resume", "cache_dir", "save_every", "output_dir"}
    assert changed_keys(RECORDED, given) == {}


def test_resume_refuses_a_changed_config_unless_forced(tmp_path):
    (tmp_path / "config.yaml").write_text("seed: 0\nmethod:\n  kl_coef: 0.05\n")
    given = {"seed": 0, "method": {"kl_coef": 0.5}}
    with pytest.raises(ReftlabError, match=r"method.kl_coef: 0.05 -> 0.5.*resume=force"):
        decide(tmp_path, True, requeued=False, config=given)
    forced = decide(tmp_path, "force", requeued=False, config=given)
    assert (forced.mode, forced.changed) == ("force", {"method.kl_coef": [0.05, 0.5]})
    assert (
        decide(tmp_path, True, requeued=False, config={"seed": 0, "method": {"kl_coef": 0.05}}).mode
        == "resume"
    )


def test_resuming_a_sweep_starts_the_jobs_it_never_reached(tmp_path):
    # `reftlab -m ... resume=true`: a job dir the stopped sweep never created holds no run.
    assert (
        decide(tmp_path / "5_seed=1", True, requeued=False, config={}, in_sweep=True).resume
        is False
    )
    # A single run's mistyped dir stays an error.
    with pytest.raises(ReftlabError, match="no run to resume"):
        decide(tmp_path / "5_seed=1", True, requeued=False, config={})
