"""Concept inspection: predicted concepts per token, and the held-out positions that most
activate an SAE latent, checked against a brute-force scan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cocomix.analysis.concept_inspection import marked, predicted_concepts, scan_latents
from cocomix.concepts.sae import TopKSAE
from cocomix.data.tokenizer_loading import load_tokenizer
from cocomix.models import CocoLMConfig, create_cocomix_lm
from cocomix.registry import CocomixError
from cocomix.runtime.teacher import CocoLMTeacher


def tiny(**overrides: object):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    base: dict[str, object] = dict(model_dim=16, num_layers=2, num_heads=2, ffn_inner_dim=32,
                                   vocab_size=400, max_seq_len=64, insert_layer=1)
    base.update(overrides)
    return create_cocomix_lm(CocoLMConfig(**base)).eval()  # type: ignore[arg-type]


def test_scan_matches_a_brute_force_search(spm_path: Path) -> None:
    tok = load_tokenizer(spm_path)
    teacher = CocoLMTeacher(tiny())
    sae = TopKSAE(16, 32, 4, generator=torch.Generator().manual_seed(1)).eval()
    text = "It was the best of times, it was the worst of times, it was the age of wisdom. " * 12
    tokens = np.array(tok.encode(text), dtype=np.int64)
    window = 16
    concepts = [0, 5, 17, 31]
    profiles = scan_latents(teacher, sae, 0, tokens, concepts, tokenizer=tok, window=window,
                            max_tokens=10_000, per_latent=3, batch_windows=2)
    # Brute force over the same windows: n // window of them, spread evenly (no overlap).
    n_windows = len(tokens) // window
    starts = np.linspace(0, len(tokens) - window, n_windows).astype(int)
    assert np.all(np.diff(starts) >= window)
    acts = np.zeros((len(tokens), 32), dtype=np.float32)
    with torch.no_grad():
        for start in starts:
            chunk = torch.tensor(tokens[start : start + window])[None]
            code = sae.encode(teacher.hidden_at(chunk, 0))
            acts[start : start + window] = code.to_dense(32)[0].numpy()
    for concept in concepts:
        profile = profiles[concept]
        assert profile.scanned == n_windows * window
        assert profile.active == int((acts[:, concept] > 0).sum())
        expected = sorted(acts[:, concept], reverse=True)[:3]
        got = [e.activation for e in profile.examples]
        assert got == pytest.approx([v for v in expected if v > 0], abs=1e-5)
        for example in profile.examples:
            assert acts[example.position, concept] == pytest.approx(example.activation, abs=1e-5)
            assert "[[" in example.text and "]]" in example.text
    with pytest.raises(CocomixError, match="outside the SAE"):
        scan_latents(teacher, sae, 0, tokens, [32], tokenizer=tok, window=window)


def test_predicted_concepts_and_marked_text(spm_path: Path) -> None:
    tok = load_tokenizer(spm_path)
    model = tiny(mixer="interleave", num_concepts=24, concept_topk=4)
    text = "Call me Ishmael."
    rows = predicted_concepts(model, tok, text, top=3, context=64)
    ids = tok.encode(text)
    assert len(rows) == len(ids)
    for row in rows:
        values = [v for _, v in row.concepts]
        assert len(values) == 3 and values == sorted(values, reverse=True)
    assert "".join(r.token for r in rows).replace(" ", "") == text.replace(" ", "")
    shown = marked(tok, ids, 2, before=2, after=1)
    assert shown.replace("[[", "").replace("]]", "") in text
    with pytest.raises(CocomixError, match="no SAE concept logits"):
        predicted_concepts(tiny(), tok, text, context=64)


def test_the_text_must_fit_the_trained_context_not_the_model_size(spm_path: Path) -> None:
    # Before, the limit was the model's max_seq_len (64 here), so a run trained on 4-token windows
    # was asked about positions it never saw; tools/steer.py held the trained context already.
    tok = load_tokenizer(spm_path)
    model = tiny(mixer="interleave", num_concepts=24, concept_topk=4)
    text = "Call me Ishmael."
    n = len(tok.encode(text))
    assert 4 < n <= model.max_seq_len
    assert len(predicted_concepts(model, tok, text, top=2, context=n)) == n
    with pytest.raises(CocomixError) as info:
        predicted_concepts(model, tok, text, top=2, context=4)
    assert str(info.value) == (f"--text is {n} tokens, more than the run's trained context "
                               f"(train.seq_len=4); shorten it to at most 4 tokens")
