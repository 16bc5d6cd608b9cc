"""Sampling and greedy decoding with a KV cache (fairseq2's ``IncrementalStateBag``).

The prompt is run once (prefill), then one token per step; every attention layer appends its new
keys/values to the bag and the position encoder offsets positions by ``state_bag.step_nr``. The
step number counts *tokens*: with an interleaving mixer the upper blocks append two positions per
token, and the causal bias fairseq2 builds for ``q_len < k_len`` is aligned bottom-right, so a
2-position step attends to exactly what the full 2T forward would (the official code gets this
wrong under SDPA, paper brief §1.6). The concept head is per position and keeps no state: a step
of one token gives one head output and ``length_factor`` new upper positions (interleave, pause:
token slot then concept/pause slot), so cached logits equal the full forward's for every mixer.
"""

from __future__ import annotations

import torch
from fairseq2.nn import BatchLayout, IncrementalStateBag
from torch import Tensor

from cocomix.models.model import CocoMixLM
from cocomix.registry import CocomixError


@torch.no_grad()
def generate(
    model: CocoMixLM,
    prompt: Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    greedy: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Continue ``prompt`` (B, P) (or (P,)) by ``max_new_tokens``; returns (B, P + new) tokens.

    Runs the model in eval mode (restoring its previous mode) with a KV cache. ``greedy`` takes the
    arg-max; otherwise samples from ``softmax(logits / temperature)`` restricted to the ``top_k``
    most likely tokens when given.
    """
    if prompt.ndim == 1:
        prompt = prompt.unsqueeze(0)
    if prompt.ndim != 2 or prompt.size(1) == 0:
        raise CocomixError(f"prompt must have shape (B, P) with P >= 1, got {tuple(prompt.shape)}")
    if max_new_tokens < 0:
        raise CocomixError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if not greedy and temperature <= 0.0:
        raise CocomixError(f"temperature must be > 0 (or use greedy=True), got {temperature}")
    if top_k is not None and top_k < 1:
        raise CocomixError(f"top_k must be >= 1, got {top_k}")
    if max_new_tokens == 0:
        return prompt.clone()
    # The last sampled token is never fed back, so the model sees P + new - 1 positions.
    num_fed = prompt.size(1) + max_new_tokens - 1
    if num_fed > model.max_seq_len:
        raise CocomixError(
            f"prompt ({prompt.size(1)}) + max_new_tokens ({max_new_tokens}) - 1 = {num_fed} "
            f"exceeds the model's max_seq_len={model.max_seq_len}"
        )

    was_training = model.training
    model.eval()  # the cache is only used (and dropout only off) in eval mode
    try:
        # Capacity in attention positions: the upper blocks hold length_factor per token.
        state_bag = IncrementalStateBag(
            (num_fed + 1) * model.mixer.length_factor, capacity_increment=None
        )
        out = [prompt]
        logits = model(prompt, BatchLayout.of(prompt), state_bag=state_bag)
        state_bag.increment_step_nr(prompt.size(1))
        for step in range(max_new_tokens):
            next_token = _choose(logits[:, -1], temperature, top_k, greedy, generator)
            out.append(next_token)
            if step == max_new_tokens - 1:
                break
            logits = model(next_token, BatchLayout.of(next_token), state_bag=state_bag)
            state_bag.increment_step_nr(1)
        return torch.cat(out, dim=1)
    finally:
        model.train(was_training)


def _choose(
    logits: Tensor,
    temperature: float,
    top_k: int | None,
    greedy: bool,
    generator: torch.Generator | None,
) -> Tensor:
    """(B, V) logits -> (B, 1) token ids."""
    if greedy:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)
