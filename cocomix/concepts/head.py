"""The student's concept head: predict concept logits, keep the TopK, compress to one vector.

Code-faithful to the official implementation (paper brief §1.3, §1.4, pseudo-code §1.7)::

    x, mu, std = LN(h)                       # parameter-free, per token over d, NOT detached
    z     = predictor(x - pre_bias)          # (..., C) concept logits, Linear d -> C with bias
    vals, idx = topk(z, k)                   # raw logits: no ReLU, negative values can survive
    c_hat = (W[:, idx] @ vals + b + pre_bias) * std + mu

- ``LN`` uses the *unbiased* std and divides by ``std + 1e-5`` (not ``sqrt(var + eps)``), as the
  official code does; ``mu`` and ``std`` are not detached, so the LM loss reaches ``h`` through
  the denormalisation as well.
- ``pre_bias`` is one learnable d-vector shared by the predictor input and the compressor output
  (an SAE-shaped encoder/decoder on the student's own residual stream, §1.4).
- The kept values are the raw logits, so gradients from both the concept CE and the LM loss flow
  into the predictor through them (§1.4, §5.4 item 4).
- The compressor is stored as ``nn.Linear(C, d)`` (weight ``(d, C)``, the official state-dict
  layout) but applied as a *gather* of the k live columns weighted by their logits
  (``embedding_bag``), never as a dense ``C x d`` matmul over a vector with k non-zeros (DESIGN
  "The model"; brief §6.2). ``embedding_bag`` also avoids materialising the ``(..., k, d)``
  gathered columns.

"Active" parameters (brief §3): base + (C + K)·d, i.e. the predictor plus only the k compressor
columns a token uses; ``inactive_parameter_count()`` reports the other ``(C - k)·d``.

Without compressor (``compress=False``; "concept prediction only", brief §2.7 / Fig. 6d) the head
is ``pre_bias`` + predictor and returns ``(z, None)``: the concept logits are an auxiliary
training output that no later computation reads, so every head parameter is *inactive*
(``inactive_parameter_count()`` is the whole head), matching Fig. 6d, which counts the
prediction-only model like NTP (53M) rather than like CoCoMix (69M). ``pre_bias`` is kept (it is
then redundant with the predictor bias) so the head is exactly CoCoMix's minus its compressor.

Steering (brief §2.9, paper Fig. 5): ``head.steer = (concept_id, scale)`` multiplies that logit
by ``scale`` before the TopK (the brief leaves "before or after TopK" unconfirmed; before is the
reading that can switch a concept on).

Plain torch only (method layer): no fairseq2, no Hydra.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cocomix.registry import CocomixError

LN_EPS = 1e-5
"""Added to the (unbiased) std, as in the official ``LN`` helper (brief §1.3)."""


class NormalInitLinear(nn.Linear):
    """``nn.Linear`` initialised N(0, init_std) with a zero bias.

    The init lives in ``reset_parameters`` because fairseq2 re-runs it per module when it
    materialises a meta-device model; ``nn.Linear``'s own Kaiming init would otherwise win.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        init_std: float = 0.02,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.init_std = init_std  # before super().__init__, which calls reset_parameters()
        super().__init__(in_features, out_features, bias=True, device=device, dtype=dtype)

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, mean=0.0, std=self.init_std)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


