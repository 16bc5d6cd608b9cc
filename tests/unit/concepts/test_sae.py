"""TopK SAE: OpenAI layout and math, OpenAI-format I/O, training and evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cocomix.concepts.sae import (
    TopKSAE,
    layer_norm_no_affine,
    load_openai_sae,
    openai_state_dict,
    save_openai_sae,
)
from cocomix.concepts.sae_training import SAETrainConfig, evaluate_sae, geometric_median, train_sae
from cocomix.registry import CocomixError


def _random_sae(d: int = 12, n: int = 40, k: int = 5, normalize: bool = True, seed: int = 0) -> TopKSAE:
    """An SAE with non-trivial biases and untied weights, so every term of the math shows."""
    g = torch.Generator().manual_seed(seed)
    sae = TopKSAE(d, n, k, normalize=normalize, generator=g)
    with torch.no_grad():
        sae.pre_bias.normal_(generator=g)
        sae.latent_bias.normal_(generator=g)
        sae.encoder.weight.normal_(generator=g)
    return sae


def _openai_reference(sae: TopKSAE, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """OpenAI's dense Autoencoder.forward written out: (pre_acts, dense latents, recons)."""
    if sae.normalize:
        mu = x.mean(-1, keepdim=True)
        xc = x - mu
        std = xc.std(-1, keepdim=True)
        xn = xc / (std + 1e-5)
    else:
        xn, mu, std = x, torch.zeros(()), torch.ones(())
    pre = F.linear(xn - sae.pre_bias, sae.encoder.weight, sae.latent_bias)
    top = torch.topk(pre, sae.k, dim=-1)
    lat = torch.zeros_like(pre).scatter_(-1, top.indices, torch.relu(top.values))
    rec = F.linear(lat, sae.decoder.weight) + sae.pre_bias
    return pre, lat, rec * std + mu


