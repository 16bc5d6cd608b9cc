"""The run's tokenizer as a ``transformers`` fast tokenizer, set up for the calls people make.

Same ids as the run's tokenizer (``spm_fast`` for SentencePiece, GPT-2's own files for
``gpt2_bpe``), and the settings a decoder-only LM needs in ``transformers``:

- ``model_input_names`` is ``input_ids`` and ``attention_mask`` only: ``PreTrainedTokenizerFast``
  otherwise also returns ``token_type_ids``, which ``GPT2LMHeadModel`` adds as embeddings, so
  ``model(**tokenizer(text))`` would differ from ``model(input_ids)``;
- ``model_max_length`` is the training context, so ``truncation=True`` cuts there;
- ``padding_side="left"`` with a pad token, so a padded batch's last column is every row's last
  real token (what ``generate`` continues from).
"""

from __future__ import annotations

from cocomix.data.gpt2_bpe import GPT2BPETokenizer
from cocomix.data.hf_tokenizer import HFTokenizer
from cocomix.data.tokenizers import SentencePieceTokenizer, Tokenizer
from cocomix.export.spm_fast import sentencepiece_to_fast
from cocomix.registry import CocomixError

MODEL_INPUTS = ["input_ids", "attention_mask"]
"""What the models take: no ``token_type_ids`` (neither model has segment embeddings to train)."""


def hf_tokenizer(tok: Tokenizer, *, context: int | None = None):  # noqa: ANN201 (PreTrainedTokenizerFast)
    """The run's tokenizer as a ``transformers`` fast tokenizer with the same ids.

    ``context``: the model's context (``train.seq_len``), its ``model_max_length``; ``None``
    leaves ``transformers``' "no limit" (for converting a tokenizer on its own).
    """
    from transformers import GPT2TokenizerFast, PreTrainedTokenizerFast

    settings: dict[str, object] = {"model_input_names": MODEL_INPUTS, "padding_side": "left"}
    if context is not None:
        settings["model_max_length"] = context
    if isinstance(tok, GPT2BPETokenizer):
        # GPT-2's own encoder.json / vocab.bpe are the vocab.json / merges.txt GPT-2 ships. Its one
        # special token is EOS, which pads too (as the run's tokenizer says: pad_id == eos_id);
        # padding is masked, so the id that fills it never matters.
        return GPT2TokenizerFast(vocab_file=str(tok.path / "encoder.json"), merges_file=str(tok.path / "vocab.bpe"),
                                 pad_token="<|endoftext|>", **settings)
    if isinstance(tok, SentencePieceTokenizer):
        fast = sentencepiece_to_fast(tok.path)
        # EOS is named BOS too: training separated documents with EOS and never fed BOS (hf.py).
        return PreTrainedTokenizerFast(
            tokenizer_object=fast, bos_token=fast.id_to_token(tok.eos_id),
            eos_token=fast.id_to_token(tok.eos_id), pad_token=fast.id_to_token(tok.pad_id),
            unk_token=fast.model.unk_token, split_special_tokens=True, **settings,
        )
    if isinstance(tok, HFTokenizer):
        # The teacher's own tokenizer (tokenizer=hf), without the special tokens its post-processor
        # adds (e.g. Llama's BOS): training fed encode()'s ids, documents separated by EOS only.
        from tokenizers import Tokenizer as RustTokenizer

        fast = RustTokenizer.from_str(tok.hf.backend_tokenizer.to_str())
        fast.post_processor = None
        eos = fast.id_to_token(tok.eos_id)
        return PreTrainedTokenizerFast(
            tokenizer_object=fast, bos_token=eos, eos_token=eos, pad_token=fast.id_to_token(tok.pad_id),
            unk_token=tok.hf.unk_token, **settings,
        )
    raise CocomixError(f"no Hugging Face conversion for tokenizer {type(tok).__name__} ({tok.path})")
