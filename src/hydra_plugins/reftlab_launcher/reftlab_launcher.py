"""reftlab's SLURM launcher: hydra-submitit-launcher's, with sbatch's refusal of a GPU request
in one line (`reftlab.app.launcher`). Here because Hydra loads launchers from `hydra_plugins`."""

from __future__ import annotations

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
    SlurmLauncher as SubmititSlurmLauncher,
)

from reftlab.app.launcher import fail_on_refusal


class SlurmLauncher(SubmititSlurmLauncher):
    def launch(self, job_overrides, initial_job_idx):
        try:
            return super().launch(job_overrides, initial_job_idx)
        except Exception as exc:  # submitit's FailedJobError carries sbatch's stderr
            fail_on_refusal(exc, self.params)
            raise
