"""Rank 0 before fairseq2's gangs: torchrun's RANK, else srun's SLURM_PROCID, else alone."""

from __future__ import annotations

import pytest

from cocomix.runtime.world import is_rank_zero, launcher_rank


@pytest.mark.parametrize(("env", "rank"), [
    ({}, 0),
    ({"RANK": "3"}, 3),
    ({"SLURM_PROCID": "5"}, 5),  # srun without torchrun: fairseq2 sets RANK only later
    ({"RANK": "0", "SLURM_PROCID": "7"}, 0),  # torchrun inside a SLURM step: torchrun's rank
    ({"RANK": ""}, 0),
])
def test_launcher_rank(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], rank: int) -> None:
    for key in ("RANK", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert launcher_rank() == rank
    assert is_rank_zero() == (rank == 0)


def test_each_run_in_a_process_names_its_process_groups_past_the_last(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch names the default group from a counter that destroying it resets to 0; a second run
    in the same torchrun process would reuse the first run's rendezvous keys (see world.py)."""
    from torch.distributed import distributed_c10d

    from cocomix.runtime import world

    monkeypatch.setattr(world, "_runs_started", 0)
    monkeypatch.setattr(distributed_c10d._world, "group_count", 0)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("SLURM_NTASKS", "2")  # srun: WORLD_SIZE comes later, from fairseq2
    monkeypatch.setattr(world, "_runs_started", 1)  # a second run
    world.name_next_process_groups()
    assert distributed_c10d._world.group_count == 1000
    distributed_c10d._world.group_count = 0
    monkeypatch.setattr(world, "_runs_started", 0)
    monkeypatch.delenv("SLURM_NTASKS")
    monkeypatch.setenv("WORLD_SIZE", "2")
    seen = []
    for _ in range(3):
        world.name_next_process_groups()
        seen.append(distributed_c10d._world.group_count)
        distributed_c10d._world.group_count = 0  # what destroying the run's default group does
    assert seen == [0, 1000, 2000]
    monkeypatch.setenv("WORLD_SIZE", "1")  # one process: no process group, nothing to name
    world.name_next_process_groups()
    assert distributed_c10d._world.group_count == 0
