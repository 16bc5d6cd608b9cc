"""Run a recipe: compose, expand arms x seeds, build artifacts, train each run with fairseq2."""

from __future__ import annotations

import json
import re
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from cocomix.registry import ALL_REGISTRIES, CocomixError
from cocomix.runtime.builtins import load_builtins
from cocomix.runtime.compose import (
    ComposedRecipe,
    compose_recipe,
    is_group_switch,
    list_recipes,
    override_applies,
)
from cocomix.runtime.compose_errors import check_override_grammar
from cocomix.runtime.run_lock import RunLock
from cocomix.runtime.rundir import RunDir
from cocomix.runtime.world import is_rank_zero

MAIN_ARM = "main"
ARM_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")
"""An arm is a folder under the recipe's: no separators, no leading dot (so no '..')."""


class RunInterrupted(Exception):
    """Ctrl-C during a run: where it stopped, so the command line can say how to resume."""

    def __init__(self, run_dir: Path, last_step: int | None) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir
        self.last_step = last_step


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
    top = compose_recipe(recipe, overrides)
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
            # The user's group switches (`tokenizer=sentencepiece`) come first, so their
            # sub-keys (`tokenizer.vocab_size=300`) are judged against the group they select.
            switches = [o for o in overrides if is_group_switch(o)]
            bare = compose_recipe(recipe, arm_overrides + switches)
            applicable = [o for o in overrides if override_applies(o, bare.cfg)]
        for seed in seeds:
            # The user's overrides come last so they win over an arm's choices too.
            composed = compose_recipe(recipe, arm_overrides + applicable + [f"seed={seed}"])
            plans.append(PlannedRun(arm, seed, composed))
    return plans


def parameter_counts(
    composed: ComposedRecipe, vocab_size: int | None = None, settings: dict[str, Any] | None = None
) -> tuple[int, int]:
    """(total, active) parameters, counted on the meta device (nothing is allocated);
    ``settings``: the model settings of the built components (default: as planned)."""
    from cocomix.models import CocoLMConfig, count_parameters, create_cocomix_lm
    from cocomix.runtime.components import planned_model_settings
    from cocomix.runtime.recipe import model_overrides

    _, model_cfg = composed.group("model")
    if vocab_size is None:
        _, tok_cfg = composed.group("tokenizer")
        vocab_size = int(getattr(tok_cfg, "vocab_size", model_cfg.vocab_size))
    if settings is None:
        settings = planned_model_settings(composed)
    overrides = model_overrides(composed, vocab_size, settings)
    config = CocoLMConfig(**overrides)
    model = create_cocomix_lm(config, device=torch.device("meta"))
    return count_parameters(model)


def dry_run(recipe: str, overrides: list[str]) -> str:
    """The resolved config of every planned run and its parameter counts; trains nothing."""
    from cocomix.runtime.preflight import check_run

    lines = []
    for plan in plan_runs(recipe, overrides):
        check_run(plan.composed)
        total, active = parameter_counts(plan.composed)
        lines.append(f"# run: {recipe}/{plan.arm}/seed{plan.seed}")
        lines.append(yaml.safe_dump(plan.composed.resolved(), sort_keys=False).rstrip())
        lines.append(f"parameters: total={total} active={active}")
    return "\n".join(lines)


def run_recipe(recipe: str, overrides: list[str], runs_dir: Path) -> list[RunDir]:
    """Train every (arm, seed) of a recipe; finished runs are skipped, interrupted ones resume."""
    from cocomix.analysis.reports import check_reports
    from cocomix.runtime.artifacts import artifact_dir
    from cocomix.runtime.preflight import check_run

    plans = plan_runs(recipe, overrides)
    for plan in plans:  # fail on any bad arm or report name before spending time on the first
        check_run(plan.composed)
        check_reports(list(plan.composed.cfg.reports))
    baseline = str(plans[0].composed.cfg.baseline_arm)
    if baseline and baseline not in {plan.arm for plan in plans}:
        raise CocomixError(f"baseline_arm={baseline!r} is not among the arms to run "
                           f"{sorted({plan.arm for plan in plans})}; name one of them or leave it empty")
    done = []
    # Global rank 0 (torchrun's RANK, srun's SLURM_PROCID) owns (locks, checks, writes) folders.
    owner = is_rank_zero()
    for plan in plans:
        run_dir = RunDir.of(runs_dir, recipe, plan.arm, plan.seed)
        with RunLock(run_dir.path) if owner else nullcontext():
            try:
                _run_one(plan, run_dir, artifact_dir(runs_dir), owner=owner)
            except KeyboardInterrupt:
                raise RunInterrupted(run_dir.path, run_dir.last_checkpoint_step()) from None
        done.append(run_dir)
    top = plans[0].composed.cfg
    if len(plans) > 1 or top.reports:
        from cocomix.analysis.reports import recipe_report
        from cocomix.data.artifacts import atomic_write_text
        from cocomix.runtime.summary import summarize

        out_dir = runs_dir / recipe
        print(summarize(recipe, done, out_dir, held_out_tokens=int(top.summary_test_tokens)))
        report = recipe_report([run.path for run in done], out_dir,
                               baseline=str(top.baseline_arm), reports=list(top.reports))
        summary_md = out_dir / "summary.md"
        atomic_write_text(summary_md, summary_md.read_text() + "\n" + report)
        print(report)
    return done


