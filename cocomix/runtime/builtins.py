"""Import every built-in component so the registries are complete before a recipe is read."""

from __future__ import annotations

import importlib

BUILTIN_MODULES: tuple[str, ...] = (
    "cocomix.models.archs",
    "cocomix.mixers",
    "cocomix.objectives.ntp",
    "cocomix.objectives.cocomix",
    "cocomix.objectives.kd",
    "cocomix.objectives.pause",
    "cocomix.objectives.concept_prediction_only",
    "cocomix.objectives.concept_mixing_only",
    "cocomix.objectives.hidden_state_prediction",
    "cocomix.concepts.none",
    "cocomix.concepts.sources",
    "cocomix.concepts.cached",
    "cocomix.concepts.latent_topics",
    "cocomix.data.corpora",
    "cocomix.data.tokenizers",
    "cocomix.data.gpt2_bpe",
    "cocomix.data.hf_tokenizer",
)


def load_builtins() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
