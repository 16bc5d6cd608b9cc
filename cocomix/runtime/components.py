"""Decide what concept machinery a run needs and build it (teacher, SAE, concept source).

Answered from the contracts the registered components declare (`cocomix.contracts`), never
from their names:
- the objective: concept head, concept source, teacher, compressor, model overrides (e.g. a
  hidden-state head);
- the mixer: `reads_concept` (it reads c_hat, so the head needs its compressor);
- the concept source: teacher, SAE (teacher hidden states need no SAE), its label-space size.
The model options that follow (head width C, compressor on or off, teacher width) are computed
here once, for both `--dry-run` (planned, nothing built) and training (from the built artifacts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cocomix.concepts.sources import SourceContext
from cocomix.concepts.head_kinds import CONCEPT_HEADS
from cocomix.contracts import ConceptSourceContract, MixerContract, ObjectiveContract
from cocomix.registry import CONCEPT_SOURCES, MIXERS, OBJECTIVES, CocomixError
from cocomix.runtime.artifacts import DataArtifacts
from cocomix.runtime.compose import ComposedRecipe
from cocomix.runtime.teacher import check_teacher_layer
from cocomix.runtime.teacher_sources import TEACHER_SOURCES, TeacherPlan

NO_CONCEPTS = "none"


@dataclass
class ConceptComponents:
    model_settings: dict[str, Any] = field(default_factory=dict)
    """`CocoLMConfig` fields the run decides (num_concepts, concept_compress, teacher_dim, ...)."""
    source: Any = None
    """The concept source the objective reads labels or teacher states from (None: no concepts)."""
    artifacts: Any = None
    teacher: Any = None
    """The frozen teacher, for objectives that read it directly (knowledge distillation)."""
    teacher_location: str = ""


def _objective(composed: ComposedRecipe) -> ObjectiveContract:
    contract: ObjectiveContract = OBJECTIVES.get(composed.choices["objective"]).contract
    return contract


def _mixer(composed: ComposedRecipe) -> MixerContract:
    contract: MixerContract = MIXERS.get(composed.choices["mixer"]).contract
    return contract


def _source(composed: ComposedRecipe) -> ConceptSourceContract:
    contract: ConceptSourceContract = CONCEPT_SOURCES.get(composed.choices["concepts"]).contract
    return contract


def needs_concept_head(composed: ComposedRecipe) -> bool:
    return _objective(composed).concept_head or _mixer(composed).reads_concept


def _source_needs_sae(composed: ComposedRecipe) -> bool:
    return composed.choices["concepts"] != NO_CONCEPTS and _source(composed).sae


def _source_needs_teacher(composed: ComposedRecipe) -> bool:
    return composed.choices["concepts"] != NO_CONCEPTS and _source(composed).teacher


def needs_sae(composed: ComposedRecipe) -> bool:
    """Whether the run builds (or reuses) an SAE: an SAE task, or a source whose contract reads one."""
    return str(composed.cfg.task) == "sae" or _source_needs_sae(composed)


def needs_teacher_run(composed: ComposedRecipe) -> bool:
    """Whether the run uses a teacher trained on demand (``teacher.source=recipe``): an SAE task,
    a concept source that reads a teacher, or an objective that does (KD)."""
    if not TEACHER_SOURCES.get(str(composed.cfg.teacher.source)).factory.trained_before_run:
        return False
    return needs_teacher(composed)


def _source_label_space(composed: ComposedRecipe) -> int | None:
    """The label-space size a source states from its options (None: the SAE's latents)."""
    planned = _source(composed).num_concepts
    if composed.choices["concepts"] == NO_CONCEPTS or planned is None:
        return None
    _, options = composed.group("concepts")
    return int(planned(options))


def model_settings(composed: ComposedRecipe, *, n_latents: int | None, teacher_dim: int | None) -> dict[str, Any]:
    """Model options implied by the objective, mixer and concept artifacts."""
    objective = _objective(composed)
    _, options = composed.group("objective")
    settings = objective.overrides(options)
    settings["concept_compress"] = _mixer(composed).reads_concept or objective.concept_compressor
    if _head_sized_by_teacher(composed, settings):
        settings["num_concepts"] = 0
        if teacher_dim is None:
            raise CocomixError(
                f"a {settings['concept_head']} concept head needs the teacher's width; none was found"
            )
        settings["teacher_dim"] = teacher_dim
    elif not needs_concept_head(composed):
        settings["num_concepts"] = 0
    elif n_latents is not None:
        settings["num_concepts"] = n_latents  # labels index the SAE's latents
    else:
        settings["num_concepts"] = int(composed.cfg.model.get("num_concepts", 0))
    return settings


def needs_teacher(composed: ComposedRecipe) -> bool:
    """Whether the run reads a teacher: an SAE task, a concept source that reads one, or an
    objective that does (KD)."""
    if str(composed.cfg.task) == "sae":
        return True
    if composed.choices["concepts"] != NO_CONCEPTS:
        return _source_needs_teacher(composed)
    return _objective(composed).teacher


def teacher_plan(composed: ComposedRecipe) -> TeacherPlan | None:
    """The teacher's shape without loading it (``--dry-run`` and the preflight), checked as far as
    its config allows; None when the run reads no teacher or its source cannot tell."""
    if not needs_teacher(composed):
        return None
    reads_layer = str(composed.cfg.task) == "sae" or composed.choices["concepts"] != NO_CONCEPTS
    plan = TEACHER_SOURCES.build(str(composed.cfg.teacher.source)).plan(composed, reads_layer=reads_layer)
    if plan is not None and reads_layer:
        check_teacher_layer(int(composed.cfg.teacher.layer), plan.depth)
    return plan


def planned_teacher_dim(composed: ComposedRecipe) -> int | None:
    """The teacher's width without loading it (for --dry-run)."""
    plan = teacher_plan(composed)
    return plan.width if plan is not None else None


def planned_model_settings(composed: ComposedRecipe) -> dict[str, Any]:
    """`model_settings` as the run will compute them, building nothing."""
    sae = composed.cfg.sae
    # A trained SAE has sae.n_latents latents; an SAE file is checked to have them when loaded.
    n_latents = int(sae.n_latents) if _source_needs_sae(composed) else _source_label_space(composed)
    uses_hidden = (composed.choices["concepts"] != NO_CONCEPTS and not _source_needs_sae(composed)
                   and _source_needs_teacher(composed))
    return model_settings(
        composed, n_latents=n_latents, teacher_dim=planned_teacher_dim(composed) if uses_hidden else None
    )


def _check_choices(composed: ComposedRecipe) -> None:
    concepts = composed.choices["concepts"]
    objective = composed.choices["objective"]
    if _objective(composed).concept_source and concepts == NO_CONCEPTS:
        raise CocomixError(
            f"objective={objective} needs concept targets but concepts=none; choose one of: "
            f"{', '.join(n for n in CONCEPT_SOURCES.names() if n != NO_CONCEPTS)}"
        )


def build_concept_components(composed: ComposedRecipe, cache_dir: Path, data: DataArtifacts) -> ConceptComponents:
    from cocomix.runtime.concept_artifacts import ensure_concepts, ensure_teacher

    _check_choices(composed)
    name = composed.choices["concepts"]
    if name == NO_CONCEPTS:
        teacher, location = None, ""
        if _objective(composed).teacher:
            loaded = ensure_teacher(composed, cache_dir, data, reads_layer=False)
            teacher, location = loaded.teacher, loaded.location
        settings = model_settings(composed, n_latents=None, teacher_dim=None)
        _check_head_width(composed, settings)
        return ConceptComponents(model_settings=settings, teacher=teacher, teacher_location=location)

    from cocomix.concepts.cached import CacheContext

    _, options = composed.group("concepts")
    if not _source_needs_teacher(composed):
        # Labels read off the tokens themselves (e.g. the positive control's true topics).
        source = CONCEPT_SOURCES.build(
            name, options, SourceContext(teacher=None, sae=None, layer=0, tokenizer=data.tokenizer,
                                   corpus=data.corpus)
        )
        settings = model_settings(composed, n_latents=int(source.num_concepts), teacher_dim=None)
        _check_head_width(composed, settings)
        return ConceptComponents(model_settings=settings, source=source)

    artifacts = ensure_concepts(composed, cache_dir, data, with_sae=_source_needs_sae(composed))
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
            "threads": int(cfg.threads),  # labels computed in this process follow its thread count
        },
        micro_batch_size=int(cfg.train.micro_batch_size),
        tokenizer=data.tokenizer,
    )
    source = CONCEPT_SOURCES.build(name, options, context)
    n_latents = int(artifacts.sae.n_latents) if artifacts.sae is not None else None
    settings = model_settings(composed, n_latents=n_latents, teacher_dim=artifacts.teacher.model_dim)
    _check_head_width(composed, settings)
    return ConceptComponents(
        model_settings=settings,
        source=source,
        artifacts=artifacts,
        teacher=artifacts.teacher,
        teacher_location=artifacts.locations["teacher"],
    )


def _head_sized_by_teacher(composed: ComposedRecipe, settings: dict[str, Any]) -> bool:
    """Whether the head kind an objective fixes (``model_overrides``) is as wide as the teacher's
    hidden state rather than the label space."""
    kind = settings.get("concept_head")
    return kind is not None and CONCEPT_HEADS.get(str(kind)).factory.sized_by_teacher


def _check_head_width(composed: ComposedRecipe, settings: dict[str, Any]) -> None:
    if needs_concept_head(composed) and not _head_sized_by_teacher(composed, settings) and settings["num_concepts"] <= 0:
        raise CocomixError(
            f"mixer={composed.choices['mixer']} / objective={composed.choices['objective']} need a "
            f"concept head but nothing sets its width; choose concepts=... or set model.num_concepts"
        )
