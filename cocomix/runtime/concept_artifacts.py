"""Teacher and SAE artifacts: built once when a recipe needs them, then reused.

A concept recipe names a teacher (`teacher.source`, a registry: `cocomix.runtime.teacher_sources`)
and an SAE (`sae.source`, a registry here: trained on the teacher's residual stream, an
OpenAI-format file, or any SAE the ``sae-lens`` package loads). Produced artifacts live under the artifact folder keyed by the hash of
everything they depend on, and are written under a temporary name first, so a later recipe with
the same teacher reuses them and a half-written one is never read.
"""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from cocomix.concepts.sae import TopKSAE, load_openai_sae, openai_state_dict
from cocomix.concepts.sae_training import SAETrainConfig, evaluate_sae, train_sae
from cocomix.cache_files import atomic_dir, cache_key, file_fingerprint
from cocomix.concepts.dictionary import ConceptDictionary
from cocomix.data.pipeline import window_starts
from cocomix.data.shards import TokenShard
from cocomix.registry import CocomixError, Registry
from cocomix.runtime.artifacts import DataArtifacts
from cocomix.runtime.compose import ComposedRecipe
from cocomix.runtime.teacher import check_teacher_layer, check_teacher_vocab
from cocomix.runtime.teacher_sources import TEACHER_SOURCES, LoadedTeacher
from cocomix.types import TeacherLM


@dataclass
class ConceptArtifacts:
    teacher: TeacherLM
    sae: ConceptDictionary | None
    """None for sources that read teacher states directly (`teacher_hidden`)."""
    layer: int
    identity: str
    """Hash of teacher + SAE + layer: part of every concept-label cache key."""
    locations: dict[str, str]
    """Where the teacher and SAE were read from (recorded in the run's `artifacts.json`)."""
    sources: dict[str, Any] = field(default_factory=dict)
    """How to read them back (``teacher.source``, ``sae.source``, ``sae.k``; also recorded)."""


def ensure_teacher(
    composed: ComposedRecipe, cache_dir: Path, data: DataArtifacts, *, reads_layer: bool = True
) -> LoadedTeacher:
    """The frozen teacher ``teacher.source`` names (``cocomix.runtime.teacher_sources``).
    ``reads_layer=False`` (knowledge distillation reads only logits) skips the check that
    ``teacher.layer`` exists in the teacher."""
    spec = composed.cfg.teacher
    loaded = TEACHER_SOURCES.build(str(spec.source)).load(composed, cache_dir, data)
    teacher = loaded.teacher
    check_teacher_vocab(int(teacher.vocab_size), data.tokenizer.vocab_size)
    if reads_layer:
        check_teacher_layer(int(spec.layer), teacher.num_layers)
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
    sae: ConceptDictionary
    identity: str
    """Identifies the SAE's weights: part of the label cache's key."""
    path: Path | str
    """Its file or folder, or ``release/id`` for an SAE from SAELens's registry."""
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

    def plan(self, composed: ComposedRecipe, teacher_width: int | None) -> str:
        """Check what can be checked without reading weights (``--dry-run`` and the preflight)
        and say where the SAE comes from, for ``--dry-run``."""
        return f"read from {composed.cfg.sae.path}"


SAE_SOURCES: Registry[SAESource] = Registry("sae_sources", key="sae.source")


@SAE_SOURCES.register("train")
class TrainedSAE(SAESource):
    """Trained once on the teacher's residual stream, cached under a key of everything it
    depends on (paper §2.1 uses OpenAI's pretrained SAE; at CPU scale we train our own)."""

    trained_here = True

    def plan(self, composed: ComposedRecipe, teacher_width: int | None) -> str:
        sae = composed.cfg.sae
        return f"trained once, {sae.n_latents} latents, k={sae.k}, {sae.steps} steps"

    def load(self, composed: ComposedRecipe, cache_dir: Path, teacher: LoadedTeacher,
             data: DataArtifacts) -> LoadedSAE:
        spec = composed.cfg.sae
        layer = int(composed.cfg.teacher.layer)
        options = {k: spec[k] for k in ("n_latents", "k", "steps", "lr", "batch_tokens", "seq_len", "seed")}
        # Built in this run's process: its bits follow the run's thread count (`threads`).
        identity = cache_key(teacher.identity, layer, options, data.train.meta.corpus_fingerprint,
                             {"threads": int(composed.cfg.threads)})
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


