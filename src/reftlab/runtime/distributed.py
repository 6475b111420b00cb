"""One process per GPU: the torch.distributed environment, ranks, shards and the few collectives
reftlab uses.

Where the ranks come from:

- torchrun (or `accelerate launch`): RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT
  are set and used as they are.
- a SLURM job step with several tasks (submitit starts `tasks_per_node` of them per node, one
  per GPU): the same variables are built from SLURM_PROCID, SLURM_STEP_NUM_TASKS,
  SLURM_LOCALID, the first host of SLURM_JOB_NODELIST and a port drawn from the job id, so every
  task computes the same rendezvous without talking to the others.
- anything else: one process, no process group.

CUDA_VISIBLE_DEVICES is never changed: every process sees every GPU of its node and uses GPU
LOCAL_RANK, so that NCCL can use the links between them.

Shards. An optimizer step's batch is split into `size * grad_accum` contiguous shards; process
`rank` handles shards `rank * grad_accum ... (rank + 1) * grad_accum - 1`, one after another,
adding up their gradients. A shard's data and sampling seed depend only on its global index, so
the same number of shards gives the same run on any number of processes (2 processes, or 1
process with grad_accum=2), up to the order of floating-point sums.
"""

from __future__ import annotations

import datetime
import os
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

# The rendezvous port range submitit also draws from (clear of the usual service ports).
MIN_PORT, MAX_PORT = 20000, 60000
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# Collectives wait this long: the warm-up of another sweep job is waited for by polling, so no
# collective ever waits for more than a training step.
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)


