"""The exported tokenizer, saved and reloaded as a user loads it, for both tokenizer kinds: model
inputs without ``token_type_ids``, the context as ``model_max_length``, left padding with a pad
token (what batched ``generate`` needs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cocomix.data.gpt2_bpe import GPT2BPETokenizer, packaged_files_dir
from cocomix.data.tokenizer_loading import load_tokenizer
from cocomix.data.tokenizers import Tokenizer
from cocomix.export.tokenizer import hf_tokenizer

transformers = pytest.importorskip("transformers")


def _gpt2(_: Path) -> Tokenizer:
    return GPT2BPETokenizer(packaged_files_dir())


@pytest.mark.parametrize("make", [load_tokenizer, _gpt2], ids=["sentencepiece", "gpt2_bpe"])
def test_the_saved_tokenizer_is_set_up_for_a_decoder_only_lm(
    make: object, spm_path: Path, tmp_path: Path
) -> None:
    ours: Tokenizer = make(spm_path)  # type: ignore[operator]
    hf_tokenizer(ours, context=16).save_pretrained(tmp_path)
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path)
    text = "It was the best of times, it was the worst of times, it was the age of wisdom."
    assert list(tok(text)) == ["input_ids", "attention_mask"]
    assert tok(text)["input_ids"] == ours.encode(text)
    assert tok.model_max_length == 16 and len(tok(text, truncation=True)["input_ids"]) == 16
    assert tok.pad_token_id == ours.pad_id
    batch = tok([text, "Call me"], padding=True)
    short = batch["input_ids"][1]
    assert batch["attention_mask"][1][0] == 0 and short[-len(ours.encode("Call me")):] == ours.encode("Call me")
