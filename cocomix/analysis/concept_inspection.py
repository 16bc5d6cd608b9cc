"""Concept inspection: which concepts the student predicts per token, and what each one is.

A CoCoMix student's concept ids *are* the SAE's latent ids (its concept head is trained on
labels drawn from the SAE, brief §2.9), so a concept can be named by looking at where its SAE
latent fires on the teacher: scan held-out tokens (the run's ``valid_shard``), encode the
teacher's residual at the SAE layer, and keep, per latent of interest, the positions with the
largest activation (post-TopK, ReLU'd values) with a little surrounding text. A person reads
those and names the concept, as in the paper's Fig. 5 captions ("site address related").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from cocomix.analysis.steering import require_fits_context
from cocomix.concepts.dictionary import ConceptDictionary
from cocomix.data.tokenizers import Tokenizer
from cocomix.models import CocoMixLM
from cocomix.registry import CocomixError
from cocomix.types import TeacherLM


@dataclass(frozen=True)
class TokenConcepts:
    position: int
    token: str
    concepts: list[tuple[int, float]]
    """(concept id, predicted logit), best first."""


@dataclass(frozen=True)
class LatentExample:
    activation: float
    position: int
    text: str
    """The activating token in ``[[...]]`` with ``before``/``after`` tokens of context."""


@dataclass
class LatentProfile:
    concept: int
    active: int = 0
    """Scanned positions where the latent was among the SAE's k active latents."""
    scanned: int = 0
    examples: list[LatentExample] = field(default_factory=list)

    @property
    def frequency(self) -> float:
        return self.active / self.scanned if self.scanned else float("nan")


@torch.no_grad()
def predicted_concepts(model: CocoMixLM, tokenizer: Tokenizer, text: str, top: int = 5, *,
                       context: int) -> list[TokenConcepts]:
    """Per token of ``text``: the ``top`` concepts with the largest predicted logits.

    ``context`` is the run's trained context (``LoadedRun.seq_len``, its ``train.seq_len``): the
    text's tokens must fit it, the rule ``tools/steer.py`` applies too (``require_fits_context``)."""
    ids = tokenizer.encode(text)
    if not ids:
        raise CocomixError("the text encodes to no tokens")
    require_fits_context(len(ids), context, what="--text", fix=f"shorten it to at most {context} tokens")
    out = model.forward_lm(torch.tensor([ids]))
    if out.concept_logits is None:
        raise CocomixError(
            "this model predicts no SAE concept logits (no concept head, or a hidden-state head): "
            "concept inspection needs a CoCoMix-style run"
        )
    values, indices = torch.topk(out.concept_logits[0].float(), top, dim=-1)
    return [
        TokenConcepts(t, marked(tokenizer, ids, t, before=0, after=0).strip("[]"),
                      list(zip(indices[t].tolist(), values[t].tolist(), strict=True)))
        for t in range(len(ids))
    ]


def marked(tokenizer: Tokenizer, ids: Sequence[int], pos: int, *, before: int = 8, after: int = 3) -> str:
    """Decoded text around ``ids[pos]`` with that token in ``[[...]]``, on one line.

    Decoding prefixes and taking differences keeps the spaces SentencePiece attaches to the
    token (a lone ``▁word`` decodes without its space)."""
    start = max(0, pos - before)
    pre = tokenizer.decode(list(ids[start:pos]))
    with_tok = tokenizer.decode(list(ids[start : pos + 1]))
    whole = tokenizer.decode(list(ids[start : pos + 1 + after]))
    tok = with_tok[len(pre):] if with_tok.startswith(pre) else tokenizer.decode([ids[pos]])
    if ids[pos] == tokenizer.eos_id:
        tok = "<eos>"  # the document separator decodes to nothing
    post = whole[len(with_tok):] if whole.startswith(with_tok) else tokenizer.decode(list(ids[pos + 1 : pos + 1 + after]))
    return (pre + "[[" + tok + "]]" + post).replace("\n", "⏎")


