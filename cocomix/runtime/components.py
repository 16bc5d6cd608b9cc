"""Decide what concept machinery a run needs and build it (teacher, SAE, concept source).

Three questions, answered from the registries rather than by string checks on names:
- does the model need a concept head? (the objective asks for one, or the mixer reads concepts)
- how many concepts? (the SAE's latents when concepts come from one, else `model.num_concepts`)
- which concept source feeds the objective? (`concepts=` registry; `none` builds nothing)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cocomix.registry import CONCEPT_SOURCES, MIXERS, OBJECTIVES, CocomixError
from cocomix.runtime.artifacts import DataArtifacts
from cocomix.runtime.compose import ComposedRecipe

NO_CONCEPTS = "none"


@dataclass
class ConceptComponents:
    num_concepts: int
    """Width C of the concept head (0: no head)."""
    source: Any = None
    """The concept source the objective reads labels or teacher states from (None: no concepts)."""
    artifacts: Any = None
    teacher: Any = None
    """The frozen teacher, for objectives that read it directly (knowledge distillation)."""


def needs_concept_head(composed: ComposedRecipe) -> bool:
    objective = OBJECTIVES.get(composed.choices["objective"]).factory
    mixer = MIXERS.get(composed.choices["mixer"]).factory
    return bool(getattr(objective, "requires_concept_head", False)) or bool(
        getattr(mixer, "needs_concept", False)
    )


def needs_teacher(composed: ComposedRecipe) -> bool:
    objective = OBJECTIVES.get(composed.choices["objective"]).factory
    return bool(getattr(objective, "requires_teacher", False))


def needs_concept_source(composed: ComposedRecipe) -> bool:
    objective = OBJECTIVES.get(composed.choices["objective"]).factory
    return bool(getattr(objective, "requires_concept_source", False))


def planned_num_concepts(composed: ComposedRecipe) -> int:
    """C as the run will build it, without building anything (for --dry-run)."""
    if not needs_concept_head(composed):
        return 0
    if composed.choices["concepts"] != NO_CONCEPTS and composed.cfg.sae.source == "train":
        return int(composed.cfg.sae.n_latents)
    return int(composed.cfg.model.get("num_concepts", 0))


def _check_choices(composed: ComposedRecipe) -> None:
    concepts = composed.choices["concepts"]
    if needs_concept_source(composed) and concepts == NO_CONCEPTS:
        raise CocomixError(
            f"objective={composed.choices['objective']} needs concept targets but concepts=none; "
            f"choose one of: {', '.join(n for n in CONCEPT_SOURCES.names() if n != NO_CONCEPTS)}"
        )
    if needs_concept_head(composed) and concepts == NO_CONCEPTS and planned_num_concepts(composed) <= 0:
        raise CocomixError(
            f"mixer={composed.choices['mixer']} / objective={composed.choices['objective']} need a "
            f"concept head but no concept source sets its width; choose concepts=... or set "
            f"model.num_concepts"
        )


def build_concept_components(composed: ComposedRecipe, cache_dir: Path, data: DataArtifacts) -> ConceptComponents:
    _check_choices(composed)
    name = composed.choices["concepts"]
    if name == NO_CONCEPTS:
        teacher = None
        if needs_teacher(composed):
            from cocomix.runtime.concept_artifacts import ensure_teacher

            teacher, _, _ = ensure_teacher(composed, cache_dir, data)
        return ConceptComponents(num_concepts=planned_num_concepts(composed), teacher=teacher)
    from cocomix.concepts.cached import CacheContext
    from cocomix.runtime.concept_artifacts import ensure_concepts

    artifacts = ensure_concepts(composed, cache_dir, data)
    _, options = composed.group("concepts")
    cfg = composed.cfg
    context = CacheContext(
        teacher=artifacts.teacher,
        sae=artifacts.sae,
        layer=artifacts.layer,
        cache_dir=cache_dir,
        # Everything a training window's labels depend on, besides the source and its options.
        key_parts={
            "concepts": artifacts.identity,
            "tokenizer": data.tokenizer.fingerprint(),
            "shard": data.train.meta.corpus_fingerprint,
            "seq_len": int(cfg.train.seq_len),
            "seed": int(cfg.seed),
        },
        micro_batch_size=int(cfg.train.micro_batch_size),
    )
    source = CONCEPT_SOURCES.build(name, options, context)
    num_concepts = int(artifacts.sae.n_latents) if needs_concept_head(composed) else 0
    return ConceptComponents(
        num_concepts=num_concepts, source=source, artifacts=artifacts, teacher=artifacts.teacher
    )
