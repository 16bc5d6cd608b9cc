"""Teacher and SAE artifacts: built once when a recipe needs them, then reused.

A concept recipe names a teacher (`teacher.source`, a registry: `cocomix.runtime.teacher_sources`)
and an SAE (`sae.source`, a registry here: trained on the teacher's residual stream, or an
OpenAI-format file). Produced artifacts live under the artifact folder keyed by the hash of
everything they depend on, and are written under a temporary name first, so a later recipe with
the same teacher reuses them and a half-written one is never read.
"""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from cocomix.concepts.sae import TopKSAE, load_openai_sae, openai_state_dict
from cocomix.concepts.sae_training import SAETrainConfig, evaluate_sae, train_sae
from cocomix.cache_files import atomic_dir, cache_key
from cocomix.data.pipeline import window_starts
from cocomix.data.shards import TokenShard
from cocomix.registry import CocomixError, Registry
from cocomix.runtime.artifacts import DataArtifacts
from cocomix.runtime.compose import ComposedRecipe
from cocomix.runtime.teacher import check_teacher_vocab, teacher_vocab_size
from cocomix.runtime.teacher_sources import TEACHER_SOURCES, LoadedTeacher
from cocomix.types import TeacherLM


@dataclass
class ConceptArtifacts:
    teacher: TeacherLM
    sae: TopKSAE | None
    """None for sources that read teacher states directly (`teacher_hidden`)."""
    layer: int
    identity: str
    """Hash of teacher + SAE + layer: part of every concept-label cache key."""
    locations: dict[str, str]
    """Where the teacher and SAE were read from (recorded in the run's `artifacts.json`)."""


def ensure_teacher(
    composed: ComposedRecipe, cache_dir: Path, data: DataArtifacts, *, reads_layer: bool = True
) -> LoadedTeacher:
    """The frozen teacher ``teacher.source`` names (``cocomix.runtime.teacher_sources``).
    ``reads_layer=False`` (knowledge distillation reads only logits) skips the check that
    ``teacher.layer`` exists in the teacher."""
    spec = composed.cfg.teacher
    loaded = TEACHER_SOURCES.build(str(spec.source)).load(composed, cache_dir, data)
    teacher = loaded.teacher
    check_teacher_vocab(teacher_vocab_size(teacher), data.tokenizer.vocab_size)  # type: ignore[arg-type]
    if reads_layer and not 0 <= int(spec.layer) < teacher.num_layers:
        raise CocomixError(
            f"teacher.layer={spec.layer} is outside the teacher ({teacher.num_layers} blocks): "
            f"choose 0..{teacher.num_layers - 1}"
        )
    return loaded


