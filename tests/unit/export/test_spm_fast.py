"""The SentencePiece -> Hugging Face fast tokenizer conversion gives SentencePiece's own ids."""

from __future__ import annotations

from pathlib import Path

import pytest
import sentencepiece as spm

from cocomix.data.corpora import build_corpus
from cocomix.data.gpt2_bpe import GPT2BPETokenizer, packaged_files_dir
from cocomix.data.tokenizers import SentencePieceConfig, train_sentencepiece, training_sentences
from cocomix.export.hf import hf_tokenizer
from cocomix.export.spm_fast import sentencepiece_to_fast
from cocomix.registry import CocomixError

# Where a converter that pre-splits at spaces or prepends after added tokens goes wrong:
# whitespace runs, newlines (a user-defined piece) at the start, after spaces and in runs,
# characters outside the vocabulary (byte fallback), and control pieces written as text.
EDGE_TEXTS = [
    "", " ", "  a", "a  b", "\nHello", "Hello\nWorld", " \n \n", "\n\n\n", "a\n b", "tab\there",
    "naïve café — “quotes” 😀 日本語", "<s> literal </s> <unk> <pad>", "x" * 50, "   leading",
    "trailing   ", "ünïcödé\u00a0nbsp", "1234567 89.5%",
]


def held_out_texts() -> list[str]:
    return [d.text for d in build_corpus("pd_english").documents("valid")][:20] + EDGE_TEXTS


def test_converted_tokenizer_encodes_and_decodes_like_sentencepiece(spm_path: Path) -> None:
    sp = spm.SentencePieceProcessor(model_file=str(spm_path))
    fast = sentencepiece_to_fast(spm_path)
    mismatches = [t[:40] for t in held_out_texts()
                  if fast.encode(t, add_special_tokens=False).ids != sp.encode(t)]
    assert not mismatches
    for text in held_out_texts():
        assert fast.decode(sp.encode(text), skip_special_tokens=False) == sp.decode(sp.encode(text))


def test_transformers_tokenizer_keeps_the_ids_and_names_eos_as_bos(spm_path: Path) -> None:
    from cocomix.data.tokenizer_loading import load_tokenizer

    ours = load_tokenizer(spm_path)
    theirs = hf_tokenizer(ours)
    for text in held_out_texts():
        assert theirs(text)["input_ids"] == ours.encode(text)
    # Documents were separated by EOS in training and BOS never fed: EOS starts a text.
    assert theirs.bos_token_id == theirs.eos_token_id == ours.eos_id
    assert len(theirs) == ours.vocab_size


def test_unigram_models_are_refused_by_name(tmp_path: Path) -> None:
    config = SentencePieceConfig(vocab_size=600, model_type="unigram", max_train_chars=60_000)
    path = tmp_path / "unigram.model"
    path.write_bytes(train_sentencepiece(training_sentences(build_corpus("pd_english"), 60_000), config))
    with pytest.raises(CocomixError, match="unigram model; the export converts BPE models only"):
        sentencepiece_to_fast(path)


def test_gpt2_bpe_runs_export_gpt2s_own_tokenizer() -> None:
    ours = GPT2BPETokenizer(packaged_files_dir())
    theirs = hf_tokenizer(ours)
    for text in ["Hello world", " leading space", "It's 2026; naïve — 😀\n\nnew paragraph", "a  b"]:
        assert theirs(text)["input_ids"] == ours.encode(text)
    assert theirs.eos_token_id == ours.eos_id == 50256
