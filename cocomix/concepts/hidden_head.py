"""The head for direct hidden-state prediction (paper Fig. 6b; brief §2.4).

The paper replaces CoCoMix's linear concept head M by "a two-layer MLP g" that predicts the
teacher's hidden state h_con from the student's h, and g(h) "is then compressed into a continuous
embedding for insertion", keeping the CoCoMix architecture. MLP width, activation, whether h_con
is normalised and the compression shape are [unconfirmed]. Our reading, chosen to be the analogue
of the SAE-concept head (``cocomix.concepts.head.ConceptHead``, brief §1.3-1.4) so that only the
prediction target differs between Fig. 6b's arms::

    x, mu, std = LN(h)                               # same parameter-free LN, unbiased std
    p     = W2 · GELU(W1 · (x - pre_bias) + b1) + b2 # (..., d_con) prediction of h_con
    c_hat = (W_c · p + b_c + pre_bias) * std + mu    # compressor d_con -> d, back to h's scale

- Same LN statistics in and out and the same shared ``pre_bias`` as the SAE head. The target is
  the ``teacher_hidden`` source's h_con, LN-normalised per token by default (its ``normalize``
  option), i.e. the normalised space the SAE reads, so both heads predict in a normalised space
  and denormalise with the student token's own statistics.
- No TopK: g's output is dense (TopK belongs to concept *logits*); the compressor is therefore
  used in full and every head parameter is active.
- GELU with the tanh approximation (GPT-2's MLP activation); width ``mlp_hidden`` (0: 4·d, the
  width of the student's own MLP blocks). All linears N(0, init_std), zero biases, like the SAE
  head.
- ``compress=False`` drops the compressor (prediction without mixing) and returns
  ``(p, None)``; the whole head is then inactive, as for the SAE head.

``prediction_field = "concept_prediction"``: the model reports ``p`` as
``ModelOutput.concept_prediction``, never as ``concept_logits``, so an objective that expects
concept logits (``cocomix``) fails clearly on this head instead of treating d_con numbers as logits.

Plain torch only (method layer). Being per position, the head keeps no state: KV-cache decoding
with it is exact like with the SAE head.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cocomix.concepts.head import NormalInitLinear, layer_norm_stats
from cocomix.registry import CocomixError


class HiddenStateHead(nn.Module):
    """2-layer MLP d -> d_con predicting h_con, compressor d_con -> d, LN statistics in/out."""

    prediction_field = "concept_prediction"
    """The ``ModelOutput`` field the model stores this head's first output in."""

    compressor: NormalInitLinear | None

    def __init__(
        self,
        model_dim: int,
        teacher_dim: int,
        mlp_hidden: int = 0,
        init_std: float = 0.02,
        *,
        compress: bool = True,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if model_dim <= 0 or teacher_dim <= 0:
            raise CocomixError(
                f"the hidden-state head needs positive widths, got model_dim={model_dim}, "
                f"teacher_dim={teacher_dim}; set model.teacher_dim to the teacher's hidden size"
            )
        if mlp_hidden < 0:
            raise CocomixError(f"mlp_hidden={mlp_hidden} must be >= 0 (0 = 4 * model_dim)")
        self.model_dim = model_dim
        self.teacher_dim = teacher_dim
        self.mlp_hidden = mlp_hidden or 4 * model_dim
        self.init_std = init_std
        self.pre_bias = nn.Parameter(torch.empty(model_dim, device=device, dtype=dtype))
        self.inner = NormalInitLinear(
            model_dim, self.mlp_hidden, init_std=init_std, device=device, dtype=dtype
        )
        self.activation = nn.GELU(approximate="tanh")
        self.outer = NormalInitLinear(
            self.mlp_hidden, teacher_dim, init_std=init_std, device=device, dtype=dtype
        )
        compressor = None
        if compress:
            compressor = NormalInitLinear(
                teacher_dim, model_dim, init_std=init_std, device=device, dtype=dtype
            )
        self.register_module("compressor", compressor)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """This module's own parameter (the children initialise themselves): ``pre_bias = 0``."""
        nn.init.zeros_(self.pre_bias)

    def inactive_parameter_count(self) -> int:
        """0 with the compressor (dense: a token uses all of it); the whole head without it."""
        if self.compressor is None:
            return sum(p.numel() for p in self.parameters())
        return 0

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor | None]:
        """``h`` (..., d) -> ``(prediction (..., d_con), c_hat (..., d) or None)``."""
        x, mu, std = layer_norm_stats(h)
        prediction = self.outer(self.activation(self.inner(x - self.pre_bias)))
        if self.compressor is None:
            return prediction, None
        c_hat = (self.compressor(prediction) + self.pre_bias) * std + mu
        return prediction, c_hat

    def extra_repr(self) -> str:
        return (
            f"model_dim={self.model_dim}, teacher_dim={self.teacher_dim}, "
            f"mlp_hidden={self.mlp_hidden}, compress={self.compressor is not None}"
        )
