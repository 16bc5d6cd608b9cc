"""The experiment layer's plan: a recipe plus overrides as the runs it asks for (arms x seeds,
each composed once, after one probe per arm) and the teachers they need, trained before them.

``plan_runs`` composes; ``teacher_nodes`` says which teacher runs the plan depends on and whether
they are trained yet; ``dry_run`` prints both and trains nothing.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from cocomix.concepts.head_kinds import CONCEPT_HEADS
from cocomix.registry import ALL_REGISTRIES, CocomixError
from cocomix.runtime.builtins import load_builtins
from cocomix.runtime.compose import (
    ComposedRecipe,
    compose_recipe,
    in_group,
    is_group_switch,
    override_applies,
    probe_recipe,
)
from cocomix.runtime.compose_errors import check_override_grammar
from cocomix.runtime.components import needs_sae, needs_teacher_run, planned_teacher_dim, teacher_plan
from cocomix.runtime.concept_artifacts import SAE_SOURCES
from cocomix.runtime.teacher_sources import TEACHER_SOURCES, TeacherRun, teacher_run
from cocomix.runtime.launch import parameter_counts
from cocomix.runtime.preflight import check_run
from cocomix.runtime.recipe_files import list_recipes

MAIN_ARM = "main"
ARM_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")
"""An arm is a folder under the recipe's: no separators, no leading dot (so no '..')."""


@dataclass
class PlannedRun:
    arm: str
    seed: int
    composed: ComposedRecipe


def plan_runs(recipe: str, overrides: list[str]) -> list[PlannedRun]:
    """One composed config per (arm, seed). A recipe without `arms` has the single arm `main`.

    In a multi-arm recipe a command-line override reaches the arms that have its key (e.g.
    `concepts.k_attr=2` skips the NTP arm, which has no concepts); one that no arm has is the
    usual unknown-key error.
    """
    load_builtins()
    probe = probe_recipe(recipe, overrides)  # checks every override
    # Arms, seeds and only_arms as the preset leaves them (a preset may pick the seeds).
    top = compose_recipe(recipe, overrides, probe=probe)
    arms: dict[str, list[str]] = {k: list(v) for k, v in top.cfg.arms.items()} or {MAIN_ARM: []}
    if top.cfg.only_arms:
        unknown = [a for a in top.cfg.only_arms if a not in arms]
        if unknown:
            raise CocomixError(f"only_arms names unknown arm(s) {unknown}; {recipe} has {list(arms)}")
        arms = {a: o for a, o in arms.items() if a in top.cfg.only_arms}
    for arm, arm_overrides in arms.items():
        if not ARM_NAME.fullmatch(arm):
            raise CocomixError(
                f"arm name {arm!r} of {recipe} is not a plain folder name; use letters, digits, "
                f"'_', '-' and '.', not starting with '.'"
            )
        check_override_grammar(arm_overrides, origin=f"arm {arm!r} of recipes/{recipe}.yaml: override")
    user_seed = any(o.split("=", 1)[0] == "seed" for o in overrides)
    seeds = [int(top.cfg.seed)] if user_seed or not top.cfg.seeds else [int(s) for s in top.cfg.seeds]
    if len(set(seeds)) < len(seeds):
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        print(f"warning: seeds {repeated} are listed more than once; each (arm, seed) runs once",
              file=sys.stderr)
        seeds = list(dict.fromkeys(seeds))
    plans = []
    for arm, arm_overrides in arms.items():
        applicable = overrides
        if arm != MAIN_ARM:
            # One probe per arm, shared by its seeds. The user's group switches
            # (`tokenizer=sentencepiece`) are in it, so their sub-keys (`tokenizer.vocab_size=300`)
            # are judged against the group they select; keys outside the groups exist in every
            # arm (the schema's), so they always apply.
            always = [o for o in overrides if is_group_switch(o) or not in_group(o)]
            probe = probe_recipe(recipe, arm_overrides + always)
            applicable = [o for o in overrides if override_applies(o, probe.cfg)]
        for seed in seeds:
            # The user's overrides come last so they win over an arm's choices too.
            composed = compose_recipe(recipe, arm_overrides + applicable + [f"seed={seed}"], probe=probe)
            plans.append(PlannedRun(arm, seed, composed))
    return plans


