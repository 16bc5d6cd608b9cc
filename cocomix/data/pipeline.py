"""Training and validation batches from a token shard, as fairseq2 ``DataPipeline``s.

Training windows are random, but each one is a pure function of (seed, global sample index):
its start offset is a counter-based hash (splitmix64) of the two. A run therefore sees the same
data in the same optimizer steps whatever its world size, gradient accumulation split or resume
point, and resuming needs only the pipeline's counter, which fairseq2's ``state_dict`` saves.

Global sample layout: an optimizer step consumes ``G = micro_batch_size * world_size *
num_accumulate`` samples, step ``s`` owning samples ``[s*G, (s+1)*G)``; micro-batch ``a`` of
rank ``r`` takes the ``micro_batch_size`` samples starting at ``s*G + (a*world_size + r) *
micro_batch_size``. Each batch is a ``SequenceBatch`` of ``seq_len + 1`` tokens per row (inputs
plus the shifted targets); ``batch.example`` holds the rows' sample indices and start offsets.

Validation uses fixed, non-overlapping windows from the start of the shard, dealt to ranks
round-robin by batch.
"""

from __future__ import annotations

import numpy as np
import torch
from fairseq2.data.data_pipeline import DataPipeline, read_sequence
from fairseq2.datasets import DataPipelineReader, SequenceBatch, SyncMode
from fairseq2.gang import Gangs

from cocomix.data.shards import TokenShard
from cocomix.registry import CocomixError

_MASK64 = (1 << 64) - 1


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, vectorised over a uint64 array (a bijection on 64-bit ints)."""
    z = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):  # the multiplications wrap modulo 2**64 on purpose
        z += np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _check_length(n_tokens: int, window: int) -> None:
    if n_tokens < window:
        raise CocomixError(
            f"corpus split has {n_tokens} tokens, fewer than one sequence of {window}; "
            f"use a shorter seq_len or more data"
        )


def window_starts(seed: int, sample_indices: np.ndarray, n_tokens: int, window: int) -> np.ndarray:
    """Start offsets, uniform in ``[0, n_tokens - window]``, of the given global samples (int64)."""
    _check_length(n_tokens, window)
    seed_key = splitmix64(np.array([seed & _MASK64], dtype=np.uint64))[0]
    hashed = splitmix64(np.asarray(sample_indices, dtype=np.uint64) ^ seed_key)
    # Modulo bias is at most n_tokens / 2**64: negligible for any corpus.
    return (hashed % np.uint64(n_tokens - window + 1)).astype(np.int64)


def _gather(tokens: np.ndarray, starts: np.ndarray, window: int) -> torch.Tensor:
    rows = np.stack([tokens[s : s + window] for s in starts.tolist()])
    return torch.from_numpy(rows.astype(np.int64))


def _check_layout(**sizes: int) -> None:
    for name, value in sizes.items():
        if value < 1:
            raise CocomixError(f"{name} is {value}; it must be at least 1")


def train_pipeline(
    shard: TokenShard,
    *,
    seq_len: int,
    micro_batch_size: int,
    num_accumulate: int,
    seed: int,
    rank: int,
    world_size: int,
) -> DataPipeline:
    """Infinite pipeline of this rank's training micro-batches (see the module docstring)."""
    _check_layout(
        seq_len=seq_len,
        micro_batch_size=micro_batch_size,
        num_accumulate=num_accumulate,
        world_size=world_size,
    )
    if not 0 <= rank < world_size:
        raise CocomixError(f"rank {rank} is outside a world of {world_size}")
    window = seq_len + 1
    n_tokens = shard.n_tokens
    _check_length(n_tokens, window)
    tokens = shard.tokens
    global_batch = micro_batch_size * world_size * num_accumulate
    offsets = np.arange(micro_batch_size, dtype=np.int64)

    def make_batch(u: int) -> SequenceBatch:
        step, a = divmod(u, num_accumulate)
        first = step * global_batch + (a * world_size + rank) * micro_batch_size
        rows = first + offsets
        starts = window_starts(seed, rows, n_tokens, window)
        seqs = _gather(tokens, starts, window)
        return SequenceBatch(seqs, None, example={"sample_index": rows, "start": starts})

    # count() is fairseq2's infinite counter; its state_dict is the position, so resume is exact.
    return DataPipeline.count(0).map(make_batch).and_return()


def valid_windows(n_tokens: int, seq_len: int) -> int:
    """How many non-overlapping windows of ``seq_len + 1`` tokens fit in the shard."""
    return n_tokens // (seq_len + 1)


def valid_pipeline(
    shard: TokenShard,
    *,
    seq_len: int,
    batch_size: int,
    max_batches: int,
    rank: int,
    world_size: int,
) -> DataPipeline:
    """Finite pipeline over fixed windows ``i*(seq_len+1)``; batches dealt round-robin to ranks.

    Uses the first ``max_batches * batch_size * world_size`` windows (``0``: all of them); the
    last batch may be partial. Ranks can get different numbers of batches, so read it with
    ``SyncMode.UNTIL_LAST``.
    """
    _check_layout(seq_len=seq_len, batch_size=batch_size, world_size=world_size)
    if max_batches < 0:
        raise CocomixError(f"max_batches is {max_batches}; use 0 (all) or a positive number")
    if not 0 <= rank < world_size:
        raise CocomixError(f"rank {rank} is outside a world of {world_size}")
    window = seq_len + 1
    _check_length(shard.n_tokens, window)
    n_windows = valid_windows(shard.n_tokens, seq_len)
    if max_batches:
        n_windows = min(n_windows, max_batches * batch_size * world_size)
    n_batches = -(-n_windows // batch_size)
    tokens = shard.tokens

    def make_batch(b: int) -> SequenceBatch:
        index = np.arange(b * batch_size, min((b + 1) * batch_size, n_windows), dtype=np.int64)
        starts = index * window
        seqs = _gather(tokens, starts, window)
        return SequenceBatch(seqs, None, example={"sample_index": index, "start": starts})

    return read_sequence(list(range(rank, n_batches, world_size))).map(make_batch).and_return()


def make_reader(
    pipeline: DataPipeline,
    gangs: Gangs,
    *,
    num_accumulate: int,
    sync_mode: SyncMode = SyncMode.UNTIL_FIRST,
) -> DataPipelineReader[SequenceBatch]:
    """Wrap a pipeline in the ``DataReader`` fairseq2's Trainer consumes.

    Each read returns ``num_accumulate`` micro-batches. Use ``SyncMode.UNTIL_LAST`` for
    validation so every rank's batches are evaluated even when the counts differ.
    """
    _check_layout(num_accumulate=num_accumulate)
    return DataPipelineReader[SequenceBatch](
        pipeline, gangs, num_accumulate=num_accumulate, sync_mode=sync_mode
    )
