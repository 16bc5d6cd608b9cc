"""TopK sparse autoencoder in OpenAI's layout (Gao et al. 2024; paper brief §1.1-1.2).

The paper extracts concepts with OpenAI's public GPT-2 SAE ``v5_32k`` (n = 32768 latents, k = 32,
``normalize=True``). This module reproduces that model exactly so a released state dict loads and
encodes the same numbers, and so an SAE trained here (``sae_training.py``) can be saved in the same
format:

    LN(x)   = (x - mu) / (std + 1e-5)      mu, std per token over d; std is the *unbiased* std
    c_pre   = (LN(x) - pre_bias) W_enc^T + latent_bias                      (dense, n wide)
    c       = ReLU(TopK_k(c_pre))                                            (k values + indices)
    x_hat   = (W_dec c + pre_bias) * std + mu

Parameter names and shapes follow OpenAI's ``Autoencoder``: ``pre_bias`` (d), ``latent_bias`` (n),
``encoder.weight`` (n, d), ``decoder.weight`` (d, n). The decoder weight is stored column-major
(its transpose is contiguous), as OpenAI's ``FastAutoencoder`` does, so gathering the k active
columns is a fast row gather. Nothing n-wide is built except the pre-activations.

The OpenAI-format writer/reader is at the end (``openai_state_dict``, ``save_openai_sae``,
``load_openai_sae``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cocomix.registry import CocomixError, first_line

LN_EPS = 1e-5
"""OpenAI's ``LN`` epsilon, added to the std (not inside a square root)."""


def layer_norm_no_affine(x: Tensor, eps: float = LN_EPS) -> tuple[Tensor, Tensor, Tensor]:
    """OpenAI's ``LN``: ``((x - mu) / (std + eps), mu, std)`` over the last dim, unbiased std.

    This differs from ``F.layer_norm`` twice: the std is unbiased (Bessel-corrected) and ``eps`` is
    added to the std rather than the variance. The SAE decode multiplies back by ``std`` (not
    ``std + eps``), as OpenAI's code does.
    """
    mu = x.mean(dim=-1, keepdim=True)
    centred = x - mu
    std = centred.std(dim=-1, keepdim=True)
    return centred / (std + eps), mu, std


@dataclass
class SparseCode:
    """The post-TopK code of a batch of vectors: k (value, index) pairs per vector.

    ``values`` are post-ReLU, so some may be zero when fewer than k pre-activations are positive.
    ``encode`` returns them sorted by value, largest first. ``mu``/``std`` are the LN statistics
    needed to map a reconstruction back to input space (0 and 1 when the SAE does not normalise).
    """

    values: Tensor
    """(..., k) post-ReLU activations c_t at ``indices``."""
    indices: Tensor
    """(..., k) int64 latent ids."""
    mu: Tensor
    """(..., 1) per-vector mean removed by the SAE's LN."""
    std: Tensor
    """(..., 1) per-vector unbiased std used by the SAE's LN."""

    def to_dense(self, n_latents: int) -> Tensor:
        """(..., n) dense code, zeros off the support. For references and tests only."""
        dense = self.values.new_zeros((*self.values.shape[:-1], n_latents))
        return dense.scatter_(-1, self.indices, self.values)


@dataclass
class SAEOutput:
    """What ``TopKSAE.forward`` returns."""

    recon: Tensor
    """(..., d) reconstruction in input space."""
    code: SparseCode
    pre_acts: Tensor
    """(..., n) dense pre-activations c_pre (the paper's Eq. 1 multiplies by these)."""