def layer_norm_stats(h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(x, mu, std)``: parameter-free LN over the last dim with the unbiased std (brief §1.3)."""
    mu = h.mean(dim=-1, keepdim=True)
    std = h.std(dim=-1, keepdim=True)  # unbiased (correction=1), as torch.std's default
    return (h - mu) / (std + LN_EPS), mu, std


class ConceptHead(nn.Module):
    """Predictor d -> C, TopK(k), compressor C -> d, shared ``pre_bias``, LN statistics in/out."""

    prediction_field = "concept_logits"
    """The ``ModelOutput`` field the model stores this head's first output in."""

    compressor: NormalInitLinear | None

    steer: tuple[int, float] | None
    """``(concept_id, scale)``: multiply that concept logit by ``scale`` before the TopK (the
    returned ``z`` is the steered one, i.e. what the TopK saw). Inference only; ``None`` = off."""

    def __init__(
        self,
        model_dim: int,
        num_concepts: int,
        topk: int,
        init_std: float = 0.02,
        *,
        compress: bool = True,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not 1 <= topk <= num_concepts:
            raise CocomixError(
                f"k={topk} must be in 1..{num_concepts} (the number of concepts); "
                f"set model.concept_topk accordingly"
            )
        self.model_dim = model_dim
        self.num_concepts = num_concepts
        self.topk = topk
        self.init_std = init_std
        self.pre_bias = nn.Parameter(torch.empty(model_dim, device=device, dtype=dtype))
        self.predictor = NormalInitLinear(
            model_dim, num_concepts, init_std=init_std, device=device, dtype=dtype
        )
        # Weight (d, C) as in the official state dict; used only through column gathers.
        compressor = None
        if compress:
            compressor = NormalInitLinear(
                num_concepts, model_dim, init_std=init_std, device=device, dtype=dtype
            )
        self.register_module("compressor", compressor)
        self.steer = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """This module's own parameter (the children initialise themselves): ``pre_bias = 0``."""
        nn.init.zeros_(self.pre_bias)

    def set_concept_scale(self, concept_id: int | None, scale: float = 1.0) -> None:
        """Steer one concept (``None`` switches steering off); see ``steer``."""
        if concept_id is None:
            self.steer = None
            return
        if not 0 <= concept_id < self.num_concepts:
            raise CocomixError(
                f"concept id {concept_id} is outside 0..{self.num_concepts - 1}"
            )
        self.steer = (int(concept_id), float(scale))

    def inactive_parameter_count(self) -> int:
        """Compressor weights a token does not use: ``(C - k)·d`` (brief §3 "active").

        Without compressor nothing the LM computes reads the head, so all of it is inactive.
        """
        if self.compressor is None:
            return sum(p.numel() for p in self.parameters())
        return (self.num_concepts - self.topk) * self.model_dim

    def predict(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(z, mu, std)``: concept logits (..., C) and the LN statistics of ``h``."""
        x, mu, std = layer_norm_stats(h)
        z = self.predictor(x - self.pre_bias)
        if self.steer is not None:
            concept_id, scale = self.steer
            # Out of place, so autograd and the caller's tensors are untouched.
            factor = torch.ones(self.num_concepts, device=z.device, dtype=z.dtype)
            factor[concept_id] = scale
            z = z * factor
        return z, mu, std

    def compress(self, values: Tensor, indices: Tensor) -> Tensor:
        """``W[:, indices] @ values + b``: (..., k) values and indices -> (..., d).

        ``embedding_bag`` (sum mode with per-sample weights) gathers the k columns of W
        (rows of W^T) and sums them weighted by the logits in one kernel; gradients reach both
        the weights and the values, and no ``(..., k, d)`` intermediate is materialised.
        """
        if self.compressor is None:
            raise CocomixError(
                "this concept head was built without compressor (model.concept_compress=false)"
            )
        lead = values.shape[:-1]
        k = values.size(-1)
        # Rows of a contiguous W^T: gathering strided columns of W directly is several times
        # slower (measured on CPU). The transpose copy is O(C·d) memory traffic, no FLOPs, and
        # its backward is the transpose of the (dense, as for any parameter) weight gradient.
        columns = self.compressor.weight.t().contiguous()
        out = F.embedding_bag(
            indices.reshape(-1, k),
            columns,
            # Under autocast the logits may be bf16 while W is fp32: compute in W's dtype.
            per_sample_weights=values.reshape(-1, k).to(self.compressor.weight.dtype),
            mode="sum",
        )
        return out.view(*lead, self.model_dim) + self.compressor.bias

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor | None]:
        """``h`` (..., d) -> ``(z (..., C), c_hat (..., d))``; ``c_hat`` is at ``h``'s scale.

        Without compressor: ``(z, None)`` (no TopK either; nothing would read it).
        """
        z, mu, std = self.predict(h)
        if self.compressor is None:
            return z, None
        values, indices = torch.topk(z, self.topk, dim=-1, sorted=False)
        compressed = self.compress(values, indices)
        c_hat = (compressed + self.pre_bias) * std + mu
        return z, c_hat

    def extra_repr(self) -> str:
        return (
            f"model_dim={self.model_dim}, num_concepts={self.num_concepts}, topk={self.topk}, "
            f"compress={self.compressor is not None}"
        )
