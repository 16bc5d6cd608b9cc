"""Reload a finished run for evaluation: model, tokenizer, resolved config, recorded artifacts.

A run folder ``runs/<recipe>/<arm>/seed<k>/`` holds ``config.yaml`` (the resolved recipe),
``artifacts.json`` (where its tokenizer, shards, teacher and SAE live; written by
``cocomix.runtime.launch.record_artifacts``) and ``checkpoints/``. Everything an evaluation tool
needs is read from there, so a tool never re-derives paths or rebuilds anything.

``discover_runs`` expands a recipe folder (``runs/ablation/add_vs_mix``) into its
``<arm>/seed<k>`` run folders, so every tool accepts run folders and recipe folders alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from cocomix.data.tokenizers import Tokenizer, load_tokenizer
from cocomix.models import CocoMixLM
from cocomix.registry import CocomixError

CONFIG_FILE = "config.yaml"
ARTIFACTS_FILE = "artifacts.json"
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


def read_config(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise CocomixError(f"{run_dir} has no {CONFIG_FILE}; is it a cocomix run folder?")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise CocomixError(f"{path} is not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise CocomixError(f"{path} does not hold a mapping")
    return data


def read_artifacts(run_dir: Path) -> dict[str, Any]:
    """``artifacts.json`` of a run, or ``{}`` when the run predates it (callers that need a path
    from it raise ``missing_artifact`` with the fix)."""
    path = Path(run_dir) / ARTIFACTS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CocomixError(f"{path} is corrupt ({err}); rerun the recipe to rewrite it") from None
    if not isinstance(data, dict):
        return {}
    return {key: relocated(Path(run_dir), key, value) for key, value in data.items()}


ARTIFACT_CACHE = "_artifacts"


def relocated(run_dir: Path, key: str, value: Any) -> Any:
    """A recorded artifact path, followed when the runs folder (with its ``_artifacts``) moved.

    ``artifacts.json`` records absolute paths. A path inside a ``_artifacts`` cache that no longer
    exists is looked up in the ``_artifacts`` folder of each parent of the run, so a runs folder
    copied to another machine or renamed still loads.
    """
    if not isinstance(value, str) or not value.startswith("/") or Path(value).exists():
        return value
    parts = Path(value).parts
    if ARTIFACT_CACHE not in parts:
        return value
    inside = Path(*parts[len(parts) - parts[::-1].index(ARTIFACT_CACHE):])
    for parent in Path(run_dir).resolve().parents:
        candidate = parent / ARTIFACT_CACHE / inside
        if candidate.exists():
            return str(candidate)
    return value  # gone: the reader that needs it says so (``gone_artifact``)


def gone_artifact(run_dir: Path, key: str, value: str, fix: str) -> CocomixError:
    """The error for a recorded artifact path that no longer exists anywhere."""
    return CocomixError(
        f"{run_dir} records its {key} at {value}, which no longer exists (a runs folder moved "
        f"without its {ARTIFACT_CACHE} folder, or a deleted cache); {fix}"
    )


def missing_artifact(run_dir: Path, key: str, fix: str) -> CocomixError:
    """The error for a path ``artifacts.json`` does not record; ``fix`` says what to do."""
    return CocomixError(
        f"{run_dir} records no {key!r} in {ARTIFACTS_FILE} (the run predates artifacts.json, or "
        f"has no such artifact); {fix}"
    )


def train_seq_len(config: dict[str, Any], model: CocoMixLM | None = None) -> int:
    try:
        seq_len = int(config["train"]["seq_len"])
    except (KeyError, TypeError, ValueError):
        raise CocomixError("config.yaml has no train.seq_len; is it a cocomix lm run?") from None
    if model is not None and seq_len > model.max_seq_len:
        raise CocomixError(
            f"train.seq_len={seq_len} exceeds the checkpoint's max_seq_len={model.max_seq_len}"
        )
    return seq_len


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
