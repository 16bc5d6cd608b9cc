"""Concept labels from a frozen teacher and SAE: attribution (paper Eq. 1) and activation.

Paper (brief §1.2, Eq. 1): ``a_t = c_pre_t ⊙ ∇_{c_t} [-log f_con(x_{t+1} | D(c_t), h_<t)]``
and the labels are the top ``K_attr = 4`` entries of ``a_t``. The official code differs (brief
§1.2 a-c, §5.4 items 1-2), and the default ``variant="code"`` follows the code:

- ``code``: ``a_{t,i} = c_{t,i} · <∇_{h_t} L, W_dec[:, i]>`` with the *post-TopK* activation c_t,
  so only the k active latents can score. ``L`` is the mean next-token CE over all T-1 positions
  and the gradient is taken w.r.t. the raw residual h_t, not through the SAE's LN and decoder; the
  LN scale the chain rule would add is a positive per-token scalar, so the ranking is unchanged.
  We compute the k dot products by gathering the k decoder columns: O(B·T·k·d) work and never a
  B×T×n tensor (the official code builds three dense B×T×32768 fp32 tensors).
- ``paper``: ``a = c_pre ⊙ (∇_{h} L @ W_dec)``, dense over all n latents, so non-activated
  concepts can score (the paper's stated motivation for using pre-activations).

Activation selection (Fig. 6a, brief §2.5): labels are the top-``K_attr`` latents by post-TopK
activation value; no gradient needed.

Top-k is on *signed* scores (largest positive first), as the code does. Two edge cases of the
official dense ``topk(attribute, 4)`` and what we do:

- Fewer than K_attr active latents with a positive score: in the dense tensor the zero scores of
  the ~n inactive latents outrank the negative active ones, so labels include arbitrary inactive
  ids. ``top_labels_sparse`` stays among the active latents (the least negative ones win). When at
  least K_attr active scores are positive the two agree (tested).
- The last position: its loss term does not exist, so its gradient is exactly zero and every
  score ties at 0. The official code still labels it (arbitrary ties) and trains on those labels;
  we keep that behaviour. Among ties ``torch.topk`` picks some active latents (in practice the
  most active ones, since ``encode`` sorts by value; not guaranteed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from cocomix.concepts.dictionary import ConceptDictionary
from cocomix.concepts.sae import SparseCode
from cocomix.registry import CocomixError
from cocomix.types import TeacherLM

VARIANTS: tuple[str, ...] = ("code", "paper")

GATHER_CHUNK_ELEMENTS = 1 << 24
"""Bound on the (tokens, k, d) gathered-column block built at once (64 MiB in fp32)."""


_IGNORE = -100  # cross_entropy target that contributes neither loss nor gradient


def teacher_grad(teacher: TeacherLM, tokens: Tensor, layer: int) -> tuple[Tensor, Tensor]:
    """``(h, ∂L/∂h)`` at the teacher's ``layer`` for ``tokens`` (B, T); both (B, T, d).

    ``L`` is the mean next-token cross-entropy over all B·(T-1) predicted positions (the official
    code's full-sequence loss, brief §1.2 step 2). Only ``∂L/∂h`` is computed:
    ``autograd.grad`` touches no parameter ``.grad`` (the official code accumulates GPT-2's
    parameter gradients every step and never zeroes them). Works inside ``torch.no_grad()``
    (not ``inference_mode``). The gradient at the last position is exactly zero because that
    position predicts nothing. One teacher forward: ``TeacherLM.logits`` hands us the residual
    after ``layer`` and continues from what we return.
    """
    if tokens.ndim != 2 or tokens.shape[1] < 2:
        raise CocomixError(
            f"attribution needs tokens of shape (B, T) with T >= 2, got {tuple(tokens.shape)}"
        )
    if torch.is_inference_mode_enabled():
        raise CocomixError(
            "attribution needs a gradient through the teacher; "
            "call it outside torch.inference_mode()"
        )
    residual: list[Tensor] = []

    def differentiate_here(h: Tensor) -> Tensor:
        # The frozen lower blocks built no graph (nothing there requires a gradient): the graph
        # starts at this residual, so only the upper blocks are differentiated.
        h = h.detach().requires_grad_(True)
        residual.append(h)
        return h

    with torch.enable_grad():
        logits = teacher.logits(tokens, layer, differentiate_here)
        # The last position predicts nothing: ignore it through its target instead of slicing
        # the logits, whose (B, T-1, V) copy and zero-filled slice gradient cost a fifth of
        # the extraction on CPU (docs/performance.md). Same mean over B·(T-1) positions.
        targets = F.pad(tokens[:, 1:], (0, 1), value=_IGNORE)
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=_IGNORE
        )
        (grad,) = torch.autograd.grad(loss, residual[0])
    h = residual[0]
    return h.detach(), grad


def _gather_dot(vectors: Tensor, indices: Tensor, rows: Tensor) -> Tensor:
    """``out[..., j] = <vectors[...], rows[indices[..., j]]>`` without an (..., n) tensor.

    :param vectors: (..., d).
    :param indices: (..., k) row ids into ``rows``.
    :param rows: (n, d) table (the decoder's columns as rows).
    """
    lead, k = indices.shape[:-1], indices.shape[-1]
    d = vectors.shape[-1]
    v = vectors.reshape(-1, d)
    idx = indices.reshape(-1, k)
    dtype = torch.promote_types(v.dtype, rows.dtype)
    out = torch.empty(idx.shape, dtype=dtype, device=v.device)
    step = max(1, GATHER_CHUNK_ELEMENTS // max(1, k * d))
    for start in range(0, idx.shape[0], step):
        stop = start + step
        cols = rows[idx[start:stop]].to(dtype)  # (chunk, k, d)
        out[start:stop] = torch.bmm(cols, v[start:stop, :, None].to(dtype)).squeeze(-1)
    return out.reshape(*lead, k)


def attribution_sparse(grad: Tensor, code: SparseCode, decoder_rows: Tensor) -> Tensor:
    """Code variant scores for the k active latents: ``c_{t,i} · <grad_t, W_dec[:, i]>``.

    :param grad: (..., d) gradient of the loss w.r.t. the teacher residual.
    :param code: the SAE's post-TopK code of that residual (values and indices (..., k)).
    :param decoder_rows: (n, d) latent directions (``ConceptDictionary.decoder_rows``); contiguous
        for TopKSAE's column-major decoder, so the gather is a fast row gather.
    :returns: (..., k) signed scores aligned with ``code.indices``.
    """
    dots = _gather_dot(grad, code.indices, decoder_rows)
    return code.values.to(dots.dtype) * dots


def attribution_dense_pre(grad: Tensor, pre_acts: Tensor, decoder_rows: Tensor) -> Tensor:
    """Paper variant (Eq. 1): ``c_pre ⊙ (grad @ W_dec)``, dense (..., n)."""
    return pre_acts * (grad.to(decoder_rows.dtype) @ decoder_rows.t())


def top_labels_sparse(scores: Tensor, indices: Tensor, k_attr: int) -> Tensor:
    """Ids of the ``k_attr`` largest signed scores among the active latents, (..., k_attr)."""
    if not 1 <= k_attr <= scores.shape[-1]:
        raise CocomixError(
            f"K_attr={k_attr} is larger than the SAE's k={scores.shape[-1]} active latents; "
            f"lower concepts.k_attr"
        )
    best = torch.topk(scores, k_attr, dim=-1).indices
    return indices.gather(-1, best)


def top_labels_dense(scores: Tensor, k_attr: int) -> Tensor:
    """Latent ids of the ``k_attr`` largest signed scores over all n latents, (..., k_attr)."""
    return torch.topk(scores, k_attr, dim=-1).indices


def activation_labels(code: SparseCode, k_attr: int) -> Tensor:
    """Fig. 6a "Activation" arm: the ``k_attr`` most active latents (post-TopK values)."""
    return top_labels_sparse(code.values, code.indices, k_attr)


def attribution_labels(
    sae: ConceptDictionary, h: Tensor, grad: Tensor, k_attr: int, variant: str = "code"
) -> Tensor:
    """Labels (..., k_attr) from the teacher residual ``h`` and its gradient, by ``variant``."""
    h = h.to(sae.dtype)
    if variant == "code":
        code = sae.encode(h)
        scores = attribution_sparse(grad, code, sae.decoder_rows)
        return top_labels_sparse(scores, code.indices, k_attr)
    if variant == "paper":
        return top_labels_dense(attribution_dense_pre(grad, sae.pre_activations(h), sae.decoder_rows), k_attr)
    raise CocomixError(f"unknown attribution variant {variant!r}; use one of {', '.join(VARIANTS)}")
