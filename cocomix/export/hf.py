"""Export a trained run as a Hugging Face model folder (``tools/export_hf.py``).

A run whose language model is GPT-2 exactly (mixer ``none``: NTP, KD, and "concept prediction
only", whose head never feeds the LM) becomes a folder that
``transformers.GPT2LMHeadModel.from_pretrained`` loads with no custom code: ``config.json``,
``model.safetensors`` and the tokenizer (a fast tokenizer converted from the run's SentencePiece
model, or GPT-2's own files for ``gpt2_bpe`` runs), plus ``cocomix_export.json`` saying where it
came from. A run whose mixer changes the forward pass (CoCoMix ``add``/``interleave``, pause)
is refused in one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cocomix.data.artifacts import atomic_dir
from cocomix.data.gpt2_bpe import GPT2BPETokenizer
from cocomix.data.tokenizers import SentencePieceTokenizer, Tokenizer
from cocomix.eval.loading import LoadedRun, load_run
from cocomix.export.gpt2 import gpt2_config, gpt2_state_dict
from cocomix.export.spm_fast import sentencepiece_to_fast
from cocomix.registry import CocomixError

EXPORT_RECORD = "cocomix_export.json"


@dataclass(frozen=True)
class Export:
    folder: Path
    step: int
    architecture: str
    dropped: tuple[str, ...]
    """Parts of the run's model the export leaves out (with why), e.g. an unused concept head."""


def export_run(run_dir: Path | str, out: Path | str, *, step: int | None = None) -> Export:
    """Write ``run_dir``'s model at ``step`` (default: the last) as a Hugging Face folder ``out``.

    ``out`` must not exist yet (or be empty); it appears only once complete.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CocomixError(f"{out} already exists and is not an empty folder; choose a new folder")
    run = load_run(run_dir, step=step)
    dropped = _check_gpt2_exportable(run)
    from transformers import GPT2Config, GPT2LMHeadModel

    config = run.model.config
    tok = run.tokenizer
    pad = tok.pad_id if tok.pad_id != tok.eos_id else None
    # Training put EOS between documents and never fed BOS, so EOS is what starts a text, as in
    # GPT-2; naming it BOS makes consumers (lm-eval's prefix token, generate()) use it.
    hf_config = GPT2Config(**gpt2_config(config, positions=run.seq_len, bos_id=tok.eos_id,
                                         eos_id=tok.eos_id, pad_id=pad))
    model = GPT2LMHeadModel(hf_config)
    state = gpt2_state_dict(run.model.state_dict(), config.num_layers, run.seq_len)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # GPT-2's attention keeps a causal-mask buffer in some versions; nothing else may be left.
    missing = [k for k in missing if not k.endswith(".attn.bias") and not k.endswith(".attn.masked_bias")]
    if missing or unexpected:
        raise CocomixError(f"GPT-2 export mapping is incomplete: missing {missing}, unexpected {unexpected}")
    model.eval()
    if out.is_dir():
        out.rmdir()  # the empty folder the user made; atomic_dir writes it whole
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        hf_tokenizer(tok).save_pretrained(tmp)
        record = {"run": str(Path(run_dir).resolve()), "step": run.step, "architecture": "GPT2LMHeadModel",
                  "tokenizer": str(tok.path), "left_out": list(dropped)}
        (tmp / EXPORT_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return Export(out, run.step, "GPT2LMHeadModel", dropped)


def _check_gpt2_exportable(run: LoadedRun) -> tuple[str, ...]:
    """What the GPT-2 export leaves out; a one-line error if the LM itself is not GPT-2."""
    config = run.model.config
    objective = (run.config.get("objective") or {}).get("name", "?")
    if config.mixer != "none":
        raise CocomixError(
            f"{run.info.path} mixes into its hidden states (objective {objective}, mixer "
            f"{config.mixer!r}), so its language model is not GPT-2; only runs with mixer 'none' "
            f"(NTP, KD, concept prediction only) export as GPT2LMHeadModel"
        )
    if run.model.concept_head is not None:
        return ("the concept head (it predicts concepts but never feeds the next-token prediction)",)
    return ()


def hf_tokenizer(tok: Tokenizer):  # noqa: ANN201 (transformers.PreTrainedTokenizerFast)
    """The run's tokenizer as a ``transformers`` fast tokenizer with the same ids."""
    from transformers import GPT2TokenizerFast, PreTrainedTokenizerFast

    if isinstance(tok, GPT2BPETokenizer):
        # GPT-2's own encoder.json / vocab.bpe are the vocab.json / merges.txt GPT-2 ships.
        return GPT2TokenizerFast(vocab_file=str(tok.path / "encoder.json"),
                                 merges_file=str(tok.path / "vocab.bpe"))
    if isinstance(tok, SentencePieceTokenizer):
        fast = sentencepiece_to_fast(tok.path)
        return PreTrainedTokenizerFast(
            tokenizer_object=fast, bos_token=fast.id_to_token(tok.eos_id),  # see export_run
            eos_token=fast.id_to_token(tok.eos_id), pad_token=fast.id_to_token(tok.pad_id),
            unk_token=fast.model.unk_token, split_special_tokens=True,
        )
    raise CocomixError(f"no Hugging Face conversion for tokenizer {type(tok).__name__} ({tok.path})")
