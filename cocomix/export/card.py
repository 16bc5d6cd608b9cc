"""The model card (``README.md``) of an exported folder, in Hugging Face's conventions.

YAML front matter first (``library_name``, ``pipeline_tag``, ``tags``, ``license``: what the Hub
reads to show the widget and the loading snippet), then what the model is, how it was trained,
its validation numbers from the run's own metrics, and how to load it. Everything comes from
``RunFacts``, so the card names no path of the machine that made it.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from cocomix.export.facts import RunFacts

CORPUS_NAMES = {
    "pd_english": "public-domain English books (the text shipped with cocomix)",
    "pystdlib": "Python standard-library source code",
    "openwebtext": "OpenWebText",
    "openwebmath": "OpenWebMath",
    "latent_topics": "synthetic latent-topic documents (cocomix's positive control)",
    "local": "local text files",
}
LICENSE = "mit"
"""The training code's licence (pyproject.toml); the card says the training data's terms apply too."""


@dataclass(frozen=True)
class ModelShape:
    architecture: str
    parameters: int
    layers: int
    width: int
    heads: int
    vocab: int


def _front_matter(facts: RunFacts, shape: ModelShape) -> str:
    remote = shape.architecture != "GPT2LMHeadModel"
    tags = ["cocomix", "causal-lm", facts.objective, *(["custom_code"] if remote else ["gpt2"])]
    meta = {"library_name": "transformers", "pipeline_tag": "text-generation", "license": LICENSE,
            "tags": list(dict.fromkeys(tags))}
    if facts.data in ("pd_english", "openwebtext", "openwebmath"):
        meta["language"] = ["en"]
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n"


def _title(facts: RunFacts) -> str:
    parts = [facts.recipe or "cocomix run", f"arm {facts.arm}"]
    parts += [f"seed {facts.seed}"] if facts.seed is not None else []
    return f"# {', '.join(parts)} (step {facts.step})\n"


def _training_rows(facts: RunFacts, shape: ModelShape) -> list[tuple[str, str]]:
    of = f" of {facts.steps}" if facts.steps is not None else ""
    rows = [("recipe", f"`{facts.recipe}` (arm `{facts.arm}`)" if facts.recipe else f"arm `{facts.arm}`"),
            ("seed", str(facts.seed) if facts.seed is not None else "-"),
            ("objective", f"`{facts.objective}`"), ("mixer", f"`{facts.mixer}`"),
            ("concepts", f"`{facts.concepts}`"),
            ("data", f"`{facts.data}`: {CORPUS_NAMES.get(facts.data, 'see the recipe')}"),
            ("tokenizer", f"`{facts.tokenizer}` ({shape.vocab} pieces; {', '.join(facts.tokenizer_files)})"),
            ("steps", f"{facts.step}{of}" + ("" if facts.finished else " (**unfinished**)")),
            ("training tokens", f"{facts.tokens:,}" if facts.tokens is not None else "not recorded"),
            ("context", f"{facts.context} tokens")]
    rows += [(key, f"`{value}`") for key, value in facts.options.items()]
    if facts.git:
        rows.append(("code revision", f"`{facts.git}`"))
    return rows


def _validation(facts: RunFacts) -> str:
    if facts.valid is None:
        return "The run recorded no validation loss up to this step.\n"
    ppl = f" (perplexity {facts.valid.ppl:.2f})" if facts.valid.ppl is not None else ""
    at = "" if facts.valid.step == facts.step else f" (its last validation before step {facts.step})"
    return (f"Validation loss at step {facts.valid.step}{at}: **{facts.valid.loss:.4f}** nats per token{ppl}, "
            f"on the run's held-out split of `{facts.data}` with its own tokenizer; compare it only with runs "
            f"of the same data and tokenizer.\n")


def _usage(shape: ModelShape, folder: str, facts: RunFacts) -> str:
    remote = shape.architecture != "GPT2LMHeadModel"
    trust = ", trust_remote_code=True" if remote else ""
    code = (
        "```python\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline\n\n"
        f'path = "{folder}"  # this folder, or its Hub id\n'
        "tokenizer = AutoTokenizer.from_pretrained(path)\n"
        f"model = AutoModelForCausalLM.from_pretrained(path{trust})\n"
        'inputs = tokenizer("The year", return_tensors="pt")\n'
        "print(tokenizer.decode(model.generate(**inputs, max_new_tokens=20, do_sample=False)[0]))\n"
        f'print(pipeline("text-generation", model=path{trust})("The year")[0]["generated_text"])\n'
        "```\n"
    )
    notes = [
        f"The context is {facts.context} tokens (the training `train.seq_len`; the position table keeps "
        f"only the rows training reached). `generate()` and the pipeline stop there by default "
        f"(`generation_config.max_length`); asking for more new tokens than fit raises an error, and "
        f"`tokenizer(text, truncation=True)` cuts a text to the context.",
        "The tokenizer returns `input_ids` and `attention_mask`, pads on the left (for batched "
        "generation), and names EOS as BOS: training separated documents with EOS and never fed BOS.",
    ]
    if remote:
        notes.append("`CocoMixForCausalLM` is not part of `transformers`: its code travels in this folder "
                     "(`modeling_cocomix.py`, `configuration_cocomix.py`), hence `trust_remote_code=True`. "
                     "Outputs carry `concept_logits`; `model.set_concept_scale(concept_id, scale)` steers one "
                     "concept.")
    return code + "\n" + "".join(f"- {n}\n" for n in notes)


def model_card(facts: RunFacts, shape: ModelShape, *, folder: str, left_out: tuple[str, ...]) -> str:
    """``README.md`` for an export of ``facts``' run as ``shape`` in a folder named ``folder``."""
    what = ("GPT-2 exactly (`GPT2LMHeadModel`, no custom code)" if shape.architecture == "GPT2LMHeadModel"
            else "a GPT-2 whose hidden states are mixed with predicted continuous concepts at one layer "
                 "(`CocoMixForCausalLM`, CoCoMix: Tack et al. 2025)")
    parts = [
        _front_matter(facts, shape), "\n", _title(facts), "\n",
        f"A {shape.parameters / 1e6:.1f}M-parameter causal language model ({shape.layers} layers, width "
        f"{shape.width}, {shape.heads} heads), {what}, trained with cocomix"
        + (f": {facts.description}." if facts.description else ".") + "\n",
    ]
    if not facts.finished:
        parts.append(f"\n**Unfinished:** this is step {facts.step} of the {facts.steps} the run was configured "
                     f"for (exported on purpose); its numbers are not the finished run's.\n")
    if left_out:
        parts.append("\nLeft out of the export: " + "; ".join(left_out) + ".\n")
    parts += ["\n## Training\n\n| | |\n|---|---|\n",
              "".join(f"| {k} | {v} |\n" for k, v in _training_rows(facts, shape)),
              "\n## Evaluation\n\n", _validation(facts),
              "\n## How to use\n\n", _usage(shape, folder, facts),
              "\n## Limitations\n\nA research model from a small pretraining study: it was trained on "
              "the data above only, with no instruction tuning or safety filtering, and its text is "
              f"not reliable. The licence is the training code's ({LICENSE}); the terms of the training "
              "data apply as well.\n"]
    return "".join(parts)
