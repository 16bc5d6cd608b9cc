"""Load a trained `cocomix_lm` back from its run folder (teachers, evaluation, generation)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import yaml

from cocomix.models import CocoLMConfig, CocoMixLM, create_cocomix_lm
from cocomix.registry import CocomixError, first_line
from cocomix.runtime.rundir import checkpoint_steps


def load_model_config(run_dir: Path) -> CocoLMConfig:
    card = run_dir / "checkpoints" / "model.yaml"
    if not card.is_file():
        raise CocomixError(
            f"{run_dir} has no checkpoints/model.yaml; is it a finished cocomix run folder?"
        )
    try:
        data = yaml.safe_load(card.read_text())["model_config"]
        # PyYAML reads fairseq2's `1e-05` as a string (YAML 1.1 floats need a dot): coerce by type.
        floats = {f.name for f in dataclasses.fields(CocoLMConfig) if f.type in ("float", float)}
        return CocoLMConfig(**{k: float(v) if k in floats else v for k, v in data.items()})
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as err:
        raise CocomixError(f"{card} is corrupt ({err}); rerun the recipe that made it") from None


def load_trained_lm(run_dir: Path, step: int | None = None) -> CocoMixLM:
    """The model of `run_dir` at `step` (default: the last checkpoint), in eval mode on CPU."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CocomixError(f"run folder {run_dir} does not exist; check the path (e.g. teacher.path)")
    steps = checkpoint_steps(run_dir)
    if not steps:
        raise CocomixError(f"{run_dir} has no complete checkpoint; train it first")
    if step is None:
        step = steps[-1]
    elif step not in steps:
        raise CocomixError(f"{run_dir} has no checkpoint at step {step}; it has {steps}")
    config = load_model_config(run_dir)
    model = create_cocomix_lm(config, device=torch.device("cpu"))
    model_dir = run_dir / "checkpoints" / f"step_{step}" / "model"
    # Rank order (sdp_2 before sdp_10 whatever the padding): FSDP shards join in it.
    files = sorted(model_dir.rglob("*.pt"), key=lambda f: (len(f.stem), f.stem))
    if not files or any(f.parent.name != "tp_00" or f.parent.parent.name != "pp_00" for f in files):
        raise CocomixError(
            f"expected model shards pp_00/tp_00/sdp_*.pt under {model_dir}, found "
            f"{[str(f.relative_to(model_dir)) for f in files]}; tensor- and pipeline-parallel "
            f"checkpoints are not supported here"
        )
    shards = [_read_shard(f, step) for f in files]
    state = shards[0] if len(shards) == 1 else _merge_fsdp_shards(shards, model.state_dict(), model_dir)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise CocomixError(f"checkpoint {files[0]} does not match its model.yaml: {first}") from None
    return model.eval()


def _read_shard(path: Path, step: int) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a truncated or foreign file
        raise CocomixError(
            f"cannot read checkpoint {path} ({_load_failure(err)}); restore it, or delete "
            f"checkpoints/step_{step} to use an earlier step"
        ) from None
    return state.get("model", state)


def _merge_fsdp_shards(
    shards: list[dict[str, torch.Tensor]], expected: dict[str, torch.Tensor], model_dir: Path
) -> dict[str, torch.Tensor]:
    """One state dict from an FSDP run's ``sdp_00.pt, sdp_01.pt, ...``: fairseq2 saves each
    rank's local shard, and FSDP shards every parameter along dim 0 in rank order, so the full
    tensor is the shards concatenated (checked against the model's own shapes)."""
    merged = {}
    for key, full in expected.items():
        parts = [shard.get(key) for shard in shards]
        if any(part is None for part in parts):
            raise CocomixError(f"FSDP checkpoint {model_dir} lacks {key!r} in some of its {len(shards)} shards")
        tensor = parts[0] if full.ndim == 0 else torch.cat(parts, dim=0)  # type: ignore[arg-type]
        if tensor.shape != full.shape:
            raise CocomixError(
                f"FSDP checkpoint {model_dir}: the {len(shards)} shards of {key!r} join to "
                f"{tuple(tensor.shape)}, not the model's {tuple(full.shape)}"
            )
        merged[key] = tensor
    return merged


def _load_failure(err: Exception) -> str:
    """torch's first line for a file that is not a checkpoint at all talks about `weights_only`,
    which would mislead: say what it means."""
    first = first_line(err)
    return "not a torch file, or truncated" if first.startswith("Weights only load failed") else first
