"""Registered concept sources: what an objective gets from the frozen teacher (and SAE) per batch.

- ``attribution``: K_attr concept labels per position by attribution (paper Eq. 1; brief §1.2),
  ``variant="code"`` (post-TopK activations, the official code) or ``"paper"`` (pre-activations).
- ``activation``: K_attr labels by SAE activation value (Fig. 6a's "Activation" arm; brief §2.5).
- ``teacher_hidden``: the teacher's hidden states themselves, for direct hidden-state prediction
  (Fig. 6b; brief §2.4).

Every source receives the student's *input* tokens (B, T), the same window the student sees (the
official code runs GPT-2 on the student's 1024-token ``input_ids``), and returns per-position
targets aligned with them. Teacher and SAE are frozen here (eval mode, no parameter gradients),
run without autocast (the official teacher runs in fp32, brief §1.7), and under ``no_grad`` except
for the one gradient attribution needs.

Factories are called as ``CONCEPT_SOURCES.build(name, config, SourceContext(...))``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from cocomix.concepts.attribution import (
    VARIANTS,
    activation_labels,
    attribution_labels,
    teacher_grad,
)
from cocomix.concepts.dictionary import ConceptDictionary
from cocomix.concepts.sae import layer_norm_no_affine
from cocomix.contracts import ConceptSourceContract
from cocomix.registry import CONCEPT_SOURCES, CocomixError
from cocomix.types import TeacherLM


@dataclass
class ConceptBatch:
    """Targets for one batch; fields a source does not produce are ``None``."""

    labels: Tensor | None = None
    """(B, T, k_attr) int64 concept ids (attribution / activation / cached)."""
    hidden: Tensor | None = None
    """(B, T, d_teacher) teacher hidden states (teacher_hidden)."""


@dataclass
class SourceContext:
    """What a source factory gets besides its config."""

    teacher: TeacherLM | None
    """``None`` only for sources whose contract says ``teacher=False`` (``latent_topics``)."""
    sae: ConceptDictionary | None
    """``None`` is allowed only for sources that need no SAE (``teacher_hidden``)."""
    layer: int
    """Teacher layer the SAE reads: the residual after block ``layer`` (0-based)."""
    tokenizer: Any = None
    """The run's tokenizer (``vocab_size``, ``eos_id``, ``encode``, ``decode``), for sources that
    read the token ids themselves."""
    corpus: Any = None
    """The run's corpus, for sources whose labels follow its generative rule (``latent_topics``)."""


class ConceptSource(abc.ABC):
    """Base class: ``targets(tokens) -> ConceptBatch`` for the student's input tokens.

    What the runtime must build for a source (teacher, SAE), how its teacher work is counted in
    training FLOPs and the size of a label space that is not the SAE's latents are its
    ``contract`` (``cocomix.contracts.ConceptSourceContract``), read before anything is built.
    """

    contract: ConceptSourceContract = ConceptSourceContract()

    num_concepts: int
    """n, the size of the label space (SAE latents); 0 when the source gives no labels."""

    @abc.abstractmethod
    def targets(self, tokens: Tensor, *, sample_index: Tensor | None = None) -> ConceptBatch:
        """Targets for ``tokens`` (B, T); labels/hidden align with the T input positions.

        ``sample_index`` (B,) names each window's global sample index (``TokenBatch``) for
        sources that look labels up in a precomputed cache; the online sources ignore it.
        """


def _freeze(obj: object) -> None:
    """Eval mode and ``requires_grad=False`` for whatever parameters ``obj`` has."""
    if isinstance(obj, nn.Module):
        obj.eval()
        obj.requires_grad_(False)
        return
    if callable(getattr(obj, "eval", None)):
        obj.eval()  # type: ignore[attr-defined]
    params = getattr(obj, "parameters", None)
    if callable(params):
        for p in params():
            p.requires_grad_(False)


def _no_autocast(tokens: Tensor) -> torch.autocast:
    return torch.autocast(device_type=tokens.device.type, enabled=False)


