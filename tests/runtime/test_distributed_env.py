"""Ranks from the launcher's environment, shards of a step, and the single-process collectives."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reftlab.runtime import distributed
from reftlab.runtime.distributed import (
    MAX_PORT,
    MIN_PORT,
    World,
    first_host,
    local_shards,
    master_port,
    shard_bounds,
    slurm_cpu_threads,
    torch_env_from_slurm,
    world_from_env,
)

# Task 5 of a 2-node, 8-task job step (4 GPUs per node), as srun sets it.
SLURM_TASK = {
    "SLURM_JOB_ID": "4242",
    "SLURM_PROCID": "5",
    "SLURM_LOCALID": "1",
    "SLURM_STEP_NUM_TASKS": "8",
    "SLURM_STEP_NUM_NODES": "2",
    "SLURM_STEP_NODELIST": "gpu[07-08]",
    "SLURM_NTASKS": "8",
}


def test_first_host_of_slurm_node_lists():
    assert first_host("vm") == "vm"
    assert first_host("gpu[003-004,9],cpu1") == "gpu003"
    assert first_host("node[7]") == "node7"
    assert first_host("a1,b2") == "a1"


def test_torch_env_is_built_from_a_slurm_job_step():
    env = torch_env_from_slurm(SLURM_TASK)
    assert env == {
        "RANK": "5",
        "WORLD_SIZE": "8",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "4",  # 8 tasks / 2 nodes
        "MASTER_ADDR": "gpu07",
        "MASTER_PORT": str(master_port("4242")),
    }
    assert world_from_env(env) == World(rank=5, size=8, local_rank=1)


def test_every_task_of_a_job_draws_the_same_port_and_jobs_differ():
    ports = {
        torch_env_from_slurm({**SLURM_TASK, "SLURM_PROCID": str(r)})["MASTER_PORT"]
        for r in range(8)
    }
    assert len(ports) == 1
    assert MIN_PORT <= master_port("4242") <= MAX_PORT
    assert len({master_port(str(job)) for job in range(100, 120)}) > 15


def test_torchrun_and_user_variables_win():
    torchrun = {**SLURM_TASK, "RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}
    assert torch_env_from_slurm(torchrun) == {}
    preset = torch_env_from_slurm({**SLURM_TASK, "MASTER_PORT": "29500"})
    assert "MASTER_PORT" not in preset and preset["RANK"] == "5"


def test_a_single_process_is_not_distributed():
    # The batch script of a job with --ntasks=8 is one process: no srun step, no step count.
    batch_script = {k: v for k, v in SLURM_TASK.items() if not k.startswith("SLURM_STEP")}
    assert torch_env_from_slurm(batch_script) == {}
    assert torch_env_from_slurm({**SLURM_TASK, "SLURM_STEP_NUM_TASKS": "1"}) == {}
    assert torch_env_from_slurm({}) == {}
    assert world_from_env({}) == World(0, 1, 0)
    assert World().is_main and not World().is_distributed


def test_cpu_threads_follow_the_slurm_allocation():
    assert slurm_cpu_threads({"SLURM_CPUS_PER_TASK": "8"}) == 8
    assert slurm_cpu_threads({}) is None
    assert slurm_cpu_threads({"SLURM_CPUS_PER_TASK": "0"}) is None


def test_shard_bounds_golden():
    assert shard_bounds(5, 2) == [(0, 3), (3, 5)]
    assert shard_bounds(8, 4) == [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert shard_bounds(1, 3) == [(0, 1), (1, 1), (1, 1)]


@given(st.integers(0, 300), st.integers(1, 16))
def test_shard_bounds_cover_the_items_in_order_and_evenly(n, shards):
    bounds = shard_bounds(n, shards)
    assert len(bounds) == shards
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    sizes = [end - start for start, end in bounds]
    assert max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)  # the longer shards come first


def test_local_shards_of_all_processes_partition_the_global_shards():
    ranks = [local_shards(World(rank, 2), grad_accum=3) for rank in range(2)]
    assert ranks == [range(0, 3), range(3, 6)]
    # 2 processes x 1 and 1 process x 2 see the same two shards.
    assert [list(local_shards(World(r, 2), 1)) for r in range(2)] == [[0], [1]]
    assert list(local_shards(World(0, 1), 2)) == [0, 1]


def test_collectives_are_identities_in_one_process():
    assert distributed.all_reduce_sum([1, 2.5]) == [1.0, 2.5]
    assert distributed.any_process(True) and not distributed.any_process(False)
    payload = {"a": [1, 2]}
    assert distributed.broadcast_object(payload) is payload
    assert distributed.gather_objects(payload) == [payload]
    distributed.barrier()
    assert distributed.current_world() == World()