def collect_activations(teacher: TeacherLM, layer: int, shard: TokenShard, *, tokens: int,
                        seq_len: int, seed: int, batch_windows: int = 32) -> Tensor:
    """(tokens, d) teacher residuals at `layer` on windows sampled from the train shard."""
    windows = max(1, tokens // seq_len)
    starts = window_starts(seed, np.arange(windows), shard.n_tokens, seq_len)
    out = []
    with torch.no_grad():
        for i in tqdm(range(0, windows, batch_windows), desc="teacher activations", disable=None):
            rows = [shard.tokens[s : s + seq_len] for s in starts[i : i + batch_windows]]
            ids = torch.from_numpy(np.stack(rows).astype(np.int64))
            out.append(teacher.hidden_at(ids, layer).flatten(0, 1))
    return torch.cat(out)


@dataclass(frozen=True)
class LoadedSAE:
    sae: TopKSAE
    identity: str
    """Identifies the SAE's weights: part of the label cache's key."""
    path: Path
    report: dict[str, Any]
    """Its quality report (normalised MSE, variance explained) when this project trained it."""


class SAESource(abc.ABC):
    """Loads the SAE ``sae:`` names; registered factories take no options (the schema's
    ``sae.*`` fields say which)."""

    trained_here: bool = False
    """The run trains the SAE itself, so ``sae.n_latents`` and ``sae.k`` are checked before
    anything is built (a file's are checked when it is read)."""

    def __init__(self, config: Any = None) -> None:
        del config

    @abc.abstractmethod
    def load(self, composed: ComposedRecipe, cache_dir: Path, teacher: LoadedTeacher,
             data: DataArtifacts) -> LoadedSAE:
        """The frozen SAE on ``teacher``'s residual stream at ``teacher.layer``."""


SAE_SOURCES: Registry[SAESource] = Registry("sae_sources", key="sae.source")


@SAE_SOURCES.register("train")
class TrainedSAE(SAESource):
    """Trained once on the teacher's residual stream, cached under a key of everything it
    depends on (paper §2.1 uses OpenAI's pretrained SAE; at CPU scale we train our own)."""

    trained_here = True

    def load(self, composed: ComposedRecipe, cache_dir: Path, teacher: LoadedTeacher,
             data: DataArtifacts) -> LoadedSAE:
        spec = composed.cfg.sae
        layer = int(composed.cfg.teacher.layer)
        options = {k: spec[k] for k in ("n_latents", "k", "steps", "lr", "batch_tokens", "seq_len", "seed")}
        identity = cache_key(teacher.identity, layer, options, data.train.meta.corpus_fingerprint)
        folder = cache_dir / "saes" / f"sae-{identity}"
        if not (folder / "sae.pt").is_file():
            sae, report = train_sae_on_teacher(teacher.teacher, layer, data.train, data.valid, spec)
            with atomic_dir(folder) as tmp:
                torch.save(openai_state_dict(sae), tmp / "sae.pt")
                (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        sae = load_openai_sae(folder / "sae.pt", expected_d_model=teacher.teacher.model_dim)
        report = json.loads((folder / "report.json").read_text())
        print(f"sae: {folder} (variance explained {report['valid']['fve']:.3f})")
        return LoadedSAE(_frozen(sae), identity, folder / "sae.pt", report)


@SAE_SOURCES.register("file")
class SAEFile(SAESource):
    """An OpenAI-format state dict at ``sae.path`` (the paper's SAE, converted or as released)."""

    def load(self, composed: ComposedRecipe, cache_dir: Path, teacher: LoadedTeacher,
             data: DataArtifacts) -> LoadedSAE:
        spec = composed.cfg.sae
        sae = load_openai_sae(Path(spec.path), expected_d_model=teacher.teacher.model_dim)
        _check_declared_sae(sae, spec)
        identity = cache_key("file", str(Path(spec.path).resolve()))
        return LoadedSAE(_frozen(sae), identity, Path(spec.path), {})


def ensure_sae(composed: ComposedRecipe, cache_dir: Path, teacher: LoadedTeacher,
               data: DataArtifacts) -> LoadedSAE:
    """The SAE ``sae.source`` names."""
    return SAE_SOURCES.build(str(composed.cfg.sae.source)).load(composed, cache_dir, teacher, data)


def _check_declared_sae(sae: TopKSAE, spec: Any) -> None:
    """`sae.n_latents` and `sae.k` say what the file holds: they size the student's concept head
    in --dry-run (paper: 32768 latents, k = 32) before the file is read."""
    if (sae.n_latents, sae.k) != (int(spec.n_latents), int(spec.k)):
        raise CocomixError(
            f"SAE file {spec.path} has {sae.n_latents} latents and k={sae.k}, but the recipe "
            f"declares sae.n_latents={spec.n_latents} sae.k={spec.k}; set "
            f"sae.n_latents={sae.n_latents} sae.k={sae.k} or use the intended SAE file"
        )


def train_sae_on_teacher(teacher: TeacherLM, layer: int, train: TokenShard, valid: TokenShard,
                         spec: Any) -> tuple[TopKSAE, dict[str, Any]]:
    """Train a TopK SAE on the teacher's residual stream; report nMSE and variance explained."""
    torch.manual_seed(int(spec.seed))
    config = SAETrainConfig(
        n_latents=int(spec.n_latents), k=int(spec.k), lr=float(spec.lr), steps=int(spec.steps),
        batch_tokens=int(spec.batch_tokens), seed=int(spec.seed),
    )
    budget = min(train.n_tokens, max(config.batch_tokens * 64, 262_144))
    acts = collect_activations(teacher, layer, train, tokens=budget, seq_len=int(spec.seq_len), seed=int(spec.seed))
    generator = torch.Generator().manual_seed(int(spec.seed))

    def batches(_step: int) -> Tensor:
        index = torch.randint(0, acts.size(0), (config.batch_tokens,), generator=generator)
        return acts[index]

    sae, stats = train_sae(batches, config, d_model=teacher.model_dim)
    held_out = collect_activations(teacher, layer, valid, tokens=32_768, seq_len=int(spec.seq_len), seed=1)
    report = {
        "train": evaluate_sae(sae, [acts[:32_768]]),
        "valid": evaluate_sae(sae, [held_out]),
        "tokens": int(acts.size(0)),
        "layer": layer,
        "options": {"n_latents": config.n_latents, "k": config.k, "steps": config.steps},
        # The SAE's bits depend on the intra-op thread count it was trained with, and every run
        # that shares this cached SAE inherits them (docs/reliability.md, "Determinism").
        "torch_threads": torch.get_num_threads(),
    }
    return sae, report


def _frozen(sae: TopKSAE) -> TopKSAE:
    sae.eval()
    sae.requires_grad_(False)
    return sae


def ensure_concepts(
    composed: ComposedRecipe, cache_dir: Path, data: DataArtifacts, *, with_sae: bool = True
) -> ConceptArtifacts:
    teacher = ensure_teacher(composed, cache_dir, data)
    layer = int(composed.cfg.teacher.layer)
    locations = {"teacher": teacher.location}
    if not with_sae:
        return ConceptArtifacts(teacher.teacher, None, layer, cache_key(teacher.identity, layer), locations)
    sae = ensure_sae(composed, cache_dir, teacher, data)
    locations["sae"] = str(sae.path)
    return ConceptArtifacts(teacher.teacher, sae.sae, layer, cache_key(teacher.identity, sae.identity, layer),
                            locations)
