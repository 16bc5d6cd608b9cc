"""Write a model as a run folder in the runtime's layout, so every tool can read it.

The layout is what a fairseq2 run of ``cocomix.runtime`` leaves behind and what
``cocomix.eval.loading.load_run`` reads: ``config.yaml`` (at least ``train.seq_len``),
``artifacts.json`` (the tokenizer, and for concept models the teacher, SAE and layer),
``checkpoints/model.yaml`` (``model_family: cocomix_lm`` and the ``CocoLMConfig``),
``checkpoints/step_N/model/pp_00/tp_00/sdp_00.pt`` (the plain state dict) and, optionally,
``metrics/{train,valid}.jsonl`` records. Uses: evaluating a model trained outside the runtime
(e.g. converted weights), and building small run folders in tests without training.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from cocomix.cache_files import atomic_dir, atomic_write_text
from cocomix.models import CocoMixLM
from cocomix.runtime.rundir import write_artifacts, write_config


def save_run_folder(
    run_dir: Path | str,
    model: CocoMixLM,
    *,
    config: dict[str, Any],
    tokenizer: Path | str,
    step: int = 1,
    artifacts: dict[str, Any] | None = None,
    train_records: Sequence[dict[str, Any]] = (),
    valid_records: Sequence[dict[str, Any]] = (),
) -> Path:
    """Write ``model`` at ``step`` under ``run_dir``; returns ``run_dir``.

    ``config`` is the resolved recipe as ``config.yaml`` holds it (``train.seq_len`` is
    required by the tools); ``artifacts`` adds to ``{"tokenizer": tokenizer}``.
    """
    run_dir = Path(run_dir)
    write_config(run_dir, config)
    write_artifacts(run_dir, {"tokenizer": str(tokenizer), **(artifacts or {})})
    card = {"name": "checkpoint", "model_family": "cocomix_lm",
            "model_config": dataclasses.asdict(model.config)}
    atomic_write_text(run_dir / "checkpoints" / "model.yaml", yaml.safe_dump(card, sort_keys=False))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    # Like fairseq2: the step folder appears only once its weights are complete; an older one
    # at the same step is replaced (atomic_dir would keep it).
    step_dir = run_dir / "checkpoints" / f"step_{step}"
    shutil.rmtree(step_dir, ignore_errors=True)
    with atomic_dir(step_dir) as tmp:
        model_dir = tmp / "model" / "pp_00" / "tp_00"
        model_dir.mkdir(parents=True)
        torch.save(state, model_dir / "sdp_00.pt")
    if train_records or valid_records:
        metrics = run_dir / "metrics"
        metrics.mkdir(exist_ok=True)
        for name, records in (("train", train_records), ("valid", valid_records)):
            atomic_write_text(metrics / f"{name}.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    return run_dir
