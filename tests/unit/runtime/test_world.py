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