class TopKSAE(nn.Module):
    """TopK SAE with OpenAI's parameter names, LN normalisation and ReLU after TopK."""

    def __init__(
        self,
        d_model: int,
        n_latents: int,
        k: int,
        *,
        normalize: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if d_model < 1 or n_latents < 1:
            raise CocomixError(
                f"TopKSAE needs d_model >= 1 and n_latents >= 1, got {d_model}, {n_latents}"
            )
        if not 1 <= k <= n_latents:
            raise CocomixError(
                f"TopKSAE needs 1 <= k <= n_latents, got k={k}, n_latents={n_latents}"
            )
        self.d_model = d_model
        self.n_latents = n_latents
        self.k = k
        self.normalize = normalize
        self.pre_bias = nn.Parameter(torch.zeros(d_model))
        self.latent_bias = nn.Parameter(torch.zeros(n_latents))
        self.encoder = nn.Linear(d_model, n_latents, bias=False)
        self.decoder = nn.Linear(n_latents, d_model, bias=False)
        # Column-major decoder: the (d, n) weight is a transposed view of an (n, d) block, so
        # ``decoder.weight.t()`` is contiguous and gathering latent columns is a row gather.
        self.decoder.weight = nn.Parameter(torch.empty(n_latents, d_model).t())
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Random unit-norm decoder columns, encoder = decoder^T ("tied" init), zero biases.

        Gao et al. 2024 §A.1 (and OpenAI's ``FastAutoencoder``) initialise the encoder as the
        transpose of the decoder; the decoder columns are unit norm from the start.
        """
        with torch.no_grad():
            w = torch.randn(self.n_latents, self.d_model, generator=generator)
            self.decoder.weight.copy_(w.t())
            self.normalize_decoder_()
            self.encoder.weight.copy_(self.decoder.weight.t())
            self.pre_bias.zero_()
            self.latent_bias.zero_()

    @property
    def dtype(self) -> torch.dtype:
        return self.pre_bias.dtype

    @property
    def decoder_rows(self) -> Tensor:
        """(n, d) view of the decoder: row i is latent i's direction W_dec[:, i]."""
        return self.decoder.weight.t()

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        """Rescale every decoder column to unit L2 norm (after each optimizer step and at init)."""
        w = self.decoder.weight
        w.div_(w.norm(dim=0, keepdim=True).clamp_min(1e-12))

    def freeze(self) -> TopKSAE:
        """Eval mode and no parameter gradients: how concept sources hold the SAE."""
        self.eval()
        self.requires_grad_(False)
        return self

    # ---- encode -------------------------------------------------------------------------------

    def preprocess(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(x_norm, mu, std)``: OpenAI's LN when ``normalize``, else identity with mu=0, std=1."""
        if self.normalize:
            return layer_norm_no_affine(x)
        ones = x.new_ones((*x.shape[:-1], 1))
        return x, torch.zeros_like(ones), ones

    def encode_pre(self, x_norm: Tensor) -> Tensor:
        """Dense pre-activations ``(x_norm - pre_bias) W_enc^T + latent_bias``, shape (..., n)."""
        return F.linear(x_norm - self.pre_bias, self.encoder.weight, self.latent_bias)

    def pre_activations(self, x: Tensor) -> Tensor:
        """Dense c_pre of ``x`` (..., d) in input space: ``encode_pre(LN(x))``."""
        return self.encode_pre(self.preprocess(x)[0])

    def _encode(self, x: Tensor) -> tuple[SparseCode, Tensor]:
        x_norm, mu, std = self.preprocess(x)
        pre = self.encode_pre(x_norm)
        top = torch.topk(pre, self.k, dim=-1, sorted=True)
        # OpenAI's TopK(k, postact_fn=ReLU): ReLU only on the kept values.
        return SparseCode(torch.relu(top.values), top.indices, mu, std), pre

    def encode(self, x: Tensor) -> SparseCode:
        """Post-TopK code of ``x`` (..., d): k ReLU'd values and their latent ids, largest first."""
        return self._encode(x)[0]

    # ---- decode -------------------------------------------------------------------------------

    def decode_normalized(self, values: Tensor, indices: Tensor, *, bias: bool = True) -> Tensor:
        """``sum_i values_i W_dec[:, idx_i] (+ pre_bias)`` in the SAE's normalised space.

        ``embedding_bag`` with per-sample weights sums the k gathered decoder rows without building
        an (..., k, d) or (..., n) tensor; gradients reach both the decoder and ``values``.
        """
        lead = values.shape[:-1]
        flat = F.embedding_bag(
            indices.reshape(-1, indices.shape[-1]),
            self.decoder_rows,
            per_sample_weights=values.reshape(-1, values.shape[-1]).to(self.decoder_rows.dtype),
            mode="sum",
        )
        out = flat.reshape(*lead, self.d_model)
        return out + self.pre_bias if bias else out

    def decode(self, code: SparseCode) -> Tensor:
        """Reconstruction in input space: ``(W_dec c + pre_bias) * std + mu``."""
        return self.decode_normalized(code.values, code.indices) * code.std + code.mu

    def forward(self, x: Tensor) -> SAEOutput:
        code, pre = self._encode(x)
        return SAEOutput(self.decode(code), code, pre)

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, n_latents={self.n_latents}, k={self.k}, "
            f"normalize={self.normalize}"
        )



# ---- OpenAI-format I/O ------------------------------------------------------------------------

OPENAI_TENSOR_KEYS: tuple[str, ...] = (
    "pre_bias",
    "latent_bias",
    "encoder.weight",
    "decoder.weight",
)
OPENAI_STATS_BUFFERS: tuple[str, ...] = (
    "stats_last_nonzero",
    "latents_activation_frequency",
    "latents_mean_square",
)
"""Bookkeeping buffers OpenAI's ``Autoencoder`` registers; we write them (so OpenAI's strict
``Autoencoder.from_state_dict`` accepts our files) and ignore them when reading."""


def openai_state_dict(sae: TopKSAE) -> dict[str, Any]:
    """The SAE as OpenAI's ``Autoencoder.state_dict()`` would write it.

    ``activation`` and ``activation_state_dict["postact_fn"]`` are class *names* ("TopK", "ReLU"):
    that is exactly what OpenAI's ``state_dict`` overrides store (``x.__class__.__name__``) and
    what its ``ACTIVATIONS_CLASSES`` lookup reads back, so a plain string is both faithful and
    loadable with ``torch.load(weights_only=True)``.

    Normalisation: OpenAI infers ``normalize = (activation == "TopK")`` and has no key for it.
    An SAE with ``normalize=False`` therefore gets an extra ``"normalize": False`` entry, which our
    loader honours (OpenAI's format cannot express that SAE at all).
    """
    n = sae.n_latents
    sd: dict[str, Any] = {
        "pre_bias": sae.pre_bias.detach().cpu().clone(),
        "latent_bias": sae.latent_bias.detach().cpu().clone(),
        "encoder.weight": sae.encoder.weight.detach().cpu().contiguous().clone(),
        "decoder.weight": sae.decoder.weight.detach().cpu().contiguous().clone(),
        "stats_last_nonzero": torch.zeros(n, dtype=torch.long),
        "latents_activation_frequency": torch.ones(n, dtype=torch.float),
        "latents_mean_square": torch.zeros(n, dtype=torch.float),
        "activation": "TopK",
        "activation_state_dict": {"k": sae.k, "postact_fn": "ReLU"},
    }
    if not sae.normalize:
        sd["normalize"] = False
    return sd


def save_openai_sae(sae: TopKSAE, path: str | os.PathLike[str]) -> Path:
    """Write ``openai_state_dict(sae)`` with ``torch.save``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(openai_state_dict(sae), path)
    return path


def _class_name(obj: object) -> str:
    """'TopK' for 'TopK', 'sparse_autoencoder.model.TopK' or a TopK instance."""
    name = obj if isinstance(obj, str) else type(obj).__name__
    return name.rsplit(".", 1)[-1]


def load_openai_sae(
    source: str | os.PathLike[str] | Mapping[str, Any], *, expected_d_model: int | None = None
) -> TopKSAE:
    """Build a ``TopKSAE`` from an OpenAI-format ``.pt`` file or state dict (never mutated).

    Every problem is one ``CocomixError`` naming the file and the mismatch: unreadable file,
    missing key, non-TopK activation, inconsistent shapes, or a width that differs from the
    teacher's (``expected_d_model``).
    """
    if isinstance(source, Mapping):
        name, sd = "<state dict>", source
    else:
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise CocomixError(
                f"SAE file {path} does not exist; fix sae.path or set sae.source=train"
            )
        try:
            # weights_only: OpenAI's files hold only tensors, strings, ints and dicts.
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # corrupt, truncated, or pickled with arbitrary objects
            first = first_line(err)
            if first.startswith("Weights only load failed"):  # torch's hint would mislead here
                first = "not a torch file, or truncated"
            raise CocomixError(
                f"cannot read SAE file {path} as a torch state dict ({first}); re-download or "
                f"re-train it (recipe sae/train)"
            ) from None
    if not isinstance(sd, Mapping):
        raise CocomixError(f"SAE {name} holds a {type(sd).__name__}, not a state dict")

    required = (*OPENAI_TENSOR_KEYS, "activation", "activation_state_dict")
    missing = [key for key in required if key not in sd]
    if missing:
        raise CocomixError(
            f"SAE {name} is missing {', '.join(repr(m) for m in missing)}; an OpenAI-format TopK "
            f"SAE has {', '.join(OPENAI_TENSOR_KEYS)}, 'activation' and 'activation_state_dict'"
        )
    if _class_name(sd["activation"]) != "TopK":
        raise CocomixError(
            f"SAE {name} has activation {sd['activation']!r}; only TopK SAEs are supported"
        )
    act = sd["activation_state_dict"]
    k = act.get("k") if isinstance(act, Mapping) else None
    if not isinstance(k, int) or isinstance(k, bool):
        raise CocomixError(f"SAE {name}: activation_state_dict has no integer 'k' (got {act!r})")
    postact = _class_name(act.get("postact_fn", "ReLU"))
    if postact != "ReLU":
        raise CocomixError(f"SAE {name}: TopK postact_fn {postact!r} is not supported (only ReLU)")

    tensors = {key: sd[key] for key in OPENAI_TENSOR_KEYS}
    for key, value in tensors.items():
        if not isinstance(value, Tensor):
            raise CocomixError(f"SAE {name}: {key!r} is a {type(value).__name__}, not a tensor")
    enc = tensors["encoder.weight"]
    if enc.ndim != 2:
        raise CocomixError(
            f"SAE {name}: encoder.weight must be 2-D (n_latents, d), got {tuple(enc.shape)}"
        )
    n, d = enc.shape
    expected = {"decoder.weight": (d, n), "pre_bias": (d,), "latent_bias": (n,)}
    for key, shape in expected.items():
        if tuple(tensors[key].shape) != shape:
            raise CocomixError(
                f"SAE {name}: encoder.weight is (n_latents, d) = ({n}, {d}) but {key} is "
                f"{tuple(tensors[key].shape)}; expected {shape}"
            )
    if not 1 <= k <= n:
        raise CocomixError(f"SAE {name}: k={k} is outside 1..n_latents={n}")
    if expected_d_model is not None and d != expected_d_model:
        raise CocomixError(
            f"SAE {name}: SAE width {d} does not match the teacher's hidden size "
            f"{expected_d_model}; use an SAE trained on this teacher's layer (recipe sae/train)"
        )

    normalize = bool(sd.get("normalize", True))  # OpenAI: TopK implies normalize=True
    sae = TopKSAE(d, n, k, normalize=normalize)
    with torch.no_grad():
        sae.pre_bias.copy_(tensors["pre_bias"])
        sae.latent_bias.copy_(tensors["latent_bias"])
        sae.encoder.weight.copy_(enc)
        sae.decoder.weight.copy_(tensors["decoder.weight"])
    return sae
