"""Which process this is, before fairseq2 sets up its gangs.

The run folder, its lock, a teacher trained on demand and the console belong to global rank 0,
and they are decided before ``fairseq2.recipe.run`` starts. torchrun sets ``RANK`` for every
process. Under SLURM's ``srun`` (one task per GPU, no torchrun), fairseq2 derives ``RANK`` from
the SLURM job only inside ``run`` (``common.cluster=auto``), so until then ``SLURM_PROCID`` is
the rank. Without either, this is the only process. One process may run several fairseq2
runs in turn (a recipe's arms and seeds, a teacher before its students); their process
groups must not share names.
"""

from __future__ import annotations

import os


def use_threads(threads: int) -> None:
    """The intra-op thread count a recipe names (``threads``), whatever the machine's cores or
    ``OMP_NUM_THREADS``: some kernels split their sums by thread count, so the same command gives
    the same bits only at the same count (docs/reliability.md, "Determinism")."""
    import torch

    torch.set_num_threads(threads)


def launcher_rank() -> int:
    """The global rank the launcher gave this process (0 for a plain single process)."""
    for key in ("RANK", "SLURM_PROCID"):
        value = os.environ.get(key)
        if value is not None and value.strip().isdigit():
            return int(value)
    return 0


def is_rank_zero() -> bool:
    return launcher_rank() == 0


_runs_started = 0


def name_next_process_groups() -> None:
    """Give the process groups of the next fairseq2 run in this process names no earlier run used.

    fairseq2 creates the default process group when a run starts and destroys it when the run
    ends; torch then resets its group counter, so the next run's group is named "0" again and its
    rendezvous keys go under the same prefix of torchrun's store, which still holds the last run's
    keys. A rank that reads its peer's stale address waits forever: the second (arm, seed) of a
    multi-run recipe hung in 2 of 4 two-rank launches. Every rank runs the same runs in the same
    order, so a count of runs gives every rank the same names. torch has no public switch for the
    default group's name, hence its private counter.
    """
    global _runs_started
    # torchrun sets WORLD_SIZE; under srun fairseq2 derives it from the SLURM job only later.
    size = os.environ.get("WORLD_SIZE") or os.environ.get("SLURM_NTASKS") or "1"
    if size.strip().isdigit() and int(size) > 1:
        from torch.distributed import distributed_c10d

        distributed_c10d._world.group_count = 1000 * _runs_started  # room for each run's subgroups
    _runs_started += 1
