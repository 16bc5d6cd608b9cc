"""Train one run: build what it needs (data, concept components) and train it with fairseq2.

The experiment layer (``cocomix.experiment``) plans a recipe into runs and calls ``run_task``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cocomix.registry import CocomixError
from cocomix.runtime.compose import ComposedRecipe
from cocomix.runtime.rundir import write_artifacts
from cocomix.runtime.world import use_threads


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

    use_threads(int(composed.cfg.threads))
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
    # Absolute paths: the tools that read this file run from any directory.
    record: dict[str, Any] = {
        "tokenizer": _absolute(data.tokenizer.path),
        "train_shard": _absolute(data.train.directory),
        "valid_shard": _absolute(data.valid.directory),
        "corpus": data.corpus.name,
    }
    if components.artifacts is not None:
        record.update({k: _absolute(v) for k, v in components.artifacts.locations.items()})
        record.update(components.artifacts.sources)
        record["teacher_layer"] = components.artifacts.layer
    elif components.teacher is not None:  # knowledge distillation: a teacher, no concepts
        record["teacher"] = _absolute(components.teacher_location)
    label_cache = getattr(components.source, "folder", None)  # concepts=cached
    if label_cache is not None:
        record["label_cache"] = _absolute(label_cache)
    write_artifacts(run_dir, record)


def _absolute(path: str | Path) -> str:
    """A local path made absolute; a hub name (nothing of that name here) as it is."""
    return str(Path(path).resolve()) if str(path) and Path(path).exists() else str(path)