class _TeacherSource(ConceptSource):
    """Shared checks and freezing for sources that read a teacher layer (and maybe an SAE)."""

    def __init__(self, context: SourceContext) -> None:
        teacher, sae, layer = context.teacher, context.sae, context.layer
        if teacher is None:
            raise CocomixError(f"concept source {type(self).__name__} needs a teacher; none was given")
        if not 0 <= layer < teacher.num_layers:
            raise CocomixError(
                f"concept layer {layer} is outside the teacher's layers 0..{teacher.num_layers - 1}"
            )
        if self.contract.sae:
            if sae is None:
                raise CocomixError(
                    f"concept source {type(self).__name__} needs an SAE; none was given"
                )
            if sae.d_model != teacher.model_dim:
                raise CocomixError(
                    f"SAE width {sae.d_model} does not match the teacher's hidden size "
                    f"{teacher.model_dim}; use an SAE trained on this teacher (recipe sae/train)"
                )
            _freeze(sae)
        _freeze(teacher)
        self.teacher, self.sae, self.layer = teacher, sae, layer

    def _require_sae(self) -> ConceptDictionary:
        assert self.sae is not None
        return self.sae

    def _check_k_attr(self, k_attr: int, limit: int, what: str) -> None:
        if k_attr < 1:
            raise CocomixError(f"concepts.k_attr must be >= 1, got {k_attr}")
        if k_attr > limit:
            raise CocomixError(
                f"K_attr={k_attr} is larger than the SAE's {what}; lower concepts.k_attr"
            )


@dataclass
class AttributionConfig:
    k_attr: int = 4
    """K_attr, labels per position (paper: 4)."""
    variant: str = "code"
    """``code`` (post-TopK activations, official code) or ``paper`` (pre-activations, Eq. 1)."""


@CONCEPT_SOURCES.register("attribution", AttributionConfig)
class AttributionSource(_TeacherSource):
    """Labels = top-K_attr attribution scores (brief §1.2 / §1.7)."""

    def __init__(self, config: AttributionConfig, context: SourceContext) -> None:
        super().__init__(context)
        sae = self._require_sae()
        if config.variant not in VARIANTS:
            raise CocomixError(
                f"unknown concepts.variant {config.variant!r}; use one of {', '.join(VARIANTS)}"
            )
        if config.variant == "code":
            self._check_k_attr(config.k_attr, sae.k, f"k={sae.k} active latents")
        else:
            self._check_k_attr(config.k_attr, sae.n_latents, f"n_latents={sae.n_latents}")
        self.config = config
        self.num_concepts = sae.n_latents

    def targets(self, tokens: Tensor, *, sample_index: Tensor | None = None) -> ConceptBatch:
        with _no_autocast(tokens):
            h, grad = teacher_grad(self.teacher, tokens, self.layer)
            with torch.no_grad():
                labels = attribution_labels(
                    self._require_sae(), h, grad, self.config.k_attr, self.config.variant
                )
        return ConceptBatch(labels=labels)


@dataclass
class ActivationConfig:
    k_attr: int = 4
    """Labels per position: the most active SAE latents."""


@CONCEPT_SOURCES.register("activation", ActivationConfig)
class ActivationSource(_TeacherSource):
    """Labels = top-K_attr SAE activations (Fig. 6a "Activation"); teacher forward only."""

    contract = ConceptSourceContract(teacher_flops="hidden")

    def __init__(self, config: ActivationConfig, context: SourceContext) -> None:
        super().__init__(context)
        sae = self._require_sae()
        self._check_k_attr(config.k_attr, sae.k, f"k={sae.k} active latents")
        self.config = config
        self.num_concepts = sae.n_latents

    def targets(self, tokens: Tensor, *, sample_index: Tensor | None = None) -> ConceptBatch:
        sae = self._require_sae()
        with _no_autocast(tokens), torch.no_grad():
            h = self.teacher.hidden_at(tokens, self.layer)
            labels = activation_labels(sae.encode(h.to(sae.dtype)), self.config.k_attr)
        return ConceptBatch(labels=labels)


@dataclass
class TeacherHiddenConfig:
    normalize: bool = True
    """LN-normalise h_con per token (no affine; the SAE's input normalisation, ``sae.LN``).

    The paper does not say (brief §2.4, unconfirmed). We default to normalising because raw
    residual norms vary by orders of magnitude across positions (GPT-2's first-token outliers), so
    an l2 target on raw states would be dominated by a few positions, and because it matches what
    the SAE-based sources see.
    """


@CONCEPT_SOURCES.register("teacher_hidden", TeacherHiddenConfig)
class TeacherHiddenSource(_TeacherSource):
    """Targets = teacher hidden states at ``layer`` (direct hidden-state prediction, Fig. 6b)."""

    contract = ConceptSourceContract(sae=False, teacher_flops="hidden")

    def __init__(self, config: TeacherHiddenConfig, context: SourceContext) -> None:
        super().__init__(context)
        self.config = config
        self.num_concepts = 0
        self.hidden_dim = context.teacher.model_dim

    def targets(self, tokens: Tensor, *, sample_index: Tensor | None = None) -> ConceptBatch:
        with _no_autocast(tokens), torch.no_grad():
            h = self.teacher.hidden_at(tokens, self.layer)
            if self.config.normalize:
                h = layer_norm_no_affine(h)[0]
        return ConceptBatch(hidden=h)
