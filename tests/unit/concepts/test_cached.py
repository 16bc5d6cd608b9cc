"""The cached source stores another source's labels per micro-batch and gives them back exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cocomix.concepts.cached import CacheContext, CachedConfig, CachedLabels
from cocomix.concepts.sae import TopKSAE
from cocomix.concepts.sources import AttributionConfig
from cocomix.registry import CONCEPT_SOURCES, CocomixError

from test_sources import D, K, N, VOCAB, TinyTeacher  # the shared fake teacher

B, T = 2, 10


def context(tmp_path: Path, **key: object) -> CacheContext:
    sae = TopKSAE(D, N, K, generator=torch.Generator().manual_seed(0))
    parts = {"data": "x", "seed": 0, **key}
    return CacheContext(teacher=TinyTeacher(), sae=sae, layer=1, cache_dir=tmp_path,
                        key_parts=parts, micro_batch_size=B)


def batch(first: int) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.randint(0, VOCAB, (B, T), generator=torch.Generator().manual_seed(first))
    return tokens, torch.arange(first, first + B)


def test_cached_labels_equal_online_labels_and_are_reused(tmp_path: Path) -> None:
    online = CONCEPT_SOURCES.build("attribution", AttributionConfig(k_attr=3), context(tmp_path))
    cached = CachedLabels(CachedConfig(k_attr=3), context(tmp_path))
    tokens, index = batch(4)
    first = cached.targets(tokens, sample_index=index).labels
    assert (cached.hits, cached.misses) == (0, 1)
    again = CachedLabels(CachedConfig(k_attr=3), context(tmp_path))  # a later run
    second = again.targets(tokens, sample_index=index).labels
    assert (again.hits, again.misses) == (1, 0)
    expected = online.targets(tokens).labels
    assert torch.equal(first, expected) and torch.equal(second, expected)
    assert len(list(again.folder.glob("chunk-*.npy"))) == 1


def test_other_settings_get_another_folder_and_a_stale_path_is_refused(tmp_path: Path) -> None:
    a = CachedLabels(CachedConfig(k_attr=3), context(tmp_path))
    b = CachedLabels(CachedConfig(k_attr=3), context(tmp_path, seed=1))
    assert a.folder != b.folder
    with pytest.raises(CocomixError, match="stale concept cache"):
        CachedLabels(CachedConfig(k_attr=3, path=str(a.folder)), context(tmp_path, seed=1))
    meta = json.loads((a.folder / "meta.json").read_text())
    assert meta["key"] == a.key


def test_batches_must_be_whole_micro_batches(tmp_path: Path) -> None:
    cached = CachedLabels(CachedConfig(k_attr=3), context(tmp_path))
    tokens, _ = batch(0)
    with pytest.raises(CocomixError, match="whole micro-batches"):
        cached.targets(tokens, sample_index=torch.tensor([1, 2]))
    with pytest.raises(CocomixError, match="sample index"):
        cached.targets(tokens)


def test_mismatched_labels_are_the_next_windows_cached_labels(tmp_path: Path) -> None:
    true = CachedLabels(CachedConfig(k_attr=3), context(tmp_path))
    control = CachedLabels(CachedConfig(k_attr=3, labels="mismatched"), context(tmp_path))
    assert control.folder == true.folder  # the same cache: the control costs no teacher work
    tokens, index = batch(4)
    own = true.targets(tokens, sample_index=index).labels
    shifted = control.targets(tokens, sample_index=index).labels
    assert (control.hits, control.misses) == (1, 0)
    assert torch.equal(shifted[0], own[1]) and torch.equal(shifted[-1], own[0])
    assert not torch.equal(shifted, own)


def test_mismatched_labels_need_two_windows_and_modes_are_checked(tmp_path: Path) -> None:
    single = context(tmp_path)
    single.micro_batch_size = 1
    with pytest.raises(CocomixError, match="train.micro_batch_size >= 2"):
        CachedLabels(CachedConfig(labels="mismatched"), single)
    with pytest.raises(CocomixError, match="concepts.labels='shuffled'; choose one of true, mismatched"):
        CachedLabels(CachedConfig(labels="shuffled"), context(tmp_path))
    assert not CachedLabels(CachedConfig(labels="True"), context(tmp_path)).mismatched  # `labels=true`
