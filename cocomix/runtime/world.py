"""Which process this is, before fairseq2 sets up its gangs.

The run folder, its lock, a teacher trained on demand and the console belong to global rank 0,
and they are decided before ``fairseq2.recipe.run`` starts. torchrun sets ``RANK`` for every
process. Under SLURM's ``srun`` (one task per GPU, no torchrun), fairseq2 derives ``RANK`` from
the SLURM job only inside ``run`` (``common.cluster=auto``), so until then ``SLURM_PROCID`` is
the rank. Without either, this is the only process.
"""

from __future__ import annotations

import os


def launcher_rank() -> int:
    """The global rank the launcher gave this process (0 for a plain single process)."""
    for key in ("RANK", "SLURM_PROCID"):
        value = os.environ.get(key)
        if value is not None and value.strip().isdigit():
            return int(value)
    return 0


def is_rank_zero() -> bool:
    return launcher_rank() == 0
