"""Loss terms the registered objectives compose (plain torch; paper §2.2, Eq. 4)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


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