def teacher_nodes(plans: list[PlannedRun], cache_dir: Path) -> list[TeacherRun]:
    """The teacher runs (``teacher.source=recipe``) the planned runs need, each once, in order."""
    nodes: dict[tuple[str, tuple[str, ...], str], TeacherRun] = {}
    for plan in plans:
        if needs_teacher_run(plan.composed):
            spec = plan.composed.cfg.teacher
            # Composed once per distinct teacher (a study's arms share a handful of teachers).
            key = (str(spec.recipe), tuple(str(o) for o in spec.overrides), plan.composed.preset)
            if key not in nodes:
                nodes[key] = teacher_run(plan.composed, cache_dir)
    return list({node.run_dir: node for node in nodes.values()}.values())


def data_nodes(plans: list[PlannedRun]) -> list[str]:
    """The tokenizer and token shards the planned runs (and their teachers) build or reuse, each
    once. Their cache keys hash built inputs (a shard's key includes the trained tokenizer's
    pieces), so they are described by what makes them, not by folder."""
    nodes: dict[str, None] = {}
    for plan in plans:
        data, _ = plan.composed.group("data")
        tokenizer, options = plan.composed.group("tokenizer")
        vocab = getattr(options, "vocab_size", None)
        source = getattr(options, "train_corpus", "") or data
        made = f"trained on {source}" if getattr(options, "needs_corpus", False) else "used as it is"
        nodes[f"# tokenizer: {tokenizer}" + (f", vocab {vocab}" if vocab else "") + f", {made}"] = None
        nodes[f"# shards: {data} train and valid splits, tokenized by it"] = None
    return list(nodes)


def loaded_teachers(plans: list[PlannedRun]) -> list[str]:
    """The teachers the planned runs read as they are (not trained here), with their shapes."""
    nodes: dict[str, None] = {}
    for plan in plans:
        if not needs_teacher_run(plan.composed):
            found = teacher_plan(plan.composed)
            if found is not None and str(plan.composed.cfg.teacher.source) != "recipe":
                nodes[f"# teacher: {found.description}"] = None
    return list(nodes)


def concept_nodes(plans: list[PlannedRun]) -> list[str]:
    """The SAEs and concept-label caches the planned runs build or reuse (after their teacher)."""
    nodes: dict[str, None] = {}
    for plan in plans:
        composed = plan.composed
        if needs_sae(composed):
            what = SAE_SOURCES.build(str(composed.cfg.sae.source)).plan(composed, planned_teacher_dim(composed))
            nodes[f"# sae: {what}, on layer {composed.cfg.teacher.layer} of {_teacher(composed)}"] = None
        if composed.choices["concepts"] == "cached":
            _, labels = composed.group("concepts")
            nodes[f"# labels: {labels.source} (k_attr={labels.k_attr}) of {_teacher(composed)}, cached "
                  f"per training window of seed {composed.cfg.seed}"] = None
    return list(nodes)


def _teacher(composed: ComposedRecipe) -> str:
    spec = composed.cfg.teacher
    if str(spec.source) != "recipe":
        return f"{spec.source} {spec.path}"
    return str(spec.recipe) + (f" {list(spec.overrides)}" if spec.overrides else "")


def dry_run(recipe: str, overrides: list[str], runs_dir: Path = Path("runs")) -> str:
    """The teachers the recipe needs, then the resolved config of every planned run and its
    parameter counts; trains nothing."""
    from cocomix.runtime.artifacts import artifact_dir

    plans = plan_runs(recipe, overrides)
    lines = data_nodes(plans)
    for node in teacher_nodes(plans, artifact_dir(runs_dir)):
        total, _ = parameter_counts(node.recipe)
        state = "trained" if node.trained() else f"to train first ({node.steps} steps)"
        lines.append(f"# teacher: {node.name} -> {node.run_dir} ({state}, {total / 1e6:.2f}M parameters)")
    lines += loaded_teachers(plans)
    lines += concept_nodes(plans)
    for plan in plans:
        check_run(plan.composed)
        total, active = parameter_counts(plan.composed)
        lines.append(f"# run: {recipe}/{plan.arm}/seed{plan.seed}")
        lines.append(yaml.safe_dump(plan.composed.resolved(), sort_keys=False).rstrip())
        lines.append(f"parameters: total={total} active={active}")
    return "\n".join(lines)


def listing() -> str:
    load_builtins()
    recipes = list_recipes()
    width = max((len(name) for name, _ in recipes), default=0)
    lines = ["recipes:"] + [f"  {name:<{width}}  {purpose}" for name, purpose in recipes]
    lines.append("registries (the config key each one fills, then its options):")
    registries = (*ALL_REGISTRIES, TEACHER_SOURCES, SAE_SOURCES, CONCEPT_HEADS)
    key_width = max(len(registry.key) for registry in registries)
    for registry in registries:
        lines.append(f"  {registry.key:<{key_width}}  ({registry.kind}): {', '.join(registry.names())}")
    return "\n".join(lines)