def test_layout_and_init() -> None:
    sae = TopKSAE(12, 40, 5, generator=torch.Generator().manual_seed(1))
    shapes = {name: tuple(p.shape) for name, p in sae.named_parameters()}
    assert shapes == {"pre_bias": (12,), "latent_bias": (40,), "encoder.weight": (40, 12), "decoder.weight": (12, 40)}
    assert (sae.d_model, sae.n_latents, sae.k, sae.normalize) == (12, 40, 5, True)
    torch.testing.assert_close(sae.decoder.weight.norm(dim=0), torch.ones(40))
    torch.testing.assert_close(sae.encoder.weight, sae.decoder.weight.t())
    assert sae.pre_bias.abs().sum() == 0 and sae.latent_bias.abs().sum() == 0
    assert sae.decoder.weight.t().is_contiguous()  # column-major: fast column gathers
    again = TopKSAE(12, 40, 5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(again.decoder.weight, sae.decoder.weight)
    with pytest.raises(CocomixError, match="1 <= k <= n_latents"):
        TopKSAE(4, 8, 9)


def test_preprocess_is_openai_ln() -> None:
    x = torch.randn(3, 7, 12) * 4 + 2
    xn, mu, std = TopKSAE(12, 40, 5).preprocess(x)
    torch.testing.assert_close(mu, x.mean(-1, keepdim=True))
    torch.testing.assert_close(std, x.std(-1, keepdim=True, unbiased=True))
    torch.testing.assert_close(xn, (x - mu) / (std + 1e-5))
    xi, mu0, std1 = TopKSAE(12, 40, 5, normalize=False).preprocess(x)
    assert xi is x and torch.all(mu0 == 0) and torch.all(std1 == 1) and mu0.shape == (3, 7, 1)


@pytest.mark.parametrize("normalize", [True, False])
def test_encode_decode_match_openai_dense_reference(normalize: bool) -> None:
    sae = _random_sae(normalize=normalize)
    x = torch.randn(2, 9, 12) * 3
    pre_ref, lat_ref, rec_ref = _openai_reference(sae, x)
    out = sae(x)
    torch.testing.assert_close(out.pre_acts, pre_ref)
    torch.testing.assert_close(out.code.to_dense(40), lat_ref)
    torch.testing.assert_close(out.recon, rec_ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(sae.decode(sae.encode(x)), rec_ref, rtol=1e-4, atol=1e-4)
    assert out.code.values.shape == out.code.indices.shape == (2, 9, 5)
    assert out.code.indices.dtype == torch.long
    assert torch.all(out.code.values[..., :-1] >= out.code.values[..., 1:])  # sorted, largest first


def test_relu_after_topk_keeps_zeros() -> None:
    sae = _random_sae()
    with torch.no_grad():
        sae.latent_bias.fill_(-100.0)  # every pre-activation negative
    code = sae.encode(torch.randn(4, 12))
    assert torch.all(code.values == 0) and code.indices.shape == (4, 5)


def test_decode_gradients_reach_decoder_and_values() -> None:
    sae = _random_sae()
    code = sae.encode(torch.randn(6, 12))
    values = code.values.detach().clone().requires_grad_(True)
    sae.decode_normalized(values, code.indices).pow(2).sum().backward()
    assert values.grad is not None and sae.decoder.weight.grad is not None
    touched = (sae.decoder.weight.grad.abs().sum(0) > 0).nonzero().flatten()
    assert set(touched.tolist()) <= set(code.indices.flatten().tolist())


def test_openai_state_dict_round_trip(tmp_path: Path) -> None:
    sae = _random_sae()
    sd = openai_state_dict(sae)
    assert sd["activation"] == "TopK" and sd["activation_state_dict"] == {"k": 5, "postact_fn": "ReLU"}
    assert "normalize" not in sd  # OpenAI infers normalize from TopK
    assert {"pre_bias", "latent_bias", "encoder.weight", "decoder.weight", "stats_last_nonzero"} <= set(sd)
    path = save_openai_sae(sae, tmp_path / "sae.pt")
    loaded = load_openai_sae(path, expected_d_model=12)
    x = torch.randn(5, 12)
    torch.testing.assert_close(loaded(x).recon, sae(x).recon)
    assert (loaded.k, loaded.normalize, loaded.n_latents) == (5, True, 40)

    plain = _random_sae(normalize=False)
    sd = openai_state_dict(plain)
    assert sd["normalize"] is False
    keys = set(sd)
    assert load_openai_sae(sd).normalize is False
    assert set(sd) == keys  # the caller's dict is not mutated (OpenAI's loader pops keys)


def _openai_like(d: int = 768, n: int = 8, k: int = 4) -> dict[str, object]:
    return {
        "pre_bias": torch.zeros(d),
        "latent_bias": torch.zeros(n),
        "encoder.weight": torch.randn(n, d),
        "decoder.weight": torch.randn(d, n),
        "activation": "TopK",
        "activation_state_dict": {"k": k, "postact_fn": "ReLU"},
    }


def test_load_errors_are_one_clear_line(tmp_path: Path) -> None:
    sd = _openai_like()
    assert load_openai_sae(sd, expected_d_model=768).d_model == 768
    with pytest.raises(CocomixError, match="SAE width 768 does not match the teacher's hidden size 512"):
        load_openai_sae(sd, expected_d_model=512)
    with pytest.raises(CocomixError, match="missing 'decoder.weight'"):
        load_openai_sae({k: v for k, v in sd.items() if k != "decoder.weight"})
    bad = dict(sd, **{"decoder.weight": torch.randn(768, 9)})
    with pytest.raises(CocomixError, match=r"decoder.weight is \(768, 9\); expected \(768, 8\)"):
        load_openai_sae(bad)
    with pytest.raises(CocomixError, match="only TopK"):
        load_openai_sae(dict(sd, activation="ReLU"))
    with pytest.raises(CocomixError, match="k=9 is outside"):
        load_openai_sae(dict(sd, activation_state_dict={"k": 9, "postact_fn": "ReLU"}))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a torch file at all")
    with pytest.raises(CocomixError, match=f"cannot read SAE file {corrupt}"):
        load_openai_sae(corrupt)
    with pytest.raises(CocomixError, match="does not exist"):
        load_openai_sae(tmp_path / "missing.pt")
    torch.save(sd, tmp_path / "named.pt")
    with pytest.raises(CocomixError, match=f"SAE {tmp_path / 'named.pt'}: SAE width 768"):
        load_openai_sae(tmp_path / "named.pt", expected_d_model=512)


def _sparse_data(n_samples: int, d: int = 32, n_dirs: int = 64, active: int = 4, seed: int = 0) -> torch.Tensor:
    """x = sum of ``active`` random unit directions (of ``n_dirs``) with positive weights + noise.

    The directions are fixed; ``seed`` only draws the samples (so seed=1 is held-out data).
    """
    dirs = F.normalize(torch.randn(n_dirs, d, generator=torch.Generator().manual_seed(1234)), dim=-1)
    g = torch.Generator().manual_seed(seed)
    idx = torch.stack([torch.randperm(n_dirs, generator=g)[:active] for _ in range(n_samples)])
    coef = torch.rand(n_samples, active, generator=g) * 1.5 + 0.5
    x = (coef[..., None] * dirs[idx]).sum(1)
    return x + 0.01 * torch.randn(n_samples, d, generator=g)


def test_training_recovers_sparse_structure() -> None:
    data = _sparse_data(20_000)
    held_out = _sparse_data(4_000, seed=1)
    config = SAETrainConfig(n_latents=128, k=8, lr=1e-2, steps=150, batch_tokens=512, auxk=32, dead_tokens=2_000)
    sae, stats = train_sae(data, config, d_model=32, progress=False, log_every=50)
    metrics = evaluate_sae(sae, held_out.split(1000))
    assert metrics["fve"] > 0.7, metrics  # the mean baseline scores fve = 0 (this reaches ~0.91)
    assert metrics["nmse"] == pytest.approx(1 - metrics["fve"])
    assert 0 < metrics["l0"] <= 8 and 0 <= metrics["dead_fraction"] < 1
    assert stats.steps == 150 and stats.tokens == 150 * 512 and len(stats.history) == 3
    torch.testing.assert_close(sae.decoder.weight.norm(dim=0), torch.ones(128))
    again, _ = train_sae(data, config, d_model=32, progress=False)  # seeded: same SAE
    torch.testing.assert_close(again.decoder.weight, sae.decoder.weight)


def test_mean_baseline_scores_nmse_one() -> None:
    data = _sparse_data(2_000)
    sae = TopKSAE(32, 16, 2)
    with torch.no_grad():
        sae.decoder.weight.zero_()  # reconstruction = pre_bias
        sae.pre_bias.copy_(sae.preprocess(data)[0].mean(0))
    metrics = evaluate_sae(sae, data)
    assert metrics["nmse"] == pytest.approx(1.0, abs=1e-5)


def test_auxk_engages_on_dead_latents_and_streams() -> None:
    data = _sparse_data(4_000, d=16, n_dirs=4, active=1)  # 4 directions, 64 latents: most idle
    # dead_tokens = one batch: a latent that did not fire in this batch counts as dead
    config = SAETrainConfig(n_latents=64, k=2, steps=20, batch_tokens=256, auxk=16, dead_tokens=256)
    stream = lambda n: data[torch.randint(0, 4000, (n,))]  # noqa: E731
    _, stats = train_sae(stream, config, d_model=16, progress=False, log_every=5)
    assert all(row["auxk"] > 0 and row["dead_fraction"] > 0 for row in stats.history)
    config_off = SAETrainConfig(**{**config.__dict__, "auxk": 0})
    _, off = train_sae(stream, config_off, d_model=16, progress=False, log_every=5)
    assert all(row["auxk"] == 0 for row in off.history)
    batches = list(data.split(256))  # a sequence is cycled
    assert train_sae(batches, config, d_model=16, progress=False)[1].steps == 20
    with pytest.raises(CocomixError, match="ended after 3 batches"):
        train_sae(iter(batches[:3]), config, d_model=16, progress=False)
    with pytest.raises(CocomixError, match="width 16, expected d_model=8"):
        train_sae(batches, config, d_model=8, progress=False)


def test_geometric_median_resists_outliers() -> None:
    x = torch.cat([torch.randn(99, 3) * 0.01, torch.full((1, 3), 1000.0)])
    assert geometric_median(x).abs().max() < 1.0
    xn, _, _ = layer_norm_no_affine(torch.randn(5, 8))
    torch.testing.assert_close(xn.mean(-1), torch.zeros(5), atol=1e-6, rtol=0)
