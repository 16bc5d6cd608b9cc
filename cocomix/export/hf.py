"""Export a trained run as a Hugging Face model folder (``tools/export_hf.py``).

A run whose language model is GPT-2 exactly (mixer ``none``: NTP, KD, and "concept prediction
only", whose head never feeds the LM) becomes a folder that
``transformers.GPT2LMHeadModel.from_pretrained`` loads with no custom code. A run whose mixer
changes the forward pass (CoCoMix ``add``/``interleave``, the pause baselines) becomes a
``CocoMixForCausalLM`` folder carrying its own modeling code (``hf_code/``, loaded with
``trust_remote_code=True``). Both hold ``config.json``, ``model.safetensors``, the tokenizer (a
fast tokenizer converted from the run's SentencePiece model, or GPT-2's own files for ``gpt2_bpe``
runs) set up for generation, ``generation_config.json`` (stop at the context), a model card
``README.md`` and ``cocomix_export.json`` saying where it came from, by name: no path of the
machine that made it (``facts.py``). An unfinished run (its last checkpoint before its configured
``steps``) is refused unless asked for (``allow_unfinished``, or an explicit ``step``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cocomix.cache_files import atomic_dir
from cocomix.eval.loading import LoadedRun, load_run
from cocomix.export.card import ModelShape, model_card
from cocomix.export.facts import RunFacts, run_facts
from cocomix.export.gpt2 import gpt2_config, gpt2_state_dict
from cocomix.export.tokenizer import hf_tokenizer
from cocomix.registry import CocomixError

__all__ = ["EXPORT_RECORD", "Export", "export_run", "hf_tokenizer"]

EXPORT_RECORD = "cocomix_export.json"


@dataclass(frozen=True)
class Export:
    folder: Path
    step: int
    architecture: str
    dropped: tuple[str, ...]
    """Parts of the run's model the export leaves out (with why), e.g. an unused concept head."""
    facts: RunFacts

    @property
    def unfinished(self) -> str | None:
        """``"step N of M"`` when the exported step is before the end of the run's schedule."""
        return None if self.facts.finished else f"step {self.step} of {self.facts.steps}"


def export_run(run_dir: Path | str, out: Path | str, *, step: int | None = None,
               allow_unfinished: bool = False) -> Export:
    """Write ``run_dir``'s model at ``step`` (default: the last) as a Hugging Face folder ``out``.

    ``out`` must not exist yet (or be empty); it appears only once complete. When ``step`` is
    None and the last checkpoint is before the run's configured ``steps`` (stopped with
    ``stop_at``, or still training), the export is refused unless ``allow_unfinished``: an
    explicit ``step`` means that step on purpose.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CocomixError(f"{out} already exists and is not an empty folder; choose a new folder")
    run = load_run(run_dir, step=step)
    facts = run_facts(run)
    if step is None and not facts.finished and not allow_unfinished:
        raise CocomixError(
            f"{run_dir} is unfinished: its last checkpoint is step {run.step} of the {facts.steps} it is "
            f"configured for (stopped with stop_at, or still training); finish it by rerunning its recipe "
            f"without stop_at, or export this step anyway with --allow-unfinished (or --step {run.step})"
        )
    if run.model.config.mixer == "none":
        model, dropped = _as_gpt2(run), _unused_head(run)
    else:
        model, dropped = _as_cocomix(run), ()
    model.eval()
    model.generation_config = _generation_config(run)
    if out.is_dir():
        out.rmdir()  # the empty folder the user made; atomic_dir writes it whole
    architecture = type(model).__name__
    config = model.config
    shape = ModelShape(architecture, model.num_parameters(), config.n_layer, config.n_embd, config.n_head,
                       config.vocab_size)
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        hf_tokenizer(run.tokenizer, context=run.seq_len).save_pretrained(tmp)
        (tmp / "README.md").write_text(model_card(facts, shape, folder=out.name, left_out=dropped))
        record = {**facts.record(), "architecture": architecture, "left_out": list(dropped)}
        (tmp / EXPORT_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return Export(out, run.step, architecture, dropped, facts)


def _special_ids(run: LoadedRun) -> dict[str, int | None]:
    tok = run.tokenizer
    # Training put EOS between documents and never fed BOS, so EOS is what starts a text, as in
    # GPT-2; naming it BOS makes consumers (lm-eval's prefix token, generate()) use it.
    return {"bos_token_id": tok.eos_id, "eos_token_id": tok.eos_id, "pad_token_id": tok.pad_id}


def _generation_config(run: LoadedRun):  # noqa: ANN202 (transformers.GenerationConfig)
    """``generation_config.json``: the special ids, and ``max_length`` = the context.

    With no ``max_new_tokens`` of its own, ``generate()`` then stops when prompt and continuation
    fill the context, and the text-generation pipeline takes this ``max_length`` over its own
    default of 256 new tokens (it keeps a model's ``max_length`` when it is not 20), which would
    run past the position table of a short-context model.
    """
    from transformers import GenerationConfig

    return GenerationConfig(max_length=run.seq_len, **_special_ids(run))


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
