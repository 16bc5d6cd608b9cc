"""GPT-2's learned absolute position table as a fairseq2 ``PositionEncoder``.

Why not fairseq2's ``LearnedPositionEncoder``: it adds a zero "pad" row (``max_seq_len + 1`` rows,
so every model would count ``d`` parameters more than GPT-2) and its ``reset_parameters`` draws
N(0, 1) with no hook to change it. fairseq2 re-runs each module's ``reset_parameters`` when it
materialises a meta-device model, so GPT-2's N(0, 0.02) must live in the module itself.

Positions are added once, at the input (paper brief §1.5: with interleaving, concept slots get
no position of their own).
"""

from __future__ import annotations

import torch
from fairseq2.data_type import DataType
from fairseq2.device import Device
from fairseq2.nn import BatchLayout, IncrementalStateBag, PositionEncoder
from torch import Tensor, nn
from torch.nn.functional import embedding


class GPT2PositionEncoder(PositionEncoder):
    """``seqs + weight[position]``; ``weight`` is (max_seq_len, d), GPT-2's ``wpe``."""

    def __init__(
        self,
        encoding_dim: int,
        max_seq_len: int,
        *,
        init_std: float = 0.02,
        device: Device | None = None,
        dtype: DataType | None = None,
    ) -> None:
        super().__init__(encoding_dim)
        self.max_seq_len = max_seq_len
        self.init_std = init_std
        self.weight = nn.Parameter(
            torch.empty((max_seq_len, encoding_dim), device=device, dtype=dtype)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, mean=0.0, std=self.init_std)

    def forward(
        self,
        seqs: Tensor,
        seqs_layout: BatchLayout,
        *,
        state_bag: IncrementalStateBag | None = None,
    ) -> Tensor:
        # During cached decoding (eval mode only, as fairseq2's attention uses the cache only
        # then) the first new token sits at position ``state_bag.step_nr``.
        offset = state_bag.step_nr if state_bag is not None and not self.training else 0
        if offset + seqs_layout.max_seq_len > self.max_seq_len:
            raise ValueError(
                f"sequence of length {offset + seqs_layout.max_seq_len} exceeds the position "
                f"table (max_seq_len={self.max_seq_len})"
            )
        # Padding slots have index -1; they are masked out of attention and loss, so any row will
        # do: clamp to 0.
        positions = seqs_layout.position_indices.clamp(min=0) + offset
        return seqs + embedding(positions, self.weight)

    def extra_repr(self) -> str:
        return f"encoding_dim={self.encoding_dim}, max_seq_len={self.max_seq_len}"
