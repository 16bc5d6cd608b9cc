"""``CocoMixLM``: a GPT-2 style causal LM whose block stack is split at the insert layer.

``h = blocks[:L](embed(x))``; an optional concept head turns ``h`` into concept logits and a
continuous concept ``c_hat``; the mixer turns ``(h, c_hat)`` into the sequence the upper blocks
``blocks[L:]`` see; the mixer then picks the positions that feed the final LayerNorm and the tied
LM head (paper brief §1.4-1.5). With the ``none`` mixer and no head this is exactly GPT-2.

``TransformerLM`` and ``StandardTransformerLMDecoder`` are ``@final`` in fairseq2 0.8.1, so the
decoder is composed here from fairseq2's layer classes and the model subclasses ``CausalLM``.
All blocks live in one ``layers`` list (global indices), so the state dict does not depend on
``insert_layer``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from fairseq2.models.clm import CausalLM
from fairseq2.models.transformer import AttentionBiasCache, TransformerFrontend
from fairseq2.models.transformer_lm import TransformerLMDecoderLayer
from fairseq2.nn import BatchLayout, IncrementalStateBag, LayerNorm, Projection
from fairseq2.nn.functional import cross_entropy
from torch import Tensor
from torch.nn import Module, ModuleList

from cocomix.mixers import Mixer
from cocomix.models.config import CocoLMConfig
from cocomix.registry import MIXERS, CocomixError
from cocomix.types import ModelOutput


class CocoMixLM(CausalLM):
    """GPT-2 split at ``config.insert_layer`` with a pluggable mixer and an optional concept head.

    Concept-head protocol: ``model.concept_head`` is a ``Module`` whose ``forward(h)`` returns
    ``(prediction (..., T, *), c_hat (..., T, d) or None)`` per position (the factory builds
    ``cocomix.concepts.head.ConceptHead`` or ``cocomix.concepts.hidden_head.HiddenStateHead``;
    ``c_hat`` is None for a head without compressor). Its class attribute ``prediction_field``
    names the ``ModelOutput`` field that carries the prediction (default ``concept_logits``;
    ``concept_prediction`` for predicted hidden states). It may define
    ``inactive_parameter_count() -> int`` for ``count_parameters``. Being per-position, the head
    needs no cache: one new token during cached decoding gives one new head output.
    """

    layers: ModuleList
    concept_head: Module | None

    def __init__(
        self,
        config: CocoLMConfig,
        decoder_frontend: TransformerFrontend,
        layers: Sequence[TransformerLMDecoderLayer],
        layer_norm: LayerNorm,
        final_proj: Projection,
        *,
        mixer: Mixer | None = None,
        concept_head: Module | None = None,
    ) -> None:
        super().__init__(config.max_seq_len)
        self.config = config
        self.model_dim = config.model_dim
        self.insert_layer = config.insert_layer
        self.pad_idx = config.pad_idx
        self.decoder_frontend = decoder_frontend
        self.layers = ModuleList(layers)
        # Factory signature of every mixer: (mixer_config, model_dim) -> Mixer; None = defaults.
        self.mixer: Mixer = mixer if mixer is not None else MIXERS.build(
            config.mixer, None, config.model_dim
        )
        self.register_module("concept_head", concept_head)
        self.layer_norm = layer_norm
        self.final_proj = final_proj

    # -- the pieces, in order -------------------------------------------------------------------

    def embed(
        self,
        tokens: Tensor,
        layout: BatchLayout | None = None,
        *,
        state_bag: IncrementalStateBag | None = None,
    ) -> Tensor:
        """Token + position embeddings and embedding dropout: (B, T) -> (B, T, d)."""
        if layout is None:
            layout = BatchLayout.of(tokens)
        h, _ = self.decoder_frontend(tokens, layout, state_bag=state_bag)
        return h

    def run_blocks(
        self,
        h: Tensor,
        layout: BatchLayout,
        start: int,
        end: int,
        *,
        state_bag: IncrementalStateBag | None = None,
    ) -> Tensor:
        """Run blocks ``start..end-1`` (global indices); e.g. a teacher's layer-k residual is
        ``run_blocks(embed(x), layout, 0, k + 1)``."""
        # One bias cache per call: it is keyed by bias type only, and the lower and upper stacks
        # can see different lengths (interleaving doubles the upper one).
        bias_cache = AttentionBiasCache()
        for layer in self.layers[start:end]:
            h = layer(h, layout, bias_cache, state_bag=state_bag)
        return h

    def run_lower(
        self, h: Tensor, layout: BatchLayout, state_bag: IncrementalStateBag | None = None
    ) -> Tensor:
        """Blocks ``[0, insert_layer)``: returns the residual stream entering the concept layer."""
        return self.run_blocks(h, layout, 0, self.insert_layer, state_bag=state_bag)

    def predict_concept(self, h: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """``(prediction, c_hat)`` from the concept head, or ``(None, None)`` without one.

        ``prediction`` is the concept logits (SAE head) or the predicted teacher hidden states
        (hidden head); ``c_hat`` is None for a head without compressor."""
        if self.concept_head is None:
            return None, None
        concept_logits, concept = self.concept_head(h)
        return concept_logits, concept

    def mix(
        self, h: Tensor, layout: BatchLayout, concept: Tensor | None
    ) -> tuple[Tensor, BatchLayout]:
        """Apply the mixer; returns the upper blocks' input and its attention layout."""
        x = self.mixer.mix(h, concept)
        return x, self.upper_layout(layout)

    def upper_layout(self, layout: BatchLayout) -> BatchLayout:
        """The layout of the upper blocks: the input's, with every length times the mixer's
        ``length_factor`` (positions were added at the input, so only lengths matter here)."""
        factor = self.mixer.length_factor
        if factor == 1:
            return layout
        seq_lens = [n * factor for n in layout.seq_lens]
        device = layout.position_indices.device
        if layout.packed:
            return BatchLayout((layout.width * factor,), seq_lens, packed=True, device=device)
        batch_size = len(layout.seq_lens)
        return BatchLayout(
            (batch_size, layout.width * factor),
            seq_lens if layout.padded else None,
            device=device,
        )

    def run_upper(
        self, h: Tensor, layout: BatchLayout, state_bag: IncrementalStateBag | None = None
    ) -> Tensor:
        """Blocks ``[insert_layer, num_layers)`` on the mixed sequence (``layout`` is its own)."""
        return self.run_blocks(h, layout, self.insert_layer, len(self.layers), state_bag=state_bag)

    def project(self, h: Tensor) -> Tensor:
        """Final LayerNorm and the tied LM head: (..., d) -> (..., V)."""
        return self.final_proj(self.layer_norm(h))

    # -- entry points ---------------------------------------------------------------------------

    def _run(
        self, seqs: Tensor, layout: BatchLayout, state_bag: IncrementalStateBag | None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Everything up to the LM head: ``(lm_input (..., T, d), hidden, head prediction)``."""
        h = self.embed(seqs, layout, state_bag=state_bag)
        h = self.run_lower(h, layout, state_bag)
        concept_logits, concept = self.predict_concept(h)
        x, x_layout = self.mix(h, layout, concept)
        x = self.run_upper(x, x_layout, state_bag)
        return self.mixer.select_lm_positions(x), h, concept_logits

    def forward_lm(self, tokens: Tensor) -> ModelOutput:
        """Plain-tensor entry for objectives: ``tokens`` (B, T) of full windows, no padding."""
        if tokens.ndim != 2:
            raise CocomixError(
                f"forward_lm expects tokens of shape (B, T), got {tuple(tokens.shape)}"
            )
        if tokens.size(1) > self.max_seq_len:
            raise CocomixError(
                f"sequence length {tokens.size(1)} exceeds the model's max_seq_len="
                f"{self.max_seq_len}: shorten train.seq_len or raise model.max_seq_len"
            )
        lm_input, hidden, prediction = self._run(tokens, BatchLayout.of(tokens), None)
        out = ModelOutput(logits=self.project(lm_input), hidden=hidden)
        if prediction is not None:
            field = getattr(self.concept_head, "prediction_field", "concept_logits")
            setattr(out, field, prediction)
        return out

    def forward(  # type: ignore[override]
        self,
        seqs: Tensor,
        seqs_layout: BatchLayout | None = None,
        targets: Tensor | None = None,
        *,
        state_bag: IncrementalStateBag | None = None,
        label_smoothing: float = 0.0,
        target_mask: Tensor | None = None,
        reduction: Literal["sum", "mean"] = "sum",
        return_logits: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor] | ModelOutput:
        """fairseq2's ``CausalLM`` contract: logits (B, T, V), or the cross-entropy against
        ``targets`` (``pad_idx`` and ``target_mask`` excluded), or ``(loss, logits)``.

        With ``state_bag`` (eval mode) this is one incremental-decoding step: ``seqs`` holds only
        the new tokens; the caller advances ``state_bag.increment_step_nr(T)`` afterwards.

        Without ``seqs_layout`` it is ``forward_lm(seqs)`` and returns a ``ModelOutput``: the way to
        reach ``forward_lm`` *through* a DDP/FSDP wrapper, whose own forward must run (FSDP
        gathers the root's sharded embeddings there); ``cocomix.runtime.units.DataParallelLM``
        relies on it.
        """
        if seqs_layout is None:
            if targets is not None or state_bag is not None:
                raise CocomixError("targets/state_bag need a seqs_layout (fairseq2 call style)")
            return self.forward_lm(seqs)
        lm_input, _, _ = self._run(seqs, seqs_layout, state_bag)
        logits = self.project(lm_input)
        if targets is None:
            return logits
        loss = cross_entropy(
            logits,
            targets,
            self.pad_idx,
            label_smoothing=label_smoothing,
            target_mask=target_mask,
            reduction=reduction,
        )
        return (loss, logits) if return_logits else loss

    def extra_repr(self) -> str:
        return (
            f"model_dim={self.model_dim}, insert_layer={self.insert_layer}, "
            f"max_seq_len={self.max_seq_len}, pad_idx={self.pad_idx}"
        )


def count_parameters(model: Module) -> tuple[int, int]:
    """``(total, active)`` parameter counts; a tied weight counts once.

    "Active" follows the paper brief §3: base + (C + K)·d, i.e. of the concept compressor only the
    K columns a token uses count. The concept head reports what it does not use per token through
    ``inactive_parameter_count()`` (its ``(C - K)·d`` compressor columns; the whole head when it
    has no compressor, since then no next-token prediction reads it: Fig. 6d counts "concept
    prediction only" like NTP); without a head, active == total.
    """
    inner = getattr(model, "module", model)  # unwrap DDP-style wrappers
    total = sum(p.numel() for p in inner.parameters())
    head = getattr(inner, "concept_head", None)
    inactive_fn = getattr(head, "inactive_parameter_count", None)
    inactive = int(inactive_fn()) if callable(inactive_fn) else 0
    return total, total - inactive
