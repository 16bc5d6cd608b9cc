"""Concept-head kinds: the ``model.concept_head`` registry (``CONCEPT_HEADS``).

A kind says, from the model config alone (any object with ``CocoLMConfig``'s fields), whether
the model has such a head, which sizes it needs, how to build it and what it costs in FLOPs.
Built-ins: ``sae`` (concept logits over the SAE's latents, TopK, compressor; paper §2.2,
``concepts/head.py``) and ``hidden`` (an MLP predicting the teacher's hidden state, Fig. 6b,
``concepts/hidden_head.py``). A plugin kind subclasses ``ConceptHeadKind`` and registers with
``@CONCEPT_HEADS.register("name")``.

Plain torch only (method layer).
"""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import nn

from cocomix.concepts.head import ConceptHead
from cocomix.concepts.hidden_head import HiddenStateHead
from cocomix.registry import CocomixError, Registry

CONCEPT_HEADS: Registry[Any] = Registry("concept_heads", key="model.concept_head")


class ConceptHeadKind(abc.ABC):
    """The rules of one head kind; its methods are static (a kind has no state)."""

    sized_by_teacher: bool = False
    """The head's output width is the teacher's hidden size (``model.teacher_dim``), which the
    run sets from the teacher it loads; otherwise it is ``model.num_concepts``."""

    how_to_size: str = ""
    """How a user gives the head a width, for "a mixer reads c_hat but there is no head"."""

    @staticmethod
    @abc.abstractmethod
    def present(config: Any) -> bool:
        """Whether ``config`` builds this head (a zero width means no head)."""

    @staticmethod
    @abc.abstractmethod
    def validate(config: Any) -> None:
        """Raise ``CocomixError`` for sizes this head cannot be built with."""

    @staticmethod
    @abc.abstractmethod
    def build(config: Any, *, device: torch.device | None, dtype: torch.dtype | None) -> nn.Module:
        """The head for ``config`` (only called when ``present``)."""

    @staticmethod
    @abc.abstractmethod
    def flops(config: Any, *, dense_compressor: bool) -> dict[str, float]:
        """Forward matmul FLOPs per position: ``concept_predictor`` and ``concept_compressor``."""


def head_kind(config: Any) -> type[ConceptHeadKind]:
    """The kind ``config.concept_head`` names."""
    name = str(getattr(config, "concept_head", "sae"))
    if name not in CONCEPT_HEADS:
        raise CocomixError(
            f"model.concept_head={name!r}; choose one of {', '.join(CONCEPT_HEADS.names())} (or "
            f"register a kind with @CONCEPT_HEADS.register(...) in a plugin)"
        )
    kind: type[ConceptHeadKind] = CONCEPT_HEADS.get(name).factory
    return kind


@CONCEPT_HEADS.register("sae")
class SAEConceptHead(ConceptHeadKind):
    """Logits over the SAE's ``num_concepts`` latents, TopK ``concept_topk``, compressor back to
    d (paper §2.2, Eq. 2-3; brief §1.3-1.4)."""

    how_to_size = (
        "model.num_concepts=0 builds no concept head; set model.num_concepts (the paper uses "
        "32768) or choose mixer=none or mixer=pause"
    )

    @staticmethod
    def present(config: Any) -> bool:
        return int(config.num_concepts) > 0

    @staticmethod
    def validate(config: Any) -> None:
        if config.num_concepts > 0:
            if config.concept_topk == 0:
                raise CocomixError(
                    "model.concept_topk=0 keeps no concept; choose 1..num_concepts (paper: 32)"
                )
            if config.concept_topk > config.num_concepts:
                raise CocomixError(
                    f"k={config.concept_topk} is larger than the number of concepts "
                    f"({config.num_concepts}); lower model.concept_topk"
                )

    @staticmethod
    def build(config: Any, *, device: torch.device | None, dtype: torch.dtype | None) -> nn.Module:
        return ConceptHead(config.model_dim, config.num_concepts, config.concept_topk,
                           init_std=config.init_std, compress=config.concept_compress,
                           device=device, dtype=dtype)

    @staticmethod
    def flops(config: Any, *, dense_compressor: bool) -> dict[str, float]:
        d, concepts = config.model_dim, config.num_concepts
        parts = {"concept_predictor": 2.0 * d * concepts}
        if config.concept_compress:
            # Our compressor gathers the k live columns; the official code multiplies densely.
            width = concepts if dense_compressor else config.concept_topk
            parts["concept_compressor"] = 2.0 * d * width
        return parts


@CONCEPT_HEADS.register("hidden")
class HiddenHead(ConceptHeadKind):
    """A 2-layer MLP predicting the teacher's hidden state (width ``teacher_dim``), compressed
    back to d (Fig. 6b; brief §2.4)."""

    sized_by_teacher = True
    how_to_size = (
        "model.teacher_dim=0 builds no hidden-state head; set model.teacher_dim to the teacher's "
        "hidden size"
    )

    @staticmethod
    def present(config: Any) -> bool:
        return int(config.teacher_dim) > 0

    @staticmethod
    def validate(config: Any) -> None:
        if config.num_concepts > 0:
            raise CocomixError(
                f"model.concept_head=hidden predicts teacher hidden states, not concepts, but "
                f"model.num_concepts={config.num_concepts}; set model.num_concepts=0"
            )

    @staticmethod
    def build(config: Any, *, device: torch.device | None, dtype: torch.dtype | None) -> nn.Module:
        return HiddenStateHead(config.model_dim, config.teacher_dim, config.concept_mlp_hidden,
                               init_std=config.init_std, compress=config.concept_compress,
                               device=device, dtype=dtype)

    @staticmethod
    def flops(config: Any, *, dense_compressor: bool) -> dict[str, float]:
        d, d_con = config.model_dim, int(config.teacher_dim)
        inner = int(getattr(config, "concept_mlp_hidden", 0)) or 4 * d
        parts = {"concept_predictor": 2.0 * (d * inner + inner * d_con)}
        if config.concept_compress:
            parts["concept_compressor"] = 2.0 * d_con * d
        return parts


__all__ = ["CONCEPT_HEADS", "ConceptHeadKind", "HiddenHead", "SAEConceptHead", "head_kind"]
