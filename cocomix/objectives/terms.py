"""Loss terms the registered objectives compose (plain torch).

- ``next_token_loss``: the LM term of every objective (paper Eq. 4, first term).
- ``concept_loss`` / ``concept_hit_rate``: CoCoMix's concept term (Eq. 2-4; brief §1.3).
- ``teacher_logits`` / ``kd_loss``: knowledge distillation, KL(teacher || student) (brief §2.2).
- ``hidden_state_loss``: direct hidden-state prediction, l1 / l2 / cosine (brief §2.4).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from cocomix.registry import CocomixError
from cocomix.types import TeacherLM


def next_token_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean shifted cross-entropy: ``logits[:, t]`` predicts ``targets[:, t]`` (Eq. 4, first term)."""
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())


def concept_loss(concept_logits: Tensor, labels: Tensor) -> Tensor:
    """L_concept = (1/K_attr) sum_{i in I} CE(z_t, i), averaged over positions (paper Eq. 2).

    ``concept_logits`` (B, T, C), ``labels`` (B, T, K_attr). Each label is a full C-way softmax
    cross-entropy, averaged over every position including the last, as the official code does
    (brief §1.3; the last position's labels come from a zero gradient, brief §1.2c).
    """
    logits = concept_logits.float().flatten(0, 1)  # (N, C)
    k_attr = labels.size(-1)
    # One log-softmax shared by the K_attr terms instead of K_attr separate cross-entropies.
    log_probs = logits.log_softmax(dim=-1)
    picked = log_probs.gather(1, labels.flatten(0, 1))  # (N, K_attr)
    return -picked.sum(dim=1).mean() / k_attr


@torch.no_grad()
def concept_hit_rate(concept_logits: Tensor, labels: Tensor, k: int) -> Tensor:
    """Fraction of the K_attr labels found among the student's top-k predicted concepts."""
    top = concept_logits.topk(k, dim=-1).indices  # (B, T, k)
    hits = (labels.unsqueeze(-1) == top.unsqueeze(-2)).any(dim=-1)  # (B, T, K_attr)
    return hits.float().mean()


@torch.no_grad()
def teacher_logits(teacher: TeacherLM, tokens: Tensor) -> Tensor:
    """M_con(. | x): the frozen teacher's (B, T, V) next-token logits on the student's inputs.

    Run without autocast, as the concept sources run the teacher (the
    official extractor is fp32, brief §1.7), so the targets do not depend on the student's
    mixed-precision setting.
    """
    with torch.autocast(device_type=tokens.device.type, enabled=False):
        return teacher.logits(tokens).float()


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """T^2 · KL(softmax(t/T) || softmax(s/T)), summed over the vocabulary, mean over positions.

    Forward KL, teacher -> student, over the full vocabulary (brief §2.2: KL(M_con(.|x) || M(.|x))).
    The paper states neither a temperature nor the averaging ([unconfirmed]): we average over the
    B·T positions like the LM term and default to T = 1. With T != 1 both distributions are
    softened by T and the term is multiplied by T^2 (Hinton et al. 2015), which keeps its gradient
    scale roughly independent of T; at T = 1 the factor is 1.
    """
    if temperature <= 0:
        raise CocomixError(f"KD temperature={temperature} must be > 0")
    if student_logits.shape != teacher_logits.shape:
        raise CocomixError(
            f"teacher logits {tuple(teacher_logits.shape)} do not match the student's "
            f"{tuple(student_logits.shape)}; teacher and student must share one vocabulary"
        )
    s = (student_logits.float() / temperature).flatten(0, -2).log_softmax(dim=-1)
    t = (teacher_logits.float() / temperature).flatten(0, -2).log_softmax(dim=-1)
    # kl_div(input=log q, target=log p, log_target=True) = sum p (log p - log q): KL(p || q).
    kl = F.kl_div(s, t, log_target=True, reduction="sum") / s.size(0)
    return kl * temperature**2


HIDDEN_LOSSES = ("l1", "l2", "cosine")
"""Losses compared in Fig. 6b (brief §2.4)."""


def hidden_state_loss(prediction: Tensor, target: Tensor, kind: str) -> Tensor:
    """Distance between predicted and teacher hidden states (B, T, d_con), mean over positions.

    - ``l1``: mean absolute error over all elements.
    - ``l2``: mean squared error over all elements, i.e. ``||h_con - g(h)||^2 / d_con`` per
      position. The paper writes ``||.||_2^2`` (sum over d_con) with an unstated weight; the
      per-element mean keeps the term at the LM loss's scale for LN-normalised targets (each
      element ~unit variance), where the sum would be d_con (768) times larger at lambda = 0.1.
    - ``cosine``: ``1 - cos(g(h), h_con)`` per position (scale-free), mean over positions.
    """
    if kind not in HIDDEN_LOSSES:
        raise CocomixError(
            f"unknown hidden-state loss {kind!r}; use one of {', '.join(HIDDEN_LOSSES)}"
        )
    if prediction.shape != target.shape:
        raise CocomixError(
            f"predicted hidden states {tuple(prediction.shape)} do not match the teacher's "
            f"{tuple(target.shape)}; set model.teacher_dim to the teacher's hidden size"
        )
    pred, tgt = prediction.float(), target.float()
    if kind == "l1":
        return F.l1_loss(pred, tgt)
    if kind == "l2":
        return F.mse_loss(pred, tgt)
    return (1.0 - F.cosine_similarity(pred, tgt, dim=-1)).mean()
