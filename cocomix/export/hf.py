"""Export a trained run as a Hugging Face model folder (``tools/export_hf.py``).

A run whose language model is GPT-2 exactly (mixer ``none``: NTP, KD, and "concept prediction
only", whose head never feeds the LM) becomes a folder that
``transformers.GPT2LMHeadModel.from_pretrained`` loads with no custom code. A run whose mixer
changes the forward pass (CoCoMix ``add``/``interleave``, the pause baselines) becomes a
``CocoMixForCausalLM`` folder carrying its own modeling code (``hf_code/``, loaded with
``trust_remote_code=True``). Both hold ``config.json``, ``model.safetensors``, the tokenizer (a
fast tokenizer converted from the run's SentencePiece model, or GPT-2's own files for ``gpt2_bpe``
runs) and ``cocomix_export.json`` saying where it came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cocomix.cache_files import atomic_dir
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
    if run.model.config.mixer == "none":
        model, dropped = _as_gpt2(run), _unused_head(run)
    else:
        model, dropped = _as_cocomix(run), ()
    model.eval()
    if out.is_dir():
        out.rmdir()  # the empty folder the user made; atomic_dir writes it whole
    architecture = type(model).__name__
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        hf_tokenizer(run.tokenizer).save_pretrained(tmp)
        record = {"run": str(Path(run_dir).resolve()), "step": run.step, "architecture": architecture,
                  "tokenizer": str(run.tokenizer.path), "left_out": list(dropped)}
        (tmp / EXPORT_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return Export(out, run.step, architecture, dropped)


def _special_ids(run: LoadedRun) -> dict[str, int | None]:
    tok = run.tokenizer
    # Training put EOS between documents and never fed BOS, so EOS is what starts a text, as in
    # GPT-2; naming it BOS makes consumers (lm-eval's prefix token, generate()) use it.
    return {"bos_token_id": tok.eos_id, "eos_token_id": tok.eos_id,
            "pad_token_id": tok.pad_id if tok.pad_id != tok.eos_id else None}


def _as_gpt2(run: LoadedRun):  # noqa: ANN202 (transformers.GPT2LMHeadModel)
    """The run's model as ``GPT2LMHeadModel`` (mixer ``none``: the LM is GPT-2 exactly)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = run.model.config
    hf_config = GPT2Config(**gpt2_config(config, positions=run.seq_len), **_special_ids(run))
    model = GPT2LMHeadModel(hf_config)
    state = gpt2_state_dict(run.model.state_dict(), config.num_layers, run.seq_len)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # GPT-2's attention keeps a causal-mask buffer in some versions; nothing else may be left.
    missing = [k for k in missing if not k.endswith(".attn.bias") and not k.endswith(".attn.masked_bias")]
    if missing or unexpected:
        raise CocomixError(f"GPT-2 export mapping is incomplete: missing {missing}, unexpected {unexpected}")
    return model


def _unused_head(run: LoadedRun) -> tuple[str, ...]:
    if run.model.concept_head is not None:
        return ("the concept head (it predicts concepts but never feeds the next-token prediction)",)
    return ()


def _as_cocomix(run: LoadedRun):  # noqa: ANN202 (CocoMixForCausalLM, remote code)
    """The run's model as ``CocoMixForCausalLM``, whose code travels with the folder."""
    from cocomix.export.hf_code.configuration_cocomix import CocoMixConfig
    from cocomix.export.hf_code.modeling_cocomix import INTERLEAVED, CocoMixForCausalLM

    config = run.model.config
    objective = (run.config.get("objective") or {}).get("name", "?")
    if config.mixer not in INTERLEAVED:
        raise CocomixError(f"{run.info.path} uses mixer {config.mixer!r} (objective {objective}), which "
                           f"the export's modeling code does not know; it knows {', '.join(INTERLEAVED)}")
    if config.has_concept_head and config.concept_head != "sae":
        raise CocomixError(f"{run.info.path} has a {config.concept_head!r} concept head (objective "
                           f"{objective}); the export's modeling code has the SAE-concept head only")
    CocoMixConfig.register_for_auto_class()  # config.json's auto_map names the copied files
    CocoMixForCausalLM.register_for_auto_class("AutoModelForCausalLM")
    hf_config = CocoMixConfig(
        vocab_size=config.vocab_size, n_positions=run.seq_len, n_embd=config.model_dim,
        n_layer=config.num_layers, n_head=config.num_heads, n_inner=config.ffn_inner_dim,
        layer_norm_epsilon=config.layer_norm_eps, insert_layer=config.insert_layer, mixer=config.mixer,
        num_concepts=config.num_concepts if config.has_concept_head else 0,
        concept_topk=config.concept_topk, concept_compress=config.concept_compress, **_special_ids(run),
    )
    model = CocoMixForCausalLM(hf_config)
    state = dict(run.model.state_dict())
    state["decoder_frontend.pos_encoder.weight"] = state["decoder_frontend.pos_encoder.weight"][: run.seq_len]
    state["lm_head.weight"] = state.pop("final_proj.weight")  # tied to the embedding
    model.load_state_dict(state, strict=True)
    return model


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
            tokenizer_object=fast, bos_token=fast.id_to_token(tok.eos_id),  # see _special_ids
            eos_token=fast.id_to_token(tok.eos_id), pad_token=fast.id_to_token(tok.pad_id),
            unk_token=fast.model.unk_token, split_special_tokens=True,
        )
    raise CocomixError(f"no Hugging Face conversion for tokenizer {type(tok).__name__} ({tok.path})")
