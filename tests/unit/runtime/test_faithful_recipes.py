"""The paper-faithful recipes dry-run at the paper's sizes (brief §3) with the paper's components."""

from __future__ import annotations

import pytest

from cocomix.runtime.compose import compose_recipe
from cocomix.runtime.launch import dry_run


@pytest.mark.parametrize(
    ("recipe", "ntp_total", "cocomix_total", "cocomix_active"),
    [  # paper brief §3, in millions; KD uses the NTP (widened) model
        ("paper/faithful_69m", 69.4, 85.1, 68.3),
        ("paper/faithful_386m", 386.3, 422.0, 388.4),
        ("paper/faithful_1b", 1373.4, 1447.9, 1380.8),
    ],
)
def test_faithful_recipes_count_the_papers_parameters(
    recipe: str, ntp_total: float, cocomix_total: float, cocomix_active: float
) -> None:
    text = dry_run(recipe, [])
    counts = [line for line in text.splitlines() if line.startswith("parameters:")]
    (ntp, ntp_active), (kd, _), (total, active) = (
        tuple(int(part.split("=")[1]) / 1e6 for part in line.split()[1:]) for line in counts
    )
    assert abs(ntp - ntp_total) < 0.1 and ntp_active == ntp and kd == ntp
    assert abs(total - cocomix_total) < 0.1 and abs(active - cocomix_active) < 0.1


def test_faithful_recipe_uses_the_papers_pipeline() -> None:
    composed = compose_recipe("paper/faithful_69m", [])
    assert composed.preset == "paper"
    assert {k: composed.choices[k] for k in ("data", "tokenizer", "concepts", "mixer")} == {
        "data": "openwebtext", "tokenizer": "gpt2_bpe", "concepts": "attribution", "mixer": "interleave",
    }
    cfg = composed.cfg
    assert (cfg.teacher.source, cfg.teacher.layer, cfg.sae.source, cfg.sae.n_latents, cfg.sae.k) == (
        "hf_gpt2", 5, "file", 32768, 32,
    )
    assert (cfg.concepts.k_attr, cfg.objective.lam, cfg.train.seq_len, cfg.train.lr) == (4, 0.1, 1024, 6e-4)
    assert cfg.train.micro_batch_size * cfg.train.grad_accum == 512  # sequences per step (one GPU)
    # preset=tiny shrinks the student only: the teacher, SAE and concept settings stay the paper's.
    tiny = compose_recipe("paper/faithful_69m", ["preset=tiny"]).cfg
    assert tiny.model.model_dim == 128 and tiny.teacher.layer == 5 and tiny.sae.n_latents == 32768
    assert tiny.model.concept_topk == 32 and tiny.concepts.k_attr == 4 and not tiny.train.compile
