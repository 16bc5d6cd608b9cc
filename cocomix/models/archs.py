"""Named size presets of ``cocomix_lm``, registered in ``cocomix.registry.ARCHS``.

Sizes are the paper's (paper brief §3, table "Model sizes"): CoCoMix 69M / 386M / 1.38B are
d=512/8 layers/8 heads, 1024/24/16 and 2048/24/16 with the concept layer before block 3, 5 and 5;
the NTP / KD / pause baselines are widened to d=624 / 1072 / 2096 (same layers and heads) so that
their parameter count matches CoCoMix's *active* count. All use GPT-2's vocabulary (50257, not
padded), 1024 context and dropout 0.1 (the paper's code keeps HF GPT-2's dropouts, §3).

``tiny`` is the CPU preset (~1.85M parameters) for the demo and the tests.

Measured totals (``count_parameters``; GPT-2's V·d + T·d + L·(12d² + 13d) + 2d): tiny 1.85M,
gpt2_69m 51.48M (the Fig. 6d "53M" NTP), gpt2_69m_ntp 69.45M, gpt2_386m 354.82M, gpt2_386m_ntp
386.27M, gpt2_1b 1313.63M, gpt2_1b_ntp 1373.39M, gpt2_124m (the teacher, §1.1) 124.44M.

The CoCoMix bases plus (C + K)·d (C = 32768 concepts, K = 32) give the brief's "active" 68.3M /
388.4M / 1380.8M. With the concept head (``num_concepts=32768``, ``concept_topk=32``)
``count_parameters`` gives total / active 85.06M / 68.30M, 421.97M / 388.45M and 1447.88M /
1380.84M (brief §3: 85.1 / 68.3, 422.0 / 388.4, 1447.9 / 1380.8). The presets build no head
(``num_concepts=0``): a recipe that needs one sets it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from cocomix.models.config import CocoLMConfig
from cocomix.models.factory import create_cocomix_lm
from cocomix.registry import ARCHS

GPT2_VOCAB_SIZE = 50257  # tiktoken "gpt2", not padded (paper brief §3)
GPT2_CONTEXT = 1024


def _gpt2(model_dim: int, num_layers: int, num_heads: int, insert_layer: int) -> CocoLMConfig:
    return CocoLMConfig(
        model_dim=model_dim,
        num_layers=num_layers,
        num_heads=num_heads,
        ffn_inner_dim=4 * model_dim,
        vocab_size=GPT2_VOCAB_SIZE,
        max_seq_len=GPT2_CONTEXT,
        insert_layer=insert_layer,
        dropout_p=0.1,
    )


def tiny() -> CocoLMConfig:
    return CocoLMConfig(
        model_dim=128,
        num_layers=4,
        num_heads=4,
        ffn_inner_dim=512,
        vocab_size=8000,
        max_seq_len=256,
        insert_layer=2,
        dropout_p=0.0,
    )


# name -> preset. Insert layers: "4th layer" (69M) and "6th layer" (386M, 1.38B), §3.
ARCH_PRESETS: dict[str, Callable[[], CocoLMConfig]] = {
    "tiny": tiny,
    "gpt2_69m": lambda: _gpt2(512, 8, 8, insert_layer=3),
    "gpt2_386m": lambda: _gpt2(1024, 24, 16, insert_layer=5),
    "gpt2_1b": lambda: _gpt2(2048, 24, 16, insert_layer=5),
    # GPT-2 124M, the paper's concept-extraction teacher (§1.1; its SAE reads
    # blocks.5.hook_resid_post, i.e. the residual entering block 6).
    "gpt2_124m": lambda: _gpt2(768, 12, 12, insert_layer=6),
    # Width-matched baselines (§3 "NTP/KD/pause d"): 624/8 = 78, 1072/16 = 67, 2096/16 = 131.
    "gpt2_69m_ntp": lambda: _gpt2(624, 8, 8, insert_layer=3),
    "gpt2_386m_ntp": lambda: _gpt2(1072, 24, 16, insert_layer=5),
    "gpt2_1b_ntp": lambda: _gpt2(2096, 24, 16, insert_layer=5),
    # The same rule at CPU scale: tiny CoCoMix (C=1024, k=16 in the tiny preset) has
    # 1.85M + (1024 + 16)·128 = 1.98M active parameters; d=136 gives an NTP model of 2.02M.
    "tiny_ntp": lambda: dataclasses.replace(tiny(), model_dim=136, ffn_inner_dim=544),
}


for _name, _defaults in ARCH_PRESETS.items():
    ARCHS.add(_name, create_cocomix_lm, CocoLMConfig, defaults=_defaults)