def _run_one(plan: PlannedRun, run_dir: RunDir, cache_dir: Path, *, owner: bool) -> None:
    """Train one (arm, seed) into its folder, or say that it is already done."""
    label = f"[{plan.arm}/seed{plan.seed}]"
    resuming = run_dir.prepare(plan.composed.resolved(), owner=owner)
    target = int(plan.composed.cfg.stop_at or plan.composed.cfg.steps)
    last = run_dir.last_checkpoint_step()
    if plan.composed.cfg.task == "lm" and last is not None and last >= target:
        print(f"{label} already at step {last}; nothing to do")
        return
    if resuming:
        print(f"{label} resuming from step {last} in {run_dir.path}")
    start = time.perf_counter()
    run_task(plan.composed, run_dir.path, cache_dir)
    print(f"{label} done in {time.perf_counter() - start:.0f}s: {run_dir.path}")


def run_task(composed: ComposedRecipe, run_dir: Path, cache_dir: Path) -> None:
    task = str(composed.cfg.task)
    if task == "lm":
        train_lm(composed, run_dir, cache_dir)
    elif task == "sae":
        from cocomix.runtime.sae_task import train_sae_task

        train_sae_task(composed, run_dir, cache_dir)
    else:
        raise CocomixError(f"task={task!r}; choose lm or sae")


def train_lm(composed: ComposedRecipe, run_dir: Path, cache_dir: Path) -> None:
    """Build what the run needs (data, teacher, SAE, concept source) and train with fairseq2."""
    from cocomix.runtime.artifacts import prepare_data
    from cocomix.runtime.components import build_concept_components
    from cocomix.runtime.recipe import CocomixRecipe, run_fairseq2, to_fairseq2_config

    data = prepare_data(composed, cache_dir)
    components = build_concept_components(composed, cache_dir, data)
    record_artifacts(run_dir, data, components)
    config = to_fairseq2_config(composed, data.tokenizer.vocab_size, components.model_settings)
    label = f"[{run_dir.parent.name}/{run_dir.name}]" if run_dir.name.startswith("seed") else (
        f"[teacher {composed.name}]")
    total, active = parameter_counts(composed, data.tokenizer.vocab_size, components.model_settings)
    steps = int(composed.cfg.stop_at or composed.cfg.steps)
    print(f"{label} training {steps} steps, {total / 1e6:.2f}M parameters ({active / 1e6:.2f}M "
          f"active), log in {run_dir / 'logs'}", flush=True)
    run_fairseq2(CocomixRecipe(composed, data, components, label), config, run_dir)


def record_artifacts(run_dir: Path, data: Any, components: Any) -> None:
    """`artifacts.json`: where the run's tokenizer, shards, teacher and SAE live, for the tools
    that reload a run (evaluation, generation, concept inspection)."""
    from cocomix.data.artifacts import atomic_write_text

    # Absolute paths: the tools that read this file run from any directory.
    record: dict[str, Any] = {
        "tokenizer": _absolute(data.tokenizer.path),
        "train_shard": _absolute(data.train.directory),
        "valid_shard": _absolute(data.valid.directory),
        "corpus": data.corpus.name,
    }
    if components.artifacts is not None:
        record.update({k: _absolute(v) for k, v in components.artifacts.locations.items()})
        record["teacher_layer"] = components.artifacts.layer
    elif components.teacher is not None:  # knowledge distillation: a teacher, no concepts
        record["teacher"] = _absolute(components.teacher_location)
    label_cache = getattr(components.source, "folder", None)  # concepts=cached
    if label_cache is not None:
        record["label_cache"] = _absolute(label_cache)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "artifacts.json", json.dumps(record, indent=2) + "\n")


def _absolute(path: str | Path) -> str:
    return str(Path(path).resolve()) if str(path) else ""


def listing() -> str:
    load_builtins()
    recipes = list_recipes()
    width = max((len(name) for name, _ in recipes), default=0)
    lines = ["recipes:"] + [f"  {name:<{width}}  {purpose}" for name, purpose in recipes]
    lines.append("registries:")
    for registry in ALL_REGISTRIES:
        lines.append(f"  {registry.key:<10} ({registry.kind}): {', '.join(registry.names())}")
    return "\n".join(lines)


__all__ = ["CocomixError", "RunInterrupted", "dry_run", "listing", "plan_runs", "run_recipe"]
