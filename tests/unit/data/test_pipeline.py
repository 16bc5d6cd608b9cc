"""Training/validation pipelines: pure window sampling, world-size independence, exact resume."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch
from fairseq2.data.data_pipeline import DataPipeline
from fairseq2.datasets import SequenceBatch, SyncMode
from fairseq2.gang import create_fake_gangs

from cocomix.data.pipeline import (
    make_reader,
    train_pipeline,
    valid_pipeline,
    window_starts,
)
from cocomix.data.shards import META_FILE, TOKENS_FILE, TokenShard
from cocomix.registry import CocomixError

N_TOKENS = 5000


def make_shard(directory: Path, n_tokens: int = N_TOKENS) -> TokenShard:
    """A shard whose token at position i is i, so a window's content gives its start."""
    directory.mkdir(parents=True, exist_ok=True)
    np.arange(n_tokens, dtype=np.uint16).tofile(directory / TOKENS_FILE)
    meta = dict(
        n_tokens=n_tokens,
        dtype="uint16",
        corpus="synthetic",
        corpus_fingerprint="0" * 16,
        tokenizer_fingerprint="1" * 16,
        split="train",
        source=None,
        n_documents=1,
        vocab_size=1 << 16,
        eos_id=2,
    )
    (directory / META_FILE).write_text(json.dumps(meta))
    return TokenShard.open(directory)


@pytest.fixture()
def shard(tmp_path: Path) -> TokenShard:
    return make_shard(tmp_path / "shard")


def rows_starts(batch: SequenceBatch) -> list[int]:
    return batch.seqs[:, 0].tolist()


def test_window_starts_pure_and_in_range() -> None:
    idx = np.arange(10_000)
    a = window_starts(7, idx, N_TOKENS, 65)
    assert a.dtype == np.int64 and a.min() >= 0 and a.max() <= N_TOKENS - 65
    assert np.array_equal(a, window_starts(7, idx, N_TOKENS, 65))
    assert np.array_equal(a[1234:1300], window_starts(7, idx[1234:1300], N_TOKENS, 65))
    assert (a != window_starts(8, idx, N_TOKENS, 65)).mean() > 0.99
    assert a.min() < 50 and a.max() > N_TOKENS - 65 - 50  # reaches both ends
    counts = np.bincount(a * 4 // (N_TOKENS - 64), minlength=4)
    assert counts.min() > 2300  # roughly uniform over four quarters (2500 expected each)
    assert np.array_equal(window_starts(0, np.arange(3), 65, 65), [0, 0, 0])


def test_short_shard_is_an_error(tmp_path: Path) -> None:
    small = make_shard(tmp_path / "small", 100)
    msg = "corpus split has 100 tokens, fewer than one sequence of 129"
    with pytest.raises(CocomixError, match=msg):
        window_starts(0, np.arange(2), 100, 129)
    with pytest.raises(CocomixError, match=msg):
        train_pipeline(
            small, seq_len=128, micro_batch_size=2, num_accumulate=1, seed=0, rank=0, world_size=1
        )
    with pytest.raises(CocomixError, match=msg):
        valid_pipeline(small, seq_len=128, batch_size=2, max_batches=0, rank=0, world_size=1)


def test_train_batches_are_windows_of_the_shard(shard: TokenShard) -> None:
    pipe = train_pipeline(
        shard, seq_len=16, micro_batch_size=4, num_accumulate=2, seed=3, rank=0, world_size=1
    )
    batches = list(islice(iter(pipe), 4))
    for u, b in enumerate(batches):
        assert b.seqs.shape == (4, 17) and b.seqs.dtype == torch.int64
        starts = b.seqs[:, :1]
        assert torch.equal(b.seqs, starts + torch.arange(17))
        assert b.example["sample_index"].tolist() == list(range(4 * u, 4 * u + 4))
        assert b.example["start"].tolist() == rows_starts(b)
        inp, tgt = b.as_auto_regressive()
        assert inp.seqs.shape == tgt.seqs.shape == (4, 16)


def step_rows(
    shard: TokenShard, world_size: int, micro: int, accumulate: int, step: int
) -> dict[int, int]:
    """Global sample index -> window start of every row that all ranks take at step ``step``."""
    out: dict[int, int] = {}
    for rank in range(world_size):
        pipe = train_pipeline(
            shard,
            seq_len=8,
            micro_batch_size=micro,
            num_accumulate=accumulate,
            seed=11,
            rank=rank,
            world_size=world_size,
        )
        it = iter(pipe)
        batches = list(islice(it, accumulate * (step + 1)))[accumulate * step :]
        for b in batches:
            for i, s in zip(b.example["sample_index"].tolist(), rows_starts(b), strict=True):
                assert i not in out
                out[i] = s
    return out


@pytest.fixture(scope="module")
def shared_shard(tmp_path_factory: pytest.TempPathFactory) -> TokenShard:
    return make_shard(tmp_path_factory.mktemp("shared") / "shard")


@pytest.mark.parametrize("step", [0, 3])
def test_data_order_does_not_depend_on_world_size(shared_shard: TokenShard, step: int) -> None:
    one = step_rows(shared_shard, world_size=1, micro=4, accumulate=2, step=step)
    two = step_rows(shared_shard, world_size=2, micro=2, accumulate=2, step=step)
    four = step_rows(shared_shard, world_size=4, micro=1, accumulate=2, step=step)
    assert one == two == four
    assert sorted(one) == list(range(8 * step, 8 * step + 8))


def test_resume_from_state_dict(shard: TokenShard) -> None:
    kwargs = dict(seq_len=8, micro_batch_size=3, num_accumulate=2, seed=5, rank=1, world_size=2)
    pipe = train_pipeline(shard, **kwargs)  # type: ignore[arg-type]
    it = iter(pipe)
    list(islice(it, 5))
    state = pipe.state_dict()
    expected = [b.seqs for b in islice(it, 3)]
    fresh = train_pipeline(shard, **kwargs)  # type: ignore[arg-type]
    fresh.load_state_dict(state)
    got = [b.seqs for b in islice(iter(fresh), 3)]
    assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))


