"""Training FLOPs of a finished run, derived from its folder (``cocomix.runtime.flops`` rules).

The student's shape is the checkpoint's ``checkpoints/model.yaml`` (the config the model was
built with: vocabulary and concept count included, which ``config.yaml`` may leave to the
tokenizer and the SAE). The teacher's cost depends on the run's concept source
(``concepts.name``, or the source a ``cached`` one wraps), which declares it as
``teacher_flop_mode`` (``cocomix.concepts.sources.ConceptSource``), so a plugin source is
counted like a built-in one:

| source                       | teacher FLOP mode | why                                          |
|------------------------------|-------------------|----------------------------------------------|
| attribution                  | attribution       | full forward + input-grad backward above SAE |
| activation, teacher_hidden   | hidden            | forward to the SAE layer                      |
| latent_topics                | (none)            | labels read off the tokens, no teacher        |
| none, with a teacher objective | forward         | knowledge distillation reads the logits       |

A ``cached`` source is counted as the source it caches: its labels still cost that compute
once per training window (runs sharing a cache share the cost; FLOPs here are per run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from cocomix.registry import CocomixError
from cocomix.runtime.flops import FlopCount, TeacherCost, training_flops_per_token
from cocomix.runtime.rundir import missing_artifact, read_artifacts, read_config, train_seq_len

def _teacher_shape(path: Path) -> dict[str, int]:
    """Width, depth, MLP width and vocabulary of a teacher (cocomix run or HF GPT-2 folder)."""
    from cocomix.runtime.checkpoint import load_model_config

    if (path / "config.json").is_file():  # Hugging Face GPT-2
        cfg = json.loads((path / "config.json").read_text())
        d = int(cfg["n_embd"])
        return {"model_dim": d, "num_layers": int(cfg["n_layer"]),
                "ffn_inner_dim": int(cfg.get("n_inner") or 4 * d), "vocab_size": int(cfg["vocab_size"])}
    model = load_model_config(path)
    return {"model_dim": model.model_dim, "num_layers": model.num_layers,
            "ffn_inner_dim": model.ffn_inner_dim, "vocab_size": model.vocab_size}


def _sae_shape(run_dir: Path, config: dict[str, Any], artifacts: dict[str, Any]) -> tuple[int, int]:
    """``(n_latents, k)`` of the run's SAE: from its file when recorded, else config.yaml."""
    sae_path = artifacts.get("sae")
    if sae_path and Path(sae_path).is_file():
        # mmap: only the shapes are needed, not 32768 x 768 weights in memory.
        state = torch.load(sae_path, map_location="cpu", weights_only=True, mmap=True)
        return int(state["encoder.weight"].shape[0]), int(state["activation_state_dict"]["k"])
    sae = config.get("sae", {})
    if sae.get("source") != "train":
        raise missing_artifact(run_dir, "sae", "its SAE size cannot be read; rerun it with the current runtime")
    return int(sae["n_latents"]), int(sae["k"])


def run_teacher_cost(run_dir: Path, config: dict[str, Any], artifacts: dict[str, Any]) -> TeacherCost | None:
    """The teacher work of one run, or ``None`` when it has no teacher."""
    concepts = dict(config.get("concepts") or {})
    source = str(concepts.get("name", "none"))
    variant = str(concepts.get("variant", "code"))
    if source == "cached":
        source = str(concepts.get("source", "attribution"))
    objective = str((config.get("objective") or {}).get("name", "ntp"))
    if source == "none":
        if not _objective_needs_teacher(objective):
            return None
        mode = "forward"
    else:
        declared = _source_teacher_mode(source, run_dir)
        if declared is None:
            return None
        mode = declared
    if "teacher" not in artifacts:
        raise missing_artifact(run_dir, "teacher", "its teacher size cannot be read; rerun it with the current runtime")
    shape = _teacher_shape(Path(artifacts["teacher"]))
    layer = int(artifacts.get("teacher_layer", (config.get("teacher") or {}).get("layer", 0)))
    n_latents, k = (0, 0) if source == "teacher_hidden" or mode == "forward" else _sae_shape(run_dir, config, artifacts)
    return TeacherCost(**shape, layer=layer, mode=mode, sae_latents=n_latents, sae_k=k,
                       attribution_dense=variant == "paper")


def _source_teacher_mode(source: str, run_dir: Path) -> str | None:
    """The teacher FLOP mode the registered concept source declares."""
    from cocomix.registry import CONCEPT_SOURCES
    from cocomix.runtime.builtins import load_builtins

    load_builtins()
    if source not in CONCEPT_SOURCES.names():
        raise CocomixError(
            f"{run_dir}: concept source {source!r} is not registered; import its plugin first"
        )
    factory = CONCEPT_SOURCES.get(source).factory
    if not hasattr(factory, "teacher_flop_mode"):
        raise CocomixError(
            f"{run_dir}: concept source {source!r} declares no teacher_flop_mode; set it on the "
            f"class (attribution, hidden or None)"
        )
    return factory.teacher_flop_mode  # type: ignore[no-any-return]


def _objective_needs_teacher(objective: str) -> bool:
    from cocomix.registry import OBJECTIVES
    from cocomix.runtime.builtins import load_builtins

    load_builtins()
    if objective not in OBJECTIVES.names():
        raise CocomixError(f"objective {objective!r} is not registered; import its plugin first")
    return bool(getattr(OBJECTIVES.get(objective).factory, "requires_teacher", False))


def run_flops_per_token(run_dir: Path | str) -> FlopCount:
    """Training FLOPs per token of ``run_dir`` (student 3× forward + teacher extraction)."""
    from cocomix.runtime.checkpoint import load_model_config

    run_dir = Path(run_dir)
    config = read_config(run_dir)
    artifacts = read_artifacts(run_dir)
    model = load_model_config(run_dir)
    return training_flops_per_token(
        model, train_seq_len(config), teacher=run_teacher_cost(run_dir, config, artifacts)
    )
