"""Any SAE that the ``sae-lens`` package loads, as the concept dictionary (``sae.source=saelens``).

SAELens holds hundreds of published SAEs (OpenAI's GPT-2 SAEs that the paper uses, Gemma Scope,
Llama Scope, the Pythia SAEs) in one format: a folder with ``cfg.json`` and
``sae_weights.safetensors``. We load and encode with SAELens itself, so each architecture keeps
its own input normalisation, decoder-bias and threshold conventions (standard, topk, jumprelu,
gated, ...), and wrap it as a ``ConceptDictionary``:

- ``encode``: the ``k`` largest activations of SAELens's own ``encode`` (a TopK SAE's k; for the
  others ``sae.k`` caps the latents kept, the rest count as inactive);
- ``decoder_rows``: ``W_dec``'s rows, divided by their norms where the SAE rescales activations
  by them (``rescale_acts_by_decoder_norm``), i.e. what one unit of activation adds;
- ``pre_activations``: what SAELens's ``hook_sae_acts_pre`` sees (the paper's variant of Eq. 1).

The per-token input normalisation is a positive scale (and a centring) that attribution's
gradient leaves out, as for OpenAI's SAE (``concepts/attribution.py``): rankings are unchanged.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cocomix.concepts.sae import SparseCode
from cocomix.registry import CocomixError, first_line

CFG_FILE, WEIGHTS_FILE = "cfg.json", "sae_weights.safetensors"
FIXED_K = ("topk",)
"""Architectures whose every token has exactly ``k`` latents (its ``k`` must equal ``sae.k``)."""
_RESID = re.compile(r"^blocks\.(\d+)\.hook_resid_(pre|post)$")


@dataclass(frozen=True)
class SAELensShape:
    """What ``cfg.json`` says, read without the weights."""

    architecture: str
    d_in: int
    d_sae: int
    k: int | None
    hook_name: str | None
    model_name: str | None
    reshape: str


def read_cfg(folder: Path) -> SAELensShape:
    try:
        cfg = json.loads((folder / CFG_FILE).read_text())
    except (OSError, ValueError) as err:
        raise CocomixError(f"cannot read {folder / CFG_FILE} ({err}); sae.path must be a folder that "
                           f"SAELens wrote (cfg.json + {WEIGHTS_FILE})") from None
    return shape_of(cfg, str(folder))


def shape_of(cfg: dict[str, Any], where: str) -> SAELensShape:
    metadata = cfg.get("metadata") or {}
    try:
        return SAELensShape(
            architecture=str(cfg.get("architecture", "standard")), d_in=int(cfg["d_in"]), d_sae=int(cfg["d_sae"]),
            k=int(cfg["k"]) if cfg.get("k") is not None else None,
            hook_name=metadata.get("hook_name", cfg.get("hook_name")),
            model_name=metadata.get("model_name", cfg.get("model_name")),
            reshape=str(cfg.get("reshape_activations", "none")),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise CocomixError(f"{where}'s SAELens config lacks {err}; it is not an SAE that SAELens wrote") from None


def supported_architectures() -> list[str]:
    from sae_lens.registry import SAE_CLASS_REGISTRY

    return sorted(SAE_CLASS_REGISTRY)


def hook_block(hook_name: str) -> int | None:
    """The block whose output the hook reads: ``blocks.L.hook_resid_post`` is L, and
    ``blocks.L.hook_resid_pre`` (the input of block L) is L - 1; None for any other hook."""
    match = _RESID.match(hook_name)
    if match is None:
        return None
    block = int(match.group(1))
    return block if match.group(2) == "post" else block - 1


def check_shape(shape: SAELensShape, where: str, *, layer: int, teacher_width: int | None,
                n_latents: int, k: int) -> None:
    """Everything ``cfg.json`` lets us check against the recipe, before any weight is read."""
    if shape.architecture not in supported_architectures():
        raise CocomixError(f"{where} is a {shape.architecture!r} SAE, which this SAELens does not load; "
                           f"supported: {', '.join(supported_architectures())}")
    if shape.reshape != "none":
        raise CocomixError(f"{where} reads attention heads (reshape_activations={shape.reshape}); concepts "
                           f"come from the residual stream: use a residual-stream SAE")
    if shape.hook_name is not None:
        block = hook_block(shape.hook_name)
        if block is None:
            raise CocomixError(f"{where} was trained on {shape.hook_name}, not on the residual stream; use an "
                               f"SAE on blocks.{layer}.hook_resid_post")
        if block != layer:
            raise CocomixError(f"{where} was trained on {shape.hook_name} (the residual after block {block}), "
                               f"but teacher.layer={layer}; set teacher.layer={block} or use that layer's SAE")
    if teacher_width is not None and shape.d_in != teacher_width:
        raise CocomixError(f"{where} reads width {shape.d_in} (d_in), but the teacher's hidden size is "
                           f"{teacher_width}; use an SAE trained on this teacher")
    if shape.d_sae != n_latents:
        raise CocomixError(f"{where} has {shape.d_sae} latents, but the recipe declares sae.n_latents="
                           f"{n_latents}; set sae.n_latents={shape.d_sae}")
    if shape.architecture in FIXED_K and shape.k is not None and shape.k != k:
        raise CocomixError(f"{where} is a TopK SAE with k={shape.k}, but the recipe declares sae.k={k}; "
                           f"set sae.k={shape.k}")
    if not 1 <= k <= shape.d_sae:
        raise CocomixError(f"sae.k={k} must be in 1..{shape.d_sae} (the latents of {where}); fix sae.k")


class SAELensDictionary(nn.Module):
    """A frozen SAELens SAE as a ``ConceptDictionary`` (see the module docstring)."""

    def __init__(self, sae: Any, k: int) -> None:
        super().__init__()
        self.sae = sae.eval()
        self.sae.requires_grad_(False)
        self.d_model = int(sae.cfg.d_in)
        self.n_latents = int(sae.cfg.d_sae)
        self.k = k
        rows = sae.W_dec.detach()
        if getattr(sae.cfg, "rescale_acts_by_decoder_norm", False):
            rows = rows / rows.norm(dim=-1, keepdim=True)
        self.register_buffer("_rows", rows.contiguous(), persistent=False)

    @property
    def dtype(self) -> torch.dtype:
        return self.sae.W_dec.dtype

    @property
    def decoder_rows(self) -> Tensor:
        return self._rows

    def encode(self, x: Tensor) -> SparseCode:
        acts = self.sae.encode(x.to(self.dtype))
        top = torch.topk(acts, self.k, dim=-1, sorted=True)
        ones = acts.new_ones((*acts.shape[:-1], 1))
        return SparseCode(top.values, top.indices, torch.zeros_like(ones), ones)

    def pre_activations(self, x: Tensor) -> Tensor:
        seen: list[Tensor] = []
        handle = self.sae.hook_sae_acts_pre.register_forward_hook(lambda _m, _a, out: seen.append(out))
        try:
            self.sae.encode(x.to(self.dtype))
        finally:
            handle.remove()
        return seen[0]


def load_folder(folder: Path, k: int) -> SAELensDictionary:
    from sae_lens import SAE

    try:
        sae = SAE.load_from_disk(str(folder), device="cpu", dtype="float32")
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        first = first_line(err)
        raise CocomixError(f"SAELens cannot load {folder} ({first}); sae.path must be a folder that "
                           f"SAELens wrote (cfg.json + {WEIGHTS_FILE})") from None
    return SAELensDictionary(sae, k)


def check_registry_name(release: str, sae_id: str) -> str:
    """The hub repository of SAELens's ``release``, after checking that it lists ``sae_id``
    (offline: SAELens ships its registry)."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    if release not in directory:
        near = [name for name in directory if release.split("-")[0] in name][:5]
        raise CocomixError(f"sae.release={release} is not in SAELens's registry"
                           f"{f' (similar: {chr(44).join(near)})' if near else ''}; see SAELens's "
                           f"pretrained_saes.yaml")
    entry = directory[release]
    if sae_id not in entry.saes_map:
        ids = list(entry.saes_map)
        raise CocomixError(f"sae.id={sae_id} is not in release {release}; it holds {', '.join(ids[:6])}"
                           f"{' ...' if len(ids) > 6 else ''}")
    return str(entry.repo_id)


def load_registry(release: str, sae_id: str, k: int) -> SAELensDictionary:
    from sae_lens import SAE

    try:
        sae = SAE.from_pretrained(release, sae_id, device="cpu", dtype="float32")
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        first = first_line(err)
        raise CocomixError(f"SAELens cannot fetch {release}/{sae_id} ({first}); download it where the hub "
                           f"is reachable and set sae.path to its folder") from None
    return SAELensDictionary(sae, k)


__all__ = ["SAELensDictionary", "SAELensShape", "check_registry_name", "check_shape", "hook_block",
           "load_folder", "load_registry", "read_cfg", "shape_of"]