@SAE_SOURCES.register("saelens")
class SAELensSource(SAESource):
    """An SAE that the ``sae-lens`` package loads: the folder ``sae.path`` as SAELens saves it, or
    ``sae.release`` + ``sae.id`` from SAELens's registry (``runtime/saelens.py``)."""

    def load(self, composed: ComposedRecipe, cache_dir: Path, teacher: LoadedTeacher,
             data: DataArtifacts) -> LoadedSAE:
        from cocomix.runtime import saelens

        spec = composed.cfg.sae
        where = self._where(composed)
        self.plan(composed, teacher.teacher.model_dim)
        if spec.path:
            folder = Path(str(spec.path))
            sae = saelens.load_folder(folder, int(spec.k))
            identity = cache_key("saelens", file_fingerprint(folder / saelens.CFG_FILE),
                                 file_fingerprint(folder / saelens.WEIGHTS_FILE), int(spec.k))
        else:
            sae = saelens.load_registry(str(spec.release), str(spec.id), int(spec.k))
            identity = cache_key("saelens", str(spec.release), str(spec.id), int(spec.k))
        # What the weights say, checked again after loading (a registry SAE's cfg is known only now).
        saelens.check_shape(saelens.shape_of(sae.sae.cfg.to_dict(), where), where,
                            layer=int(composed.cfg.teacher.layer), teacher_width=teacher.teacher.model_dim,
                            n_latents=int(spec.n_latents), k=int(spec.k))
        print(f"sae: {where} (SAELens {sae.sae.cfg.architecture()}, {sae.n_latents} latents, k={sae.k})")
        return LoadedSAE(sae, identity, str(spec.path) or f"{spec.release}/{spec.id}", {})

    def plan(self, composed: ComposedRecipe, teacher_width: int | None) -> str:
        from cocomix.runtime import saelens
        from cocomix.runtime.hub import hub_unreachable

        spec = composed.cfg.sae
        where = self._where(composed)
        layer, n_latents, k = int(composed.cfg.teacher.layer), int(spec.n_latents), int(spec.k)
        if spec.path and (spec.release or spec.id):
            raise CocomixError(f"sae.path={spec.path} and sae.release={spec.release} sae.id={spec.id} both name "
                               f"an SAE; keep one (sae.release='' sae.id='' to read the folder)")
        if spec.path:
            folder = Path(str(spec.path))
            if not (folder / saelens.CFG_FILE).is_file() or not (folder / saelens.WEIGHTS_FILE).is_file():
                raise CocomixError(f"sae.path={folder} is not an SAE folder as SAELens writes it "
                                   f"({saelens.CFG_FILE} + {saelens.WEIGHTS_FILE}); fix sae.path")
            shape = saelens.read_cfg(folder)
            saelens.check_shape(shape, where, layer=layer, teacher_width=teacher_width, n_latents=n_latents, k=k)
            return (f"SAELens {shape.architecture} SAE read from {folder} ({shape.d_sae} latents, "
                    f"{shape.hook_name or 'hook not recorded'})")
        if not spec.release or not spec.id:
            raise CocomixError("sae.source=saelens needs sae.path=DIR (an SAE folder SAELens wrote) or "
                               "sae.release=... with sae.id=... (SAELens's registry)")
        repo = saelens.check_registry_name(str(spec.release), str(spec.id))
        reason = hub_unreachable()
        if reason is not None:
            raise CocomixError(f"sae.release={spec.release} sae.id={spec.id} is fetched from the Hugging Face "
                               f"hub ({repo}), which cannot be reached ({reason}); save it where the hub is "
                               f"reachable (SAE.from_pretrained(...).save_model(DIR)) and set sae.path=DIR")
        return f"SAELens {spec.release}/{spec.id} from the hub ({repo})"

    @staticmethod
    def _where(composed: ComposedRecipe) -> str:
        spec = composed.cfg.sae
        return f"SAE {spec.path}" if spec.path else f"SAE {spec.release}/{spec.id}"


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
    sources: dict[str, Any] = {"teacher_source": str(composed.cfg.teacher.source)}
    if not with_sae:
        return ConceptArtifacts(teacher.teacher, None, layer, cache_key(teacher.identity, layer), locations,
                                sources)
    sae = ensure_sae(composed, cache_dir, teacher, data)
    locations["sae"] = str(sae.path)
    sources.update(sae_source=str(composed.cfg.sae.source), sae_k=int(composed.cfg.sae.k))
    return ConceptArtifacts(teacher.teacher, sae.sae, layer, cache_key(teacher.identity, sae.identity, layer),
                            locations, sources)
