"""SAEs that SAELens wrote, read through ``sae.source=saelens``: labels equal what SAELens's own
``encode`` gives on the teacher's hidden states, for every architecture SAELens loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor

from cocomix.concepts.sources import ActivationConfig, AttributionConfig, SourceContext
from cocomix.registry import CONCEPT_SOURCES, CocomixError
from cocomix.runtime import saelens
from cocomix.runtime.hf_teacher import HFCausalLMTeacher

LAYER, K_ATTR = 1, 4


def _tokens(vocab: int) -> Tensor:
    return torch.randint(3, vocab, (2, 24), generator=torch.Generator().manual_seed(0))


def _reference_residual_and_grad(folder: Path, tokens: Tensor) -> tuple[Tensor, Tensor]:
    """h after block LAYER and d(mean next-token CE)/dh, straight from transformers with a hook."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    seen: list[Tensor] = []

    def hook(_module, _args, output):  # noqa: ANN001, ANN202
        h = (output[0] if isinstance(output, tuple) else output).detach().requires_grad_(True)
        seen.append(h)
        return (h, *output[1:]) if isinstance(output, tuple) else h

    handle = model.model.layers[LAYER].register_forward_hook(hook)
    logits = model(tokens).logits
    handle.remove()
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), tokens[:, 1:].reshape(-1))
    (grad,) = torch.autograd.grad(loss, seen[0])
    return seen[0].detach(), grad


def _random_sae(kind: str, d: int, n: int, folder: Path, **options: object) -> Path:
    import sae_lens
    from sae_lens.saes.sae import SAEMetadata

    classes = {"standard": (sae_lens.StandardSAE, sae_lens.StandardSAEConfig),
               "jumprelu": (sae_lens.JumpReLUSAE, sae_lens.JumpReLUSAEConfig),
               "gated": (sae_lens.GatedSAE, sae_lens.GatedSAEConfig),
               "topk": (sae_lens.TopKSAE, sae_lens.TopKSAEConfig)}
    cls, cfg_cls = classes[kind]
    torch.manual_seed(1)
    sae = cls(cfg_cls(d_in=d, d_sae=n, metadata=SAEMetadata(hook_name=f"blocks.{LAYER}.hook_resid_post"), **options))
    with torch.no_grad():
        for name, param in sae.named_parameters():
            if name in ("b_enc", "b_dec", "b_gate", "b_mag"):
                param.normal_(0, 0.1)
            if name == "threshold":
                param.fill_(0.05)
    sae.save_model(folder)
    return folder


def _sources(teacher: HFCausalLMTeacher, dictionary: saelens.SAELensDictionary, tokens: Tensor) -> tuple[Tensor, Tensor]:
    context = SourceContext(teacher=teacher, sae=dictionary, layer=LAYER)
    act = CONCEPT_SOURCES.build("activation", ActivationConfig(k_attr=K_ATTR), context).targets(tokens).labels
    attr = CONCEPT_SOURCES.build("attribution", AttributionConfig(k_attr=K_ATTR), context).targets(tokens).labels
    return act, attr


@pytest.mark.parametrize(("kind", "options"), [
    ("topk", {"k": 8}),  # the stand-in's own architecture, as the paper's OpenAI SAE
    ("topk", {"k": 8, "normalize_activations": "layer_norm", "rescale_acts_by_decoder_norm": True}),
    ("standard", {"apply_b_dec_to_input": False}),
    ("jumprelu", {}),
    ("gated", {"normalize_activations": "expected_average_only_in"}),
])
def test_labels_equal_saelens_encode_on_the_teachers_hidden_states(
    hf_stand_ins: dict[str, Path], tmp_path: Path, kind: str, options: dict[str, object]
) -> None:
    from sae_lens import SAE

    folder = _random_sae(kind, 32, 128, tmp_path / kind, **options)
    teacher = HFCausalLMTeacher(hf_stand_ins["llama"])
    tokens = _tokens(teacher.vocab_size)
    reference = SAE.load_from_disk(str(folder))
    h, grad = _reference_residual_and_grad(hf_stand_ins["llama"], tokens)
    with torch.no_grad():
        acts = reference.encode(h)  # dense (B, T, n), SAELens's own conventions
    active = int((acts > 0).sum(-1).max())
    assert active >= K_ATTR, "the random SAE must fire on enough latents for the test to mean something"
    # A cap at least the most latents any token fires keeps every active latent in the code.
    dictionary = saelens.load_folder(folder, k=int(options.get("k", active)))
    act, attr = _sources(teacher, dictionary, tokens)
    # Activation labels: SAELens's K_ATTR largest activations (compared by value: ties are free).
    torch.testing.assert_close(acts.gather(-1, act), acts.topk(K_ATTR, dim=-1).values)
    # Attribution (the official code's Eq. 1): c_t * <dL/dh, W_dec[i]>, among the active latents.
    rows = reference.W_dec / reference.W_dec.norm(dim=-1, keepdim=True) if options.get(
        "rescale_acts_by_decoder_norm") else reference.W_dec
    scores = torch.where(acts > 0, acts * (grad @ rows.T), torch.tensor(float("-inf")))
    best = scores.topk(K_ATTR, dim=-1).values
    chosen = scores.gather(-1, attr).sort(dim=-1, descending=True).values
    decided = (best[..., -1] > 0) & torch.isfinite(best[..., -1])  # K_ATTR active latents score > 0
    assert decided.float().mean() > 0.5
    torch.testing.assert_close(chosen[decided], best[decided], rtol=1e-4, atol=1e-7)


