"""What concept sources need from an SAE: the ``ConceptDictionary`` protocol.

Attribution and activation labels (paper §2.1, Eq. 1) read an SAE through four things: its
post-activation code of a residual as k (value, latent id) pairs, the dense pre-activations (the
paper's ``c_pre`` variant only), each latent's decoder direction, and the shapes. The project's
own ``TopKSAE`` (OpenAI's layout) implements it, and so does the adapter around any SAE that the
``sae-lens`` package loads (``cocomix.runtime.saelens``), so every label source works with both.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from cocomix.concepts.sae import SparseCode


@runtime_checkable
class ConceptDictionary(Protocol):
    """A frozen SAE on the teacher's residual stream, as concept sources see it."""

    d_model: int
    """Width of the residual it reads (the teacher's hidden size)."""
    n_latents: int
    """Number of concepts C: the student's concept head predicts over them."""
    k: int
    """Latents kept per token in ``encode``'s code (a TopK SAE's k; for SAEs without a fixed k,
    the most active latents kept, the rest counting as inactive)."""

    @property
    def dtype(self) -> torch.dtype:
        """The dtype residuals are cast to before encoding."""
        ...

    @property
    def decoder_rows(self) -> Tensor:
        """(n, d): row i is the residual-space direction one unit of latent i's activation adds
        to the reconstruction (attribution dots the loss gradient with it)."""
        ...

    def encode(self, x: Tensor) -> SparseCode:
        """The k largest post-activation values of ``x`` (..., d) and their latent ids, largest
        first (values may be 0 where fewer than k latents fire)."""
        ...

    def pre_activations(self, x: Tensor) -> Tensor:
        """(..., n) dense pre-activations c_pre (the paper's variant of Eq. 1)."""
        ...


__all__ = ["ConceptDictionary"]
