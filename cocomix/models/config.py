"""``CocoLMConfig``: the sizes and options of one ``cocomix_lm`` model.

A plain dataclass with OmegaConf-friendly field types (int/float/bool/str/Optional), so the same
class types the Hydra ``model=`` group and fairseq2's model family (``cocomix_lm``). Named presets
live in ``cocomix.models.archs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from fairseq2.utils.validation import ValidationResult

import cocomix.mixers  # noqa: F401  (registers the built-in mixers validate() checks against)
from cocomix.concepts.head_kinds import head_kind
from cocomix.registry import MIXERS, CocomixError
"""``sae``: ``cocomix.concepts.head.ConceptHead``; ``hidden``: ``cocomix.concepts.hidden_head``."""


@dataclass
class CocoLMConfig:
    """A GPT-2 style decoder split at ``insert_layer`` (paper brief §1.5, §3)."""

    model_dim: int = 128
    num_layers: int = 4
    num_heads: int = 4
    ffn_inner_dim: int = 512
    """GPT-2 uses 4 * model_dim."""
    vocab_size: int = 8000
    max_seq_len: int = 256
    insert_layer: int = 2
    """0-based "before block i": the concept layer is the residual stream entering this block.
    0 mixes right after the embeddings, ``num_layers`` right before the final LayerNorm."""
    dropout_p: float = 0.0
    """Embedding, attention-weight and residual dropout (GPT-2 / the paper's code: 0.1)."""
    layer_norm_eps: float = 1e-5
    init_std: float = 0.02
    mixer: str = "none"
    """Name in ``cocomix.registry.MIXERS``."""
    pad_idx: Optional[int] = None
    """Token id ignored by the loss of ``forward(..., targets=...)``; GPT-2 has none."""
    num_concepts: int = 0
    """Size C of the concept head's vocabulary (the paper's SAE has 32768); 0 = no head."""
    concept_topk: int = 32
    """K: concept logits kept by the head's TopK before compression (paper: 32)."""
    concept_head: str = "sae"
    """Which concept head: ``sae`` (linear predictor over C SAE concepts, TopK, compressor; paper
    §2.2) or ``hidden`` (2-layer MLP predicting the teacher's hidden state, then a compressor
    d_con -> d; Fig. 6b, brief §2.4). ``sae`` exists when ``num_concepts > 0``, ``hidden`` when
    ``teacher_dim > 0``."""
    concept_compress: bool = True
    """Whether the head keeps its compressor (the part producing c_hat). Rule: a run sets it to
    ``mixer reads_concept or objective concept_compressor`` (their contracts), so "concept prediction only"
    (mixer none; Fig. 6d) has a head without compressor; a mixer that reads c_hat with
    ``concept_compress=false`` is refused."""
    teacher_dim: int = 0
    """d_con, width of the teacher hidden state the ``hidden`` head predicts (GPT-2 124M: 768)."""
    concept_mlp_hidden: int = 0
    """Inner width of the ``hidden`` head's MLP; 0 = 4 * model_dim."""

    def validate(self) -> ValidationResult:
        """Raise ``CocomixError`` naming the first problem; return an empty result otherwise.

        The return type makes the config a fairseq2 ``Validatable``: fairseq2 calls this when it
        applies ``config_overrides`` to an arch, so a bad override fails with our message.
        """
        for name in ("model_dim", "num_layers", "num_heads", "ffn_inner_dim", "vocab_size",
                     "max_seq_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise CocomixError(f"model.{name} must be a positive integer, but is {value!r}")
        if self.model_dim % self.num_heads != 0:
            raise CocomixError(
                f"model_dim={self.model_dim} is not divisible by num_heads={self.num_heads}: "
                f"choose a model_dim that is a multiple of num_heads"
            )
        if not 0 <= self.insert_layer <= self.num_layers:
            raise CocomixError(
                f"model.insert_layer={self.insert_layer} is outside the model "
                f"(model.num_layers={self.num_layers}): choose 0..{self.num_layers}"
            )
        if not 0.0 <= self.dropout_p < 1.0:
            raise CocomixError(f"dropout_p={self.dropout_p} must be in [0, 1)")
        if self.layer_norm_eps <= 0.0:
            raise CocomixError(f"layer_norm_eps={self.layer_norm_eps} must be positive")
        if self.init_std <= 0.0:
            raise CocomixError(f"init_std={self.init_std} must be positive")
        if self.pad_idx is not None and not 0 <= self.pad_idx < self.vocab_size:
            raise CocomixError(
                f"pad_idx={self.pad_idx} is not a token id (vocab_size={self.vocab_size})"
            )
        self._validate_concepts()
        return ValidationResult()

    @property
    def has_concept_head(self) -> bool:
        """Whether the factory builds a concept head (of kind ``concept_head``)."""
        return head_kind(self).present(self)

    def _validate_concepts(self) -> None:
        """The concept head's sizes and the mixer/head consistency (paper brief §1.4-1.5, §2.4)."""
        entry = MIXERS.get(self.mixer)  # raises UnknownNameError listing the known mixers
        kind = head_kind(self)  # refuses a kind nobody registered, listing the known ones
        if not isinstance(self.concept_compress, bool):
            raise CocomixError(
                f"model.concept_compress must be true or false, but is {self.concept_compress!r}"
            )
        for name in ("num_concepts", "concept_topk", "teacher_dim", "concept_mlp_hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise CocomixError(f"model.{name} must be a non-negative integer, but is {value!r}")
        kind.validate(self)
        # A mixer's contract says whether it reads c_hat; a plain-function factory without one
        # gets the default (reads none) and fails at the first forward instead
        # (Mixer._require_concept).
        if entry.contract.reads_concept:
            if not kind.present(self):
                raise CocomixError(f"mixer {self.mixer!r} mixes in predicted concepts, but {kind.how_to_size}")
            if not self.concept_compress:
                raise CocomixError(
                    f"mixer {self.mixer!r} mixes in the compressed concept, but "
                    f"model.concept_compress=false builds the head without compressor; set "
                    f"model.concept_compress=true or choose mixer=none"
                )

    @property
    def head_dim(self) -> int:
        return self.model_dim // self.num_heads
