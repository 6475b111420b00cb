"""sbatch's refusal of a GPU request, in one line that says which override to change. The
`slurm` profiles' launcher (`hydra_plugins.reftlab_launcher`: Hydra loads launchers from that
package only) calls `fail_on_refusal` when a submission fails."""

from __future__ import annotations

import sys

from reftlab.app.compose import USAGE_ERROR

GRES_ERROR = "Invalid generic resource (gres) specification"


def sbatch_refusal(exc: BaseException, partition: str | None, gpus: int | None) -> str | None:
    """The one-line message for an sbatch refusal reftlab can explain, else None."""
    if GRES_ERROR not in str(exc):
        return None
    where = f"partition {partition}" if partition else "the cluster's default partition"
    return (
        f"sbatch refused the job: {where} has no GPUs of the kind hydra/launcher=slurm asks for "
        f"(gpus_per_node={gpus}); name a GPU partition with hydra.launcher.partition=NAME, or "
        "run on CPUs with hydra/launcher=slurm_local (or hydra.launcher.gpus_per_node=null)"
    )


def fail_on_refusal(exc: BaseException, params: dict) -> None:
    """Exit 2 with one line if `exc` is an sbatch refusal reftlab can explain; else return.
    SystemExit, because Hydra prints a traceback for any Exception a launcher raises."""
    message = sbatch_refusal(exc, params.get("partition"), params.get("gpus_per_node"))
    if message is not None:
        print(f"reftlab: error: {message}", file=sys.stderr)
        raise SystemExit(USAGE_ERROR) from None