@dataclass(frozen=True)
class World:
    """This process's place among the processes of a run."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.size > 1


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: `gpu[003-004,9],cpu1` -> `gpu003`."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if match is None:
        raise ValueError(f"cannot read the SLURM node list {nodelist!r}")
    prefix, ranges = match.groups()
    if ranges is None:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def master_port(job_id: str) -> int:
    """A rendezvous port that every task of the job draws alike from the job id."""
    return random.Random(job_id).randint(MIN_PORT, MAX_PORT)


def torch_env_from_slurm(environ: Mapping[str, str]) -> dict[str, str]:
    """The torch.distributed variables for a SLURM job step of several tasks; {} otherwise.

    Only variables that are not set yet are returned: torchrun's (or a user's) win. The step's
    task count (SLURM_STEP_NUM_TASKS, set by srun) is used, not the job's SLURM_NTASKS, which a
    batch script without srun also sees while it is a single process.
    """
    if all(name in environ for name in ("RANK", "WORLD_SIZE")):
        return {}
    tasks = int(environ.get("SLURM_STEP_NUM_TASKS", "1"))
    if tasks <= 1 or "SLURM_PROCID" not in environ:
        return {}
    nodes = int(environ.get("SLURM_STEP_NUM_NODES", environ.get("SLURM_JOB_NUM_NODES", "1")))
    nodelist = environ.get("SLURM_STEP_NODELIST", environ.get("SLURM_JOB_NODELIST", ""))
    built = {
        "RANK": environ["SLURM_PROCID"],
        "WORLD_SIZE": str(tasks),
        "LOCAL_RANK": environ.get("SLURM_LOCALID", "0"),
        "LOCAL_WORLD_SIZE": str(max(1, tasks // max(1, nodes))),
        "MASTER_ADDR": first_host(nodelist) if nodelist else "127.0.0.1",
        "MASTER_PORT": str(master_port(environ.get("SLURM_JOB_ID", "0"))),
    }
    return {name: value for name, value in built.items() if name not in environ}


def world_from_env(environ: Mapping[str, str]) -> World:
    """This process's rank and the world size, from torchrun's variables (or none: one process)."""
    return World(
        rank=int(environ.get("RANK", "0")),
        size=int(environ.get("WORLD_SIZE", "1")),
        local_rank=int(environ.get("LOCAL_RANK", "0")),
    )


def init_distributed() -> World:
    """Set up torch.distributed for this process if the launcher started several; return the world.

    Backend: NCCL on GPUs (each process on GPU LOCAL_RANK), gloo on CPU. Idempotent: a second
    call (the next job of an in-process sweep) reuses the process group.
    """
    os.environ.update(torch_env_from_slurm(os.environ))
    threads = slurm_cpu_threads(os.environ)
    if threads is not None and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(threads)
    world = world_from_env(os.environ)
    if not world.is_distributed or dist.is_initialized():
        return world
    missing = [name for name in TORCHRUN_VARS if name not in os.environ]
    if missing:
        raise RuntimeError(f"WORLD_SIZE={world.size} but {', '.join(missing)} not set")
    if torch.cuda.is_available():
        torch.cuda.set_device(world.local_rank)
        dist.init_process_group("nccl", timeout=COLLECTIVE_TIMEOUT)
    else:
        dist.init_process_group("gloo", timeout=COLLECTIVE_TIMEOUT)
    return world


def slurm_cpu_threads(environ: Mapping[str, str]) -> int | None:
    """The CPU cores SLURM gave each task, if it says (clusters without cgroups do not confine
    a job to them, and torch would otherwise start a thread per core of the node)."""
    value = environ.get("SLURM_CPUS_PER_TASK")
    return int(value) if value and value.isdigit() and int(value) > 0 else None


def current_world() -> World:
    """The world of the initialised process group, or of the environment before it exists."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return world_from_env(os.environ)


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _device() -> torch.device:
    """Where collective tensors live: NCCL reduces CUDA tensors only."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# --- shards -----------------------------------------------------------------------------------


def shard_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """`shards` contiguous [start, end) ranges covering range(n); the first n % shards are one
    longer (like numpy.array_split). Ranges are empty when n < shards."""
    base, extra = divmod(n, shards)
    bounds, start = [], 0
    for index in range(shards):
        end = start + base + (1 if index < extra else 0)
        bounds.append((start, end))
        start = end
    return bounds


def shard_part(n_items: int, shard: int, n_shards: int) -> tuple[slice, float]:
    """The items of shard `shard` of `n_items` and its weight (1.0).

    A shard with no items (fewer items than shards) still has to run a forward and backward
    pass, or the processes' gradient all-reduces fall out of step: it takes item 0 with weight
    0, which adds nothing to the gradient.
    """
    start, end = shard_bounds(n_items, n_shards)[shard]
    if start == end:
        return slice(0, 1), 0.0
    return slice(start, end), 1.0


def local_shards(world: World, grad_accum: int) -> range:
    """The global indices of the shards this process handles."""
    return range(world.rank * grad_accum, (world.rank + 1) * grad_accum)


# --- collectives (identities in a single process) ---------------------------------------------


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sums of `values` over all processes (float64)."""
    if not _active():
        return [float(v) for v in values]
    tensor = torch.tensor(list(values), dtype=torch.float64, device=_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def any_process(flag: bool) -> bool:
    """True on every process if `flag` is true on any."""
    return all_reduce_sum([float(flag)])[0] > 0


def broadcast_object(obj: Any) -> Any:
    """Rank 0's `obj` on every process."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    """Every process's `obj` in rank order, on every process (small objects only)."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if _active():
        dist.barrier()


def check_replicas(model: torch.nn.Module, what: str) -> None:
    """Raise if this process's weights differ from the other processes': data parallelism must
    keep every replica identical. Compares one float64 sum per parameter tensor, exactly."""
    if not _active():
        return
    with torch.no_grad():
        sums = torch.stack([p.detach().double().sum() for p in model.parameters()])
    fingerprints = gather_objects(sums.tolist())
    differing = [rank for rank, f in enumerate(fingerprints) if f != fingerprints[0]]
    if differing:
        raise RuntimeError(f"{what}: the weights of ranks {differing} differ from rank 0's")
    if dist.get_rank() == 0:
        print(f"[{what}] weights identical on {len(fingerprints)} processes", flush=True)
