"""Reload a finished run for evaluation: model, tokenizer, resolved config, recorded artifacts.

A run folder ``runs/<recipe>/<arm>/seed<k>/`` holds ``config.yaml`` (the resolved recipe),
``artifacts.json`` (where its tokenizer, shards, teacher and SAE live; written by
``cocomix.runtime.launch.record_artifacts``) and ``checkpoints/``. Everything an evaluation tool
needs is read from there, so a tool never re-derives paths or rebuilds anything.

``discover_runs`` expands a recipe folder (``runs/ablation/add_vs_mix``) into its
``<arm>/seed<k>`` run folders, so every tool accepts run folders and recipe folders alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cocomix.data.tokenizer_loading import load_tokenizer
from cocomix.data.tokenizers import Tokenizer
from cocomix.models import CocoMixLM
from cocomix.registry import CocomixError
from cocomix.runtime.rundir import (
    ARTIFACT_CACHE,
    CONFIG_FILE,
    gone_artifact,
    missing_artifact,
    read_artifacts,
    read_config,
    train_seq_len,
)

_SEED_DIR = re.compile(r"^seed(\d+)$")


@dataclass
class RunInfo:
    """Where a run folder is and what it is called (no model loaded)."""

    path: Path
    arm: str
    seed: int | None
    recipe: str
    """``<recipe>`` part of ``runs/<recipe>/<arm>/seed<k>`` (two path components), best effort."""


@dataclass
class LoadedRun:
    """A run ready to evaluate."""

    info: RunInfo
    model: CocoMixLM
    tokenizer: Tokenizer
    step: int
    config: dict[str, Any]
    artifacts: dict[str, Any] = field(default_factory=dict)

    @property
    def seq_len(self) -> int:
        """The training context (``train.seq_len``): positions beyond it were never trained, so
        evaluation windows use it rather than the model's ``max_seq_len``."""
        return train_seq_len(self.config, self.model)


def is_run_dir(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file() and (path / "checkpoints").is_dir()


def run_info(path: Path) -> RunInfo:
    path = Path(path)
    match = _SEED_DIR.match(path.name)
    seed = int(match.group(1)) if match else None
    arm = path.parent.name if match else path.name
    recipe = f"{path.parents[2].name}/{path.parents[1].name}" if match and len(path.parents) > 2 else ""
    return RunInfo(path=path, arm=arm, seed=seed, recipe=recipe)


def discover_runs(paths: Iterable[Path | str]) -> list[RunInfo]:
    """Run folders from run folders and recipe folders (``<recipe>/<arm>/seed<k>/``), in order.

    A path that is neither (no ``config.yaml`` with ``checkpoints/``, and no ``*/seed*/`` run
    folders below it) is an error naming it, never skipped.
    """
    runs: list[RunInfo] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise CocomixError(f"{path} does not exist; pass a run folder or a recipe folder")
        if is_run_dir(path) or (path / CONFIG_FILE).is_file():
            runs.append(run_info(path))
            continue
        found = sorted(
            (p for p in path.glob("*/seed*") if _SEED_DIR.match(p.name) and (p / CONFIG_FILE).is_file()),
            key=lambda p: (p.parent.name, int(p.name[4:])),
        )
        if not found:
            raise CocomixError(
                f"{path} is neither a run folder (config.yaml + checkpoints/) nor a recipe folder "
                f"with <arm>/seed<k>/ runs inside"
            )
        runs += [run_info(p) for p in found]
    seen: set[Path] = set()
    unique = []
    for run in runs:
        if run.path.resolve() not in seen:
            seen.add(run.path.resolve())
            unique.append(run)
    return unique


def resolve_tokenizer(run_dir: Path, artifacts: dict[str, Any], tokenizer: Path | str | None) -> Tokenizer:
    if tokenizer is not None:
        return load_tokenizer(tokenizer)
    if "tokenizer" not in artifacts:
        raise missing_artifact(run_dir, "tokenizer", "pass --tokenizer PATH/spm.model")
    if not Path(artifacts["tokenizer"]).exists():
        raise gone_artifact(run_dir, "tokenizer", artifacts["tokenizer"],
                            f"move {ARTIFACT_CACHE} along with the runs, or pass --tokenizer PATH/spm.model")
    return load_tokenizer(artifacts["tokenizer"])


def load_run(
    run_dir: Path | str,
    *,
    step: int | None = None,
    tokenizer: Path | str | None = None,
    device: str | torch.device = "cpu",
) -> LoadedRun:
    """Load the model at ``step`` (default: last checkpoint) and the run's tokenizer.

    The model comes back in eval mode on ``device``; its vocabulary must match the tokenizer's.
    """
    from cocomix.runtime.checkpoint import checkpoint_steps, load_trained_lm

    run_dir = Path(run_dir)
    config = read_config(run_dir)
    artifacts = read_artifacts(run_dir)
    steps = checkpoint_steps(run_dir)
    if not steps:
        raise CocomixError(f"{run_dir} has no complete checkpoint; train it first")
    chosen = steps[-1] if step is None else step
    model = load_trained_lm(run_dir, chosen).to(device).eval()
    tok = resolve_tokenizer(run_dir, artifacts, tokenizer)
    if tok.vocab_size != model.config.vocab_size:
        raise CocomixError(
            f"tokenizer {tok.path} has {tok.vocab_size} pieces but the model of {run_dir} has "
            f"vocab_size={model.config.vocab_size}; pass the run's own tokenizer"
        )
    return LoadedRun(run_info(run_dir), model, tok, chosen, config, artifacts)
