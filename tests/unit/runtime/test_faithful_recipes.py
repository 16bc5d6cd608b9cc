"""The paper-faithful recipes use the paper's components (their parameter counts: test_compose)."""

from __future__ import annotations

from cocomix.runtime.compose import compose_recipe


def test_faithful_recipe_uses_the_papers_pipeline() -> None:
    composed = compose_recipe("paper/faithful_69m", [])
    assert composed.preset == "paper"
    assert {k: composed.choices[k] for k in ("data", "tokenizer", "concepts", "mixer")} == {
        "data": "openwebtext", "tokenizer": "gpt2_bpe", "concepts": "attribution", "mixer": "interleave",
    }
    cfg = composed.cfg
    assert (cfg.teacher.source, cfg.teacher.path, cfg.teacher.layer) == ("hf", "gpt2", 5)
    # OpenAI's SAE as SAELens's registry hosts it (the paper's v5_32k, layer 5).
    assert (cfg.sae.source, cfg.sae.release, cfg.sae.id, cfg.sae.n_latents, cfg.sae.k) == (
        "saelens", "gpt2-small-resid-post-v5-32k", "blocks.5.hook_resid_post", 32768, 32,
    )
    assert (cfg.concepts.k_attr, cfg.objective.lam, cfg.train.seq_len, cfg.train.lr) == (4, 0.1, 1024, 6e-4)
    assert cfg.train.micro_batch_size * cfg.train.grad_accum == 512  # sequences per step (one GPU)
    # preset=tiny shrinks the student only: the teacher, SAE and concept settings stay the paper's.
    tiny = compose_recipe("paper/faithful_69m", ["preset=tiny"]).cfg
    assert tiny.model.model_dim == 128 and tiny.teacher.layer == 5 and tiny.sae.n_latents == 32768
    assert tiny.model.concept_topk == 32 and tiny.concepts.k_attr == 4 and not tiny.train.compile
