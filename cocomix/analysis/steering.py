"""Concept steering (paper Fig. 5, brief §2.9): generate with one predicted concept's logit scaled.

The paper multiplies the predicted logit ``z_t[c]`` of one concept by a constant in [-10, 10]
and shows how the continuation changes. ``ConceptHead.steer = (c, s)`` does exactly that, before
the TopK (so a large scale can switch a concept on), at every position the model runs: the
prompt and every generated token (the brief leaves both choices unconfirmed).

The neutral value is ``scale = 1``: ``z * 1.0`` is ``z`` bit for bit, so the steered generation
equals the unsteered one exactly (same seed). ``scale = 0`` is *not* neutral: it sets the logit
to 0, which removes the concept's contribution where it was in the top-k, and can even bring it
*into* the top-k at positions whose k-th largest logit is negative. It changes nothing only
where the concept stays out of the top-k (e.g. every kept logit is positive); the tests check
both statements.

Both generations use the same ``torch.Generator`` seed, so with sampling every difference comes
from the steering. ``topk_hits`` reports at how many positions the concept was among the k kept
concepts, with and without steering: a direct check that the intervention did something.

A scale must be finite (``require_finite_scale``): NaN or infinity makes the concept logits, and
so the next-token logits, NaN (greedy decoding then picks token 0, sampling fails). A finite scale
so large that the model overflows is refused the same way, from a forward pass on the prompt
before generating, and from the positions generated.

``require_fits_context`` is the one length rule of the tools that run text through a model
(``tools/steer.py``, ``tools/concepts.py``): every position the model reads must lie within the
run's trained context (``train.seq_len``); positions beyond it were never trained.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from cocomix.models import CocoMixLM, generate
from cocomix.registry import CocomixError

NEUTRAL_SCALE = 1.0


@dataclass(frozen=True)
class Generation:
    tokens: list[int]
    """The generated tokens only (prompt excluded)."""
    text: str
    topk_hits: int
    """Positions (prompt + generated, the last excepted) where the concept was in the top-k."""
    positions: int


@dataclass(frozen=True)
class SteeringResult:
    concept: int
    scale: float
    unsteered: Generation
    steered: Generation


def require_finite_scale(scale: float, option: str = "scale") -> float:
    """``scale`` as a float, or one error for NaN and infinity (see the module doc)."""
    if not math.isfinite(scale):
        raise CocomixError(
            f"{option} {scale} is not a finite number; give a finite logit multiplier "
            f"(1 = no change; the paper uses -10..10)"
        )
    return float(scale)


def require_fits_context(tokens: int, context: int, *, what: str, fix: str) -> None:
    """The tools' one length rule: ``tokens`` positions fed to the model must fit the run's
    trained context ``context`` (its ``train.seq_len``); else one error naming both and ``fix``."""
    if tokens > context:
        raise CocomixError(
            f"{what} is {tokens} tokens, more than the run's trained context "
            f"(train.seq_len={context}); {fix}"
        )


def require_concept_head(model: CocoMixLM, where: Path | str = "this model") -> torch.nn.Module:
    head = model.concept_head
    if head is None:
        raise CocomixError(
            f"{where} has no concept head (an NTP or pause run): steering needs a run trained "
            f"with concepts, e.g. pretrain/cocomix or the add/interleave arms of ablation/add_vs_mix"
        )
    return head


def require_steerable(model: CocoMixLM, where: Path | str = "this model") -> torch.nn.Module:
    """The concept head, if steering it can change the model's output; else one clear error."""
    head = require_concept_head(model, where)
    if not callable(getattr(head, "set_concept_scale", None)):
        raise CocomixError(
            f"{where} has a {type(head).__name__}, which predicts no concept logits to steer "
            f"(e.g. the hidden-state prediction head of Fig. 6b)"
        )
    if not model.mixer.contract.reads_concept:
        raise CocomixError(
            f"{where} predicts concepts but its mixer ({type(model.mixer).__name__}) does not mix "
            f"them into the residual stream (concept prediction only): steering cannot change "
            f"its output"
        )
    return head


@contextmanager
def steering(model: CocoMixLM, concept: int | None, scale: float = NEUTRAL_SCALE) -> Iterator[None]:
    """Scale ``concept``'s predicted logit by ``scale`` inside the block (``None``: unsteered);
    the head's previous setting is restored afterwards, even on error."""
    head = require_concept_head(model)
    if not hasattr(head, "steer"):
        raise CocomixError(f"{type(head).__name__} has no concept logits to steer")
    previous = head.steer
    try:
        head.set_concept_scale(concept, scale)
        yield
    finally:
        head.steer = previous


@torch.no_grad()
def topk_hits(model: CocoMixLM, tokens: Tensor, concept: int) -> int:
    """Positions of ``tokens`` (1, T) where ``concept`` is among the head's top-k logits (as the
    head currently steers them)."""
    out = model.forward_lm(tokens)
    if out.concept_logits is None:
        raise CocomixError("the model returned no concept logits")
    _require_finite_output(model, out.logits)
    top = torch.topk(out.concept_logits, int(model.config.concept_topk), dim=-1).indices
    return int((top == concept).any(-1).sum())


def _require_finite_output(model: CocoMixLM, logits: Tensor) -> None:
    """Steering so strong that the model overflows gives NaN logits: refuse rather than decode."""
    head = model.concept_head
    steer = getattr(head, "steer", None)
    if steer is not None and not bool(torch.isfinite(logits).all()):
        concept, scale = steer
        raise CocomixError(
            f"concept {concept} x {scale:g} overflows the model (its next-token logits are not "
            f"finite); use a smaller scale (the paper uses -10..10)"
        )


def _generate(model: CocoMixLM, prompt: Tensor, max_new_tokens: int, *, greedy: bool,
              temperature: float, top_k: int | None, seed: int) -> Tensor:
    generator = torch.Generator(device=prompt.device).manual_seed(seed)
    return generate(model, prompt, max_new_tokens, greedy=greedy, temperature=temperature,
                    top_k=top_k, generator=generator)


def steer_generate(
    model: CocoMixLM,
    prompt: Tensor,
    concept: int,
    scale: float,
    max_new_tokens: int,
    *,
    decode: Callable[[list[int]], str] = lambda ids: " ".join(map(str, ids)),
    greedy: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
) -> SteeringResult:
    """Unsteered and steered continuations of ``prompt`` (1, P), from the same seed."""
    scale = require_finite_scale(scale)
    head = require_steerable(model)
    if not 0 <= concept < head.num_concepts:
        raise CocomixError(f"concept id {concept} is outside 0..{head.num_concepts - 1}")
    if prompt.ndim != 2 or prompt.size(0) != 1:
        raise CocomixError(f"prompt must have shape (1, P), got {tuple(prompt.shape)}")
    with steering(model, concept, scale), torch.no_grad():  # an overflow, before sampling from NaN
        _require_finite_output(model, model.forward_lm(prompt).logits)
    runs = {}
    for name, setting in (("unsteered", None), ("steered", concept)):
        with steering(model, setting, scale):
            out = _generate(model, prompt, max_new_tokens, greedy=greedy,
                            temperature=temperature, top_k=top_k, seed=seed)
            fed = out[:, :-1] if out.size(1) > 1 else out
            hits = topk_hits(model, fed, concept)
        new = out[0, prompt.size(1):].tolist()
        runs[name] = Generation(new, decode(new), hits, int(fed.size(1)))
    return SteeringResult(concept, float(scale), runs["unsteered"], runs["steered"])
