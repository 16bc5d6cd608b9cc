"""Register ``cocomix_lm`` as a fairseq2 model family, with every ``ARCHS`` entry as an arch.

Call ``register_cocomix_lm(container)`` from ``init_fairseq2(extras=...)``, from a recipe's
``register(container)``, or from a ``fairseq2.extension`` entry point. fairseq2 can then build the
model by name, e.g. through a recipe's ``ModelSection(family="cocomix_lm", arch="tiny",
config_overrides={"num_layers": 3})`` or ``get_cocomix_lm_hub().create_new_model(config)``.

Archs are read from ``cocomix.registry.ARCHS`` when this function runs: plugin modules that add
archs must be imported before it.
"""

from __future__ import annotations

from typing import Any

from fairseq2.composition import register_model_family
from fairseq2.error import NotSupportedError
from fairseq2.models import ModelHubAccessor
from fairseq2.models.utils.ac import apply_layerwise_ac
from fairseq2.models.utils.fsdp import apply_layerwise_fsdp
from fairseq2.nn.fsdp import FSDPWrapper
from fairseq2.runtime.config_registry import ConfigRegistrar
from fairseq2.runtime.dependency import DependencyContainer
from torch.nn import Module

import cocomix.models.archs  # noqa: F401  (fills ARCHS with the built-in presets)
from cocomix.models.config import CocoLMConfig
from cocomix.models.factory import create_cocomix_lm
from cocomix.models.model import CocoMixLM
from cocomix.registry import ARCHS

COCOMIX_LM_FAMILY = "cocomix_lm"


def register_cocomix_lm(container: DependencyContainer) -> None:
    """Register the family and one fairseq2 arch per ``ARCHS`` entry whose config is ours."""
    register_model_family(
        container,
        COCOMIX_LM_FAMILY,
        CocoMixLM,
        CocoLMConfig,
        factory=create_cocomix_lm,  # fairseq2 calls factory(config) under its device/dtype context
        compiler=compile_cocomix_lm,
        fsdp_applier=apply_fsdp_to_cocomix_lm,
        layerwise_ac_applier=apply_ac_to_cocomix_lm,
    )
    arch = ConfigRegistrar(container, CocoLMConfig)
    for entry in ARCHS:
        if isinstance(entry.config_cls, type) and issubclass(entry.config_cls, CocoLMConfig):
            # The provider is called on every lookup, so each caller gets a fresh config.
            arch(entry.name)(entry.default_config)


def compile_cocomix_lm(model: CocoMixLM, *args: Any, **kwargs: Any) -> None:
    """``ModelSection(compile=True)``: compile block by block (as fairseq2 does for its LMs).

    Static shapes unless the recipe asks otherwise: with an interleaving mixer the upper blocks
    see 2T positions where the lower ones see T, and the automatic dynamic shapes dynamo would
    then pick trace the length as a symbol, which fairseq2's SDPA passes on as
    ``is_causal=(q_len == k_len)``, a symbolic bool that breaks the graph at every attention
    call (8 breaks in 4 CoCoMix steps, measured). Static shapes compile each length once.
    """
    if kwargs.get("dynamic") is None:
        kwargs["dynamic"] = False
    for layer in model.layers:
        layer.compile(*args, **kwargs)


def apply_fsdp_to_cocomix_lm(model: CocoMixLM, granularity: str, wrapper: FSDPWrapper) -> Module:
    """FSDP unit per block; the embeddings, tied head, concept head and mixer stay in the root
    unit (the concept head is called once per forward, between the two block stacks)."""
    if granularity != "layer":
        raise NotSupportedError(
            f"cocomix_lm supports FSDP granularity 'layer' only, not {granularity!r}"
        )
    apply_layerwise_fsdp(model.layers, wrapper)
    return model


def apply_ac_to_cocomix_lm(model: CocoMixLM, every_nth_layer: int) -> Module:
    """Activation checkpointing of every n-th block."""
    apply_layerwise_ac(model.layers, every_nth_layer)
    return model


get_cocomix_lm_hub = ModelHubAccessor(COCOMIX_LM_FAMILY, CocoMixLM, CocoLMConfig)
"""``get_cocomix_lm_hub()``: fairseq2's hub for this family (needs ``init_fairseq2`` with
``register_cocomix_lm`` as an extra)."""
