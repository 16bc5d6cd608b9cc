"""Checks a composed run must pass before anything is built or trained.

Hydra already refuses unknown names, misspelt keys and wrong types; these are the value checks
that otherwise fire minutes later (after a teacher or an SAE was trained): the schedule, the
model's sizes as the run will build them (insert layer, concept head width and TopK), and the
concept options that can be judged from the recipe alone (SAE k, K_attr). Checks that need a
built artifact (an SAE file's width, a teacher's tokenizer) stay where the artifact is loaded.
"""

from __future__ import annotations

from cocomix.models import CocoLMConfig
from cocomix.registry import CocomixError
from cocomix.runtime.components import NO_CONCEPTS, needs_sae, needs_teacher_run, planned_model_settings, teacher_plan
from cocomix.runtime.compose import ComposedRecipe
from cocomix.runtime.concept_artifacts import SAE_SOURCES
from cocomix.runtime.teacher_sources import planned_teacher_recipe


def check_run(composed: ComposedRecipe) -> None:
    """Raise the one `CocomixError` for the first bad value of a composed run."""
    from cocomix.runtime.recipe import check_schedule, model_overrides

    check_schedule(composed.cfg)
    _check_teacher_and_sae(composed)
    if str(composed.cfg.task) != "lm":
        return
    _check_concepts(composed)
    _, tok_cfg = composed.group("tokenizer")
    vocab = int(getattr(tok_cfg, "vocab_size", 0) or composed.cfg.model.vocab_size)
    CocoLMConfig(**model_overrides(composed, vocab, planned_model_settings(composed))).validate()


def _check_teacher_and_sae(composed: ComposedRecipe) -> None:
    """The teacher and SAE checked as far as their configs allow, without loading weights: a
    layer beyond the teacher, an SAE on another width or hook, a hub name while offline."""
    plan = teacher_plan(composed)
    if needs_teacher_run(composed):  # trained later: its own values now, named as the teacher's
        from cocomix.runtime.recipe import check_schedule

        spec = composed.cfg.teacher
        try:
            check_schedule(planned_teacher_recipe(composed).cfg)
        except CocomixError as err:
            raise CocomixError(f"the teacher {spec.recipe} (with teacher.overrides={list(spec.overrides)}): "
                               f"{err}") from None
    if needs_sae(composed):
        SAE_SOURCES.build(str(composed.cfg.sae.source)).plan(composed, plan.width if plan else None)


def _check_concepts(composed: ComposedRecipe) -> None:
    """SAE k against its width and K_attr against k, for an SAE this run trains itself (an SAE
    file's k and width are only known once it is loaded, and checked there)."""
    if composed.choices["concepts"] == NO_CONCEPTS:
        return
    if not SAE_SOURCES.get(str(composed.cfg.sae.source)).factory.trained_here:
        return
    sae = composed.cfg.sae
    n_latents, k = int(sae.n_latents), int(sae.k)
    if not 0 < k <= n_latents:
        raise CocomixError(
            f"sae.k={k} must be in 1..sae.n_latents ({n_latents}); lower sae.k or raise sae.n_latents"
        )
    _, options = composed.group("concepts")
    k_attr = getattr(options, "k_attr", None)
    if k_attr is None:
        return
    dense = getattr(options, "variant", "code") == "paper"
    limit, what = (n_latents, f"sae.n_latents={n_latents}") if dense else (k, f"sae.k={k}")
    if not 1 <= int(k_attr) <= limit:
        raise CocomixError(
            f"K_attr={k_attr} must be in 1..{limit} (the SAE's {what}); lower concepts.k_attr"
        )