def test_the_paper_variant_reads_saelens_pre_activations(hf_stand_ins: dict[str, Path]) -> None:
    dictionary = saelens.load_folder(hf_stand_ins["sae"], k=8)
    x = torch.randn(3, 32)
    sae = dictionary.sae
    torch.testing.assert_close(dictionary.pre_activations(x), sae.process_sae_in(x) @ sae.W_enc + sae.b_enc)


def _edit_cfg(folder: Path, tmp_path: Path, name: str, **changes: object) -> Path:
    import shutil

    copy = tmp_path / name
    shutil.copytree(folder, copy)
    cfg = json.loads((copy / "cfg.json").read_text())
    for key, value in changes.items():
        if key == "hook_name":
            cfg["metadata"]["hook_name"] = value
        else:
            cfg[key] = value
    (copy / "cfg.json").write_text(json.dumps(cfg))
    return copy


@pytest.mark.parametrize(("changes", "message"), [
    ({"hook_name": "blocks.3.hook_resid_post"}, "trained on blocks.3.hook_resid_post \\(the residual after block 3\\), "
                                                "but teacher.layer=1; set teacher.layer=3"),
    ({"hook_name": "blocks.1.hook_mlp_out"}, "was trained on blocks.1.hook_mlp_out, not on the residual stream"),
    ({"d_in": 48}, "reads width 48 \\(d_in\\), but the teacher's hidden size is 32"),
    ({"architecture": "hypersparse"}, "is a 'hypersparse' SAE, which this SAELens does not load; supported: "),
    ({"reshape_activations": "hook_z"}, "reads attention heads"),
    ({"k": 16}, "is a TopK SAE with k=16, but the recipe declares sae.k=8; set sae.k=16"),
])
def test_a_wrong_saelens_sae_is_one_clear_error(hf_stand_ins: dict[str, Path], tmp_path: Path,
                                                changes: dict[str, object], message: str) -> None:
    folder = _edit_cfg(hf_stand_ins["sae"], tmp_path, "edited", **changes)
    with pytest.raises(CocomixError, match=message):
        saelens.check_shape(saelens.read_cfg(folder), f"SAE {folder}", layer=1, teacher_width=32, n_latents=128, k=8)
    with pytest.raises(CocomixError, match="has 128 latents, but the recipe declares sae.n_latents=32768; set "
                                           "sae.n_latents=128"):
        saelens.check_shape(saelens.read_cfg(hf_stand_ins["sae"]), "SAE", layer=1, teacher_width=32,
                            n_latents=32768, k=8)


def test_registry_names_are_checked_offline() -> None:
    assert saelens.check_registry_name("gpt2-small-resid-post-v5-32k", "blocks.5.hook_resid_post").startswith("jbloom/")
    with pytest.raises(CocomixError, match="sae.release=gpt2-small-nonsense is not in SAELens's registry"):
        saelens.check_registry_name("gpt2-small-nonsense", "blocks.5.hook_resid_post")
    with pytest.raises(CocomixError, match="sae.id=blocks.99.hook_resid_post is not in release"):
        saelens.check_registry_name("gpt2-small-resid-post-v5-32k", "blocks.99.hook_resid_post")
    assert saelens.hook_block("blocks.6.hook_resid_pre") == 5 and saelens.hook_block("blocks.5.hook_resid_post") == 5