def test_reader_gives_num_accumulate_batches_and_resumes(shard: TokenShard) -> None:
    gangs = create_fake_gangs(torch.device("cpu"))

    def make() -> DataPipeline:
        return train_pipeline(
            shard, seq_len=8, micro_batch_size=2, num_accumulate=3, seed=0, rank=0, world_size=1
        )

    reader = make_reader(make(), gangs, num_accumulate=3)
    assert reader.num_accumulate == 3
    first = next(reader)
    assert len(first) == 3 and first[2].example["sample_index"].tolist() == [4, 5]
    state = reader.state_dict()
    nxt = next(reader)
    other = make_reader(make(), gangs, num_accumulate=3)
    other.load_state_dict(state)
    assert all(torch.equal(a.seqs, b.seqs) for a, b in zip(nxt, next(other), strict=True))


def valid_starts(shard: TokenShard, **kw: int) -> list[list[int]]:
    return [rows_starts(b) for b in valid_pipeline(shard, **kw)]  # type: ignore[arg-type]


def test_valid_pipeline_fixed_non_overlapping_windows(shard: TokenShard) -> None:
    # 5000 // 100 = 50 windows of 100 tokens; batches of 8 -> 7 batches, the last with 2.
    batches = valid_starts(shard, seq_len=99, batch_size=8, max_batches=0, rank=0, world_size=1)
    assert [len(b) for b in batches] == [8] * 6 + [2]
    assert sum(batches, []) == [100 * i for i in range(50)]
    assert batches == valid_starts(
        shard, seq_len=99, batch_size=8, max_batches=0, rank=0, world_size=1
    )
    # Two ranks split the batches round-robin and together cover the same windows.
    r0 = valid_starts(shard, seq_len=99, batch_size=8, max_batches=0, rank=0, world_size=2)
    r1 = valid_starts(shard, seq_len=99, batch_size=8, max_batches=0, rank=1, world_size=2)
    assert r0 == batches[0::2] and r1 == batches[1::2]
    # max_batches caps each rank's share: the first 2 * 8 * 2 windows.
    c0 = valid_starts(shard, seq_len=99, batch_size=8, max_batches=2, rank=0, world_size=2)
    c1 = valid_starts(shard, seq_len=99, batch_size=8, max_batches=2, rank=1, world_size=2)
    assert sorted(sum(c0 + c1, [])) == [100 * i for i in range(32)]
    pipe = valid_pipeline(shard, seq_len=99, batch_size=8, max_batches=0, rank=0, world_size=1)
    b = next(iter(pipe))
    assert torch.equal(b.seqs, b.seqs[:, :1] + torch.arange(100))


def test_valid_reader_until_last(shard: TokenShard) -> None:
    gangs = create_fake_gangs(torch.device("cpu"))
    pipe = valid_pipeline(shard, seq_len=99, batch_size=8, max_batches=0, rank=0, world_size=1)
    reader = make_reader(pipe, gangs, num_accumulate=1, sync_mode=SyncMode.UNTIL_LAST)
    assert sum(len(batches) for batches in reader) == 7
    reader.reset()
    assert len(list(reader)) == 7


def test_bad_layout_is_an_error(shard: TokenShard) -> None:
    with pytest.raises(CocomixError, match="micro_batch_size is 0"):
        train_pipeline(
            shard, seq_len=8, micro_batch_size=0, num_accumulate=1, seed=0, rank=0, world_size=1
        )
    with pytest.raises(CocomixError, match="rank 2 is outside a world of 2"):
        train_pipeline(
            shard, seq_len=8, micro_batch_size=1, num_accumulate=1, seed=0, rank=2, world_size=2
        )
