"""Teacher and SAE artifacts: built once when a recipe needs them, then reused.

A concept recipe names a teacher (`teacher.source`: a producing recipe, a run folder, or local
GPT-2 weights) and an SAE (`sae.source`: trained here on the teacher's residual stream, or an
OpenAI-format file). Produced artifacts live under the artifact folder keyed by the hash of
everything they depend on, and are written under a temporary name first, so a later recipe with
the same teacher reuses them and a half-written one is never read.
"""

from __future__ import annotations

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
from cocomix.registry import CocomixError
from cocomix.runtime.artifacts import DataArtifacts
from cocomix.runtime.checkpoint import checkpoint_steps, load_trained_lm
from cocomix.runtime.compose import ComposedRecipe, compose_recipe
from cocomix.runtime.rundir import read_artifacts
from cocomix.runtime.schema import RESUME_NEUTRAL_KEYS
from cocomix.runtime.teacher import (
    CocoLMTeacher,
    HFGPT2Teacher,
    check_gpt2_student,
    check_teacher_vocab,
    teacher_vocab_size,
)
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
) -> tuple[TeacherLM, str, str]:
    """The frozen teacher, a string that identifies it (for cache keys) and where it lives.
    ``reads_layer=False`` (knowledge distillation reads only logits) skips the check that
    ``teacher.layer`` exists in the teacher."""
    spec = composed.cfg.teacher
    location = str(spec.path)
    if spec.source == "recipe":
        run_dir, identity = _trained_teacher(composed, cache_dir)
        location = str(run_dir)
        _check_same_tokenizer(run_dir, data)
        teacher: TeacherLM = CocoLMTeacher(load_trained_lm(run_dir))
    elif spec.source == "checkpoint":
        teacher = CocoLMTeacher(load_trained_lm(Path(spec.path)))
        _check_same_tokenizer(Path(spec.path), data)
        identity = cache_key("checkpoint", str(Path(spec.path).resolve()), checkpoint_steps(Path(spec.path)))
    elif spec.source == "hf_gpt2":
        hf_teacher = HFGPT2Teacher(spec.path)
        check_gpt2_student(hf_teacher, data.tokenizer, int(composed.cfg.train.seq_len))
        teacher = hf_teacher
        identity = cache_key("hf_gpt2", str(Path(spec.path).resolve()))
    else:
        raise CocomixError(f"teacher.source={spec.source!r}; choose recipe, checkpoint or hf_gpt2")
    check_teacher_vocab(teacher_vocab_size(teacher), data.tokenizer.vocab_size)  # type: ignore[arg-type]
    if reads_layer and not 0 <= int(spec.layer) < teacher.num_layers:
        raise CocomixError(
            f"teacher.layer={spec.layer} is outside the teacher ({teacher.num_layers} blocks): "
            f"choose 0..{teacher.num_layers - 1}"
        )
    return teacher, identity, location


def _check_same_tokenizer(teacher_run: Path, data: DataArtifacts) -> None:
    """Equal vocabulary sizes are not enough: the ids must mean the same pieces."""
    from cocomix.data.tokenizer_loading import load_tokenizer

    path = read_artifacts(teacher_run).get("tokenizer")
    if not path:
        return
    if load_tokenizer(path).fingerprint() != data.tokenizer.fingerprint():
        raise CocomixError(
            f"the teacher ({teacher_run}) was trained with another tokenizer ({path}) than this "
            f"run's ({data.tokenizer.path}); teacher and student must share one: set "
            f"tokenizer.model_file={path}, or tokenizer.train_corpus to the teacher's corpus"
        )


@dataclass(frozen=True)
class TeacherRun:
    """A teacher a run trains on demand (``teacher.source=recipe``): a run of its own, keyed by
    what makes it what it is, kept in the artifact cache. The experiment layer plans it as a
    node and trains it before the runs that need it."""

    name: str
    """The teacher's recipe, e.g. ``pretrain/teacher``."""
    recipe: ComposedRecipe
    run_dir: Path
    identity: str
    steps: int

    def trained(self) -> bool:
        steps = checkpoint_steps(self.run_dir)
        return bool(steps) and steps[-1] >= self.steps


def teacher_run(composed: ComposedRecipe, cache_dir: Path) -> TeacherRun:
    """The teacher run ``composed``'s ``teacher.recipe`` (with its overrides) asks for."""
    spec = composed.cfg.teacher
    overrides = [f"preset={composed.preset}", *spec.overrides]
    recipe = compose_recipe(str(spec.recipe), overrides)
    # What makes the teacher what it is: its resolved config without the keys that never change
    # a run (so adding such a key to the schema does not retrain every cached teacher).
    resolved = recipe.resolved()
    identity = cache_key({k: v for k, v in resolved.items() if k not in (*RESUME_NEUTRAL_KEYS, "description")})
    run_dir = cache_dir / "teachers" / f"{str(spec.recipe).replace('/', '-')}-{identity}"
    return TeacherRun(str(spec.recipe), recipe, run_dir, identity, int(recipe.cfg.steps))


def _trained_teacher(composed: ComposedRecipe, cache_dir: Path) -> tuple[Path, str]:
    node = teacher_run(composed, cache_dir)
    if not node.trained():
        raise CocomixError(
            f"the teacher {node.name} is not trained yet ({node.run_dir}); run the recipe with "
            f"`python -m recipes.run`, which trains the teachers of its plan first"
        )
    return node.run_dir, node.identity


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


def ensure_sae(composed: ComposedRecipe, cache_dir: Path, teacher: TeacherLM,
               teacher_id: str, data: DataArtifacts) -> tuple[TopKSAE, str, dict[str, Any], Path]:
    spec = composed.cfg.sae
    layer = int(composed.cfg.teacher.layer)
    if spec.source == "file":
        sae = load_openai_sae(Path(spec.path), expected_d_model=teacher.model_dim)
        _check_declared_sae(sae, spec)
        return _frozen(sae), cache_key("file", str(Path(spec.path).resolve())), {}, Path(spec.path)
    if spec.source != "train":
        raise CocomixError(f"sae.source={spec.source!r}; choose train or file")
    options = {k: spec[k] for k in ("n_latents", "k", "steps", "lr", "batch_tokens", "seq_len", "seed")}
    identity = cache_key(teacher_id, layer, options, data.train.meta.corpus_fingerprint)
    folder = cache_dir / "saes" / f"sae-{identity}"
    if not (folder / "sae.pt").is_file():
        sae, report = train_sae_on_teacher(teacher, layer, data.train, data.valid, spec)
        with atomic_dir(folder) as tmp:
            torch.save(openai_state_dict(sae), tmp / "sae.pt")
            (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    sae = load_openai_sae(folder / "sae.pt", expected_d_model=teacher.model_dim)
    report = json.loads((folder / "report.json").read_text())
    print(f"sae: {folder} (variance explained {report['valid']['fve']:.3f})")
    return _frozen(sae), identity, report, folder / "sae.pt"


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
    teacher, teacher_id, teacher_at = ensure_teacher(composed, cache_dir, data)
    layer = int(composed.cfg.teacher.layer)
    locations = {"teacher": teacher_at}
    if not with_sae:
        return ConceptArtifacts(teacher, None, layer, cache_key(teacher_id, layer), locations)
    sae, sae_id, _, sae_at = ensure_sae(composed, cache_dir, teacher, teacher_id, data)
    locations["sae"] = str(sae_at)
    return ConceptArtifacts(teacher, sae, layer, cache_key(teacher_id, sae_id, layer), locations)
