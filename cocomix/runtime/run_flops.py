"""Training FLOPs of a finished run, derived from its folder (``cocomix.runtime.flops`` rules).

The student's shape is the checkpoint's ``checkpoints/model.yaml`` (the config the model was
built with: vocabulary and concept count included, which ``config.yaml`` may leave to the
tokenizer and the SAE). The teacher's cost depends on the run's concept source
(``concepts.name``, or the source a ``cached`` one serves), which declares it in its contract
(``ConceptSourceContract.teacher_flops``, ``cocomix.contracts``), so a plugin source is counted
like a built-in one:

| source                       | teacher FLOP mode | why                                          |
|------------------------------|-------------------|----------------------------------------------|
| attribution                  | attribution       | full forward + input-grad backward above SAE |
| activation, teacher_hidden   | hidden            | forward to the SAE layer                      |
| latent_topics                | (none)            | labels read off the tokens, no teacher        |
| none, with a teacher objective | forward         | knowledge distillation reads the logits       |

A ``cached`` source is counted as the source it caches (its contract's ``counted_as``): its
labels still cost that compute once per training window (runs sharing a cache share the cost;
FLOPs here are per run).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from cocomix.contracts import ConceptSourceContract
from cocomix.registry import CocomixError
from cocomix.runtime.flops import FlopCount, TeacherCost, training_flops_per_token
from cocomix.runtime.rundir import missing_artifact, read_artifacts, read_config, train_seq_len

def _teacher_shape(path: Path, source: str | None = None) -> dict[str, int]:
    """Width, depth, MLP width and vocabulary of a teacher (cocomix run, or a Hugging Face causal
    LM: a folder or a hub name, read through ``transformers``' config classes, which map each
    family's own key names such as GPT-2's ``n_embd`` to ``hidden_size``)."""
    from cocomix.runtime.checkpoint import load_model_config

    if source == "hf" or (path / "config.json").is_file():
        from transformers import AutoConfig

        from cocomix.runtime.hub import offline_kwargs

        where: Path | str = path if path.is_dir() else str(path)
        cfg = AutoConfig.from_pretrained(str(where), **offline_kwargs(where))
        d = int(cfg.hidden_size)
        inner = getattr(cfg, "intermediate_size", None) or getattr(cfg, "n_inner", None) or 4 * d
        return {"model_dim": d, "num_layers": int(cfg.num_hidden_layers), "ffn_inner_dim": int(inner),
                "vocab_size": int(cfg.vocab_size)}
    model = load_model_config(path)
    return {"model_dim": model.model_dim, "num_layers": model.num_layers,
            "ffn_inner_dim": model.ffn_inner_dim, "vocab_size": model.vocab_size}


def _sae_shape(run_dir: Path, config: dict[str, Any], artifacts: dict[str, Any]) -> tuple[int, int]:
    """``(n_latents, k)`` of the run's SAE: from its file when recorded, else config.yaml."""
    sae_path = artifacts.get("sae")
    if artifacts.get("sae_source") == "saelens":  # its latents were checked equal to sae.n_latents
        return int(config["sae"]["n_latents"]), int(artifacts["sae_k"])
    if sae_path and Path(sae_path).is_file():
        # mmap: only the shapes are needed, not 32768 x 768 weights in memory.
        state = torch.load(sae_path, map_location="cpu", weights_only=True, mmap=True)
        return int(state["encoder.weight"].shape[0]), int(state["activation_state_dict"]["k"])
    sae = config.get("sae", {})
    if not _sae_trained_here(str(sae.get("source", ""))):
        raise missing_artifact(run_dir, "sae", "its SAE size cannot be read; rerun it with the current runtime")
    return int(sae["n_latents"]), int(sae["k"])


def _sae_trained_here(source: str) -> bool:
    from cocomix.runtime.concept_artifacts import SAE_SOURCES

    return source in SAE_SOURCES and bool(SAE_SOURCES.get(source).factory.trained_here)


def run_teacher_cost(run_dir: Path, config: dict[str, Any], artifacts: dict[str, Any]) -> TeacherCost | None:
    """The teacher work of one run, or ``None`` when it has no teacher."""
    concepts = dict(config.get("concepts") or {})
    variant = str(concepts.get("variant", "code"))
    objective = str((config.get("objective") or {}).get("name", "ntp"))
    source = _source_contract(concepts, run_dir)
    if concepts.get("name", "none") == "none":
        if not _objective_needs_teacher(objective):
            return None
        mode = "forward"
    elif source.teacher_flops is None:
        return None
    else:
        mode = source.teacher_flops
    if "teacher" not in artifacts:
        raise missing_artifact(run_dir, "teacher", "its teacher size cannot be read; rerun it with the current runtime")
    shape = _teacher_shape(Path(artifacts["teacher"]), artifacts.get("teacher_source"))
    layer = int(artifacts.get("teacher_layer", (config.get("teacher") or {}).get("layer", 0)))
    n_latents, k = (0, 0) if not source.sae or mode == "forward" else _sae_shape(run_dir, config, artifacts)
    return TeacherCost(**shape, layer=layer, mode=mode, sae_latents=n_latents, sae_k=k,
                       attribution_dense=variant == "paper")


def _source_contract(concepts: dict[str, Any], run_dir: Path) -> ConceptSourceContract:
    """The contract of the run's concept source, or of the source it serves (``counted_as``)."""
    from cocomix.registry import CONCEPT_SOURCES
    from cocomix.runtime.builtins import load_builtins

    load_builtins()
    name = str(concepts.get("name", "none"))
    if name not in CONCEPT_SOURCES.names():
        raise CocomixError(
            f"{run_dir}: concept source {name!r} is not registered; import its plugin first"
        )
    entry = CONCEPT_SOURCES.get(name)
    contract: ConceptSourceContract = entry.contract
    if contract.counted_as is None:
        return contract
    fields = {f.name for f in dataclasses.fields(entry.config_cls)}
    options = entry.config_cls(**{k: v for k, v in concepts.items() if k in fields})
    return _source_contract({"name": contract.counted_as(options)}, run_dir)


def _objective_needs_teacher(objective: str) -> bool:
    from cocomix.registry import OBJECTIVES
    from cocomix.runtime.builtins import load_builtins

    load_builtins()
    if objective not in OBJECTIVES.names():
        raise CocomixError(f"objective {objective!r} is not registered; import its plugin first")
    return bool(OBJECTIVES.get(objective).contract.teacher)


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
