"""The `slurm` launcher profiles: sbatch refusing a GPU request is one line naming the fix."""

from __future__ import annotations

import pytest

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

from submitit.core.utils import FailedJobError  # noqa: E402

from hydra_plugins.reftlab_launcher.reftlab_launcher import SlurmLauncher  # noqa: E402
from reftlab.app.launcher import sbatch_refusal  # noqa: E402

SBATCH = "sbatch: error: Batch job submission failed: Invalid generic resource (gres) specification"


def test_a_gres_refusal_names_the_partition_and_the_overrides():
    message = sbatch_refusal(FailedJobError(SBATCH), "cpu", 1)
    assert message.startswith("sbatch refused the job: partition cpu has no GPUs")
    assert "hydra.launcher.partition=NAME" in message and "hydra/launcher=slurm_local" in message
    assert "\n" not in message
    assert sbatch_refusal(FailedJobError("sbatch: error: other"), "cpu", 1) is None


def test_the_launcher_exits_2_with_one_line(monkeypatch, capsys):
    def refused(self, job_overrides, initial_job_idx):
        raise FailedJobError(SBATCH)

    # The parent class itself: Hydra's plugin scan may have loaded its module a second time.
    monkeypatch.setattr(SlurmLauncher.__mro__[1], "launch", refused)
    launcher = SlurmLauncher(partition=None, gpus_per_node=4, submitit_folder="x")
    with pytest.raises(SystemExit) as caught:
        launcher.launch([], 0)
    assert caught.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "the cluster's default partition has no GPUs" in err[0]


def test_the_slurm_profiles_use_this_launcher():
    from omegaconf import OmegaConf

    from reftlab.app.compose import conf_dir

    profile = OmegaConf.load(conf_dir() / "hydra" / "launcher" / "slurm.yaml")
    assert profile._target_ == "hydra_plugins.reftlab_launcher.reftlab_launcher.SlurmLauncher"