@torch.no_grad()
def scan_latents(
    teacher: TeacherLM,
    sae: ConceptDictionary,
    layer: int,
    tokens: np.ndarray,
    concepts: Sequence[int],
    *,
    tokenizer: Tokenizer,
    window: int,
    max_tokens: int = 20_000,
    per_latent: int = 5,
    batch_windows: int = 8,
) -> dict[int, LatentProfile]:
    """Top activating held-out positions of each latent in ``concepts`` (see the module doc).

    Scans ``max_tokens // window`` windows of ``window`` tokens spread evenly over ``tokens``.
    """
    wanted = sorted(set(int(c) for c in concepts))
    if not wanted:
        raise CocomixError("no concepts to scan for")
    bad = [c for c in wanted if not 0 <= c < sae.n_latents]
    if bad:
        raise CocomixError(f"concept ids {bad} are outside the SAE's 0..{sae.n_latents - 1}")
    n = int(tokens.size)
    if n < 2:
        raise CocomixError(f"the held-out token stream has {n} tokens; nothing to scan")
    stream = torch.as_tensor(np.asarray(tokens, dtype=np.int64))
    wanted_t = torch.tensor(wanted)
    best_vals = torch.full((len(wanted), per_latent), -1.0)
    best_pos = torch.full((len(wanted), per_latent), -1, dtype=torch.long)
    active = torch.zeros(len(wanted), dtype=torch.long)
    # Windows spread evenly over the whole stream (held-out splits are ordered by source, so a
    # prefix would show one source only); deterministic.
    width = min(window, n)
    count = max(1, min(max_tokens // width, n // width))
    starts = np.linspace(0, n - width, count).astype(int).tolist()
    groups = [starts[i : i + batch_windows] for i in range(0, len(starts), batch_windows)]
    for group in tqdm(groups, desc="scanning held-out tokens", unit="batch", disable=None, leave=False):
        batch = torch.stack([stream[s : s + width] for s in group])
        h = teacher.hidden_at(batch, layer).to(sae.dtype)
        code = sae.encode(h)  # values/indices (B, T, k)
        hit = code.indices.unsqueeze(-1) == wanted_t  # (B, T, k, W)
        acts = (code.values.unsqueeze(-1) * hit).amax(dim=2)  # (B, T, W): 0 where inactive
        active += (hit.any(dim=2) & (acts > 0)).sum(dim=(0, 1))
        positions = (torch.tensor(group).unsqueeze(1) + torch.arange(width)).reshape(-1)
        flat = acts.reshape(-1, len(wanted)).T  # (W, B*T)
        vals = torch.cat([best_vals, flat], dim=1)
        pos = torch.cat([best_pos, positions.expand(len(wanted), -1)], dim=1)
        top = torch.topk(vals, per_latent, dim=1)
        best_vals, best_pos = top.values, pos.gather(1, top.indices)
    scanned = len(starts) * width
    profiles = {}
    ids = stream.tolist()
    for row, concept in enumerate(wanted):
        profile = LatentProfile(concept, int(active[row]), scanned)
        for value, position in zip(best_vals[row].tolist(), best_pos[row].tolist(), strict=True):
            if value > 0 and position >= 0:
                profile.examples.append(LatentExample(value, position, marked(tokenizer, ids, position)))
        profiles[concept] = profile
    return profiles


def load_concept_artifacts(artifacts: dict[str, object], run_dir: Path) -> tuple[TeacherLM, ConceptDictionary, int]:
    """The run's frozen teacher, SAE and SAE layer, from its ``artifacts.json`` record."""
    from cocomix.concepts.sae import load_openai_sae
    from cocomix.runtime.checkpoint import load_trained_lm
    from cocomix.runtime.rundir import missing_artifact
    from cocomix.runtime.teacher import CocoLMTeacher

    for key in ("teacher", "sae", "teacher_layer"):
        if key not in artifacts:
            raise missing_artifact(run_dir, key, "concept inspection needs a concept run made "
                                   "by the current runtime")
    teacher_at = str(artifacts["teacher"])
    teacher: TeacherLM
    if artifacts.get("teacher_source") == "hf" or (Path(teacher_at) / "config.json").is_file():
        from cocomix.runtime.hf_teacher import HFCausalLMTeacher, resolve_teacher

        teacher = HFCausalLMTeacher(resolve_teacher(teacher_at))
    else:
        teacher = CocoLMTeacher(load_trained_lm(Path(teacher_at)))
    sae_at = str(artifacts["sae"])
    sae: ConceptDictionary
    if artifacts.get("sae_source") == "saelens":
        from cocomix.runtime import saelens

        k = int(str(artifacts.get("sae_k")))
        if Path(sae_at).is_dir():
            sae = saelens.load_folder(Path(sae_at), k)
        else:
            release, _, sae_id = sae_at.partition("/")
            sae = saelens.load_registry(release, sae_id, k)
    else:
        sae = load_openai_sae(sae_at, expected_d_model=teacher.model_dim).eval()
    return teacher, sae, int(str(artifacts["teacher_layer"]))
