"""`cached` concept source: another source's labels, computed once per training window and stored.

The official code runs the teacher forward and backward on every step (brief §6.2), which costs
more than the student at small sizes. Training windows are a pure function of (seed, global
sample index) (`cocomix.data.pipeline`), so a window's labels can be stored under its index and
reused by every later run that sees the same window: the other arms of an ablation, reruns,
resumed runs. Labels are written per micro-batch chunk (B consecutive sample indices, the unit
training reads), computed by the wrapped online source on exactly the batch it would have seen,
so cached labels equal online labels bit for bit.

The cache folder is keyed by the hash of everything the labels depend on (teacher, SAE, layer,
source and its options, tokenizer, data, sequence length, seed, micro-batch size); a folder whose
recorded key differs is refused, never silently reused.

``labels=mismatched`` is the falsifying control for SAE concepts: each window gets the cached
labels of the next window in its micro-batch (the last gets the first's). The labels keep their
marginal frequencies, their within-window structure and the cache (no extra teacher work), but
say nothing about the tokens they are paired with; a gain that survives this is not a concept
gain (head and mixer parameters, an auxiliary loss, regularisation).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cocomix.concepts.sources import ConceptBatch, ConceptSource, SourceContext
from cocomix.contracts import ConceptSourceContract
from cocomix.cache_files import atomic_write_text, cache_key
from cocomix.registry import CONCEPT_SOURCES, CocomixError


@dataclass
class CachedConfig:
    source: str = "attribution"
    """The online source whose labels are cached (`attribution` or `activation`)."""
    k_attr: int = 4
    variant: str = "code"
    """Attribution variant (ignored by `activation`)."""
    path: str = ""
    """An explicit cache folder; empty: one under the artifact folder, named by the key."""
    labels: str = "true"
    """``true``: each window's own labels. ``mismatched``: the labels of the next window in the
    micro-batch (the control; the cache and its key are the same)."""


LABEL_MODES = ("true", "mismatched")


@dataclass
class CacheContext(SourceContext):
    """What the runtime adds for caching: where, and the identity of the data and windows."""

    cache_dir: Path | None = None
    key_parts: dict[str, Any] = field(default_factory=dict)
    micro_batch_size: int = 0


@CONCEPT_SOURCES.register("cached", CachedConfig)
class CachedLabels(ConceptSource):
    # Teacher and SAE as the cached source; each label costs that source's teacher work once.
    contract = ConceptSourceContract(counted_as=lambda config: str(config.source))

    def __init__(self, config: CachedConfig, context: SourceContext) -> None:
        if not isinstance(context, CacheContext) or context.micro_batch_size <= 0:
            raise CocomixError("concepts=cached needs the runtime's cache context (run it via a recipe)")
        if config.source not in ("attribution", "activation"):
            raise CocomixError(f"concepts.source={config.source!r}; cache attribution or activation")
        mode = str(config.labels).lower()  # a bare `true` on the command line arrives as "True"
        if mode not in LABEL_MODES:
            raise CocomixError(
                f"concepts.labels={config.labels!r}; choose one of {', '.join(LABEL_MODES)}"
            )
        self.mismatched = mode == "mismatched"
        if self.mismatched and context.micro_batch_size < 2:
            raise CocomixError(
                "concepts.labels=mismatched pairs each window with another window's labels in its "
                "micro-batch; set train.micro_batch_size >= 2"
            )
        entry = CONCEPT_SOURCES.get(config.source)
        options: Any = entry.config_cls(k_attr=config.k_attr)
        if config.source == "attribution":
            options.variant = config.variant
        self.online: ConceptSource = entry.factory(options, context)
        self.num_concepts = self.online.num_concepts
        self.batch = context.micro_batch_size
        parts = {**context.key_parts, "source": config.source, "options": vars(options),
                 "layer": context.layer, "micro_batch_size": self.batch}
        self.key = cache_key(parts)
        base = context.cache_dir or Path(".")
        self.folder = Path(config.path) if config.path else base / "labels" / f"labels-{self.key}"
        self._open(parts)
        self.hits = 0
        self.misses = 0

    def _open(self, parts: dict[str, Any]) -> None:
        meta_file = self.folder / "meta.json"
        if meta_file.exists():
            meta = json.loads(meta_file.read_text())
            if meta.get("key") != self.key:
                raise CocomixError(
                    f"stale concept cache {self.folder}: built for key {meta.get('key')} but this "
                    f"run needs {self.key}; delete the folder or drop concepts.path"
                )
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = json.dumps({"key": self.key, "parts": parts}, indent=2, default=str)
        atomic_write_text(meta_file, meta)

    def _chunk(self, sample_index: Tensor) -> Path:
        first = int(sample_index[0])
        expected = torch.arange(first, first + len(sample_index))
        if first % self.batch or len(sample_index) != self.batch or not torch.equal(
            sample_index.cpu().long(), expected
        ):
            raise CocomixError(
                "concepts=cached reads whole micro-batches of consecutive samples; this batch is "
                "not one (was train.micro_batch_size changed?)"
            )
        return self.folder / f"chunk-{first // self.batch:08d}.npy"

    def targets(self, tokens: Tensor, *, sample_index: Tensor | None = None) -> ConceptBatch:
        batch = self._own_labels(tokens, sample_index)
        if self.mismatched:
            assert batch.labels is not None
            batch = ConceptBatch(labels=batch.labels.roll(-1, dims=0))
        return batch

    def _own_labels(self, tokens: Tensor, sample_index: Tensor | None) -> ConceptBatch:
        if sample_index is None:
            raise CocomixError("concepts=cached needs each window's sample index from the data pipeline")
        path = self._chunk(sample_index)
        if path.exists():
            self.hits += 1
            try:
                labels = torch.from_numpy(np.load(path).astype(np.int64))
            except (OSError, ValueError) as err:
                raise CocomixError(f"corrupt concept-cache chunk {path} ({err}); delete it") from None
            if labels.shape[:2] != tokens.shape:
                raise CocomixError(f"concept-cache chunk {path} has shape {tuple(labels.shape)}; delete it")
            return ConceptBatch(labels=labels.to(tokens.device))
        self.misses += 1
        labels = self.online.targets(tokens).labels
        assert labels is not None
        dtype = np.uint16 if self.num_concepts <= np.iinfo(np.uint16).max + 1 else np.int32
        tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.npy")
        np.save(tmp, labels.cpu().numpy().astype(dtype))
        tmp.replace(path)  # atomic: a killed run never leaves a half-written chunk behind
        return ConceptBatch(labels=labels)
