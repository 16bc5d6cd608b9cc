"""The ``cocomix_lm`` model family: GPT-2 from fairseq2 building blocks, split at an insert layer.

Importing this package registers the size presets in ``cocomix.registry.ARCHS`` (``tiny``,
``gpt2_69m``, ``gpt2_386m``, ``gpt2_1b``, the widened ``*_ntp`` baselines and the ``gpt2_124m``
teacher) and the built-in mixers (``none``, ``interleave``, ``add``, ``pause``).
``register_cocomix_lm(container)`` makes the family known to fairseq2.
"""

from __future__ import annotations

from cocomix.models.archs import ARCH_PRESETS as ARCH_PRESETS
from cocomix.models.config import CocoLMConfig as CocoLMConfig
from cocomix.models.factory import create_cocomix_lm as create_cocomix_lm
from cocomix.models.family import COCOMIX_LM_FAMILY as COCOMIX_LM_FAMILY
from cocomix.models.family import get_cocomix_lm_hub as get_cocomix_lm_hub
from cocomix.models.family import register_cocomix_lm as register_cocomix_lm
from cocomix.models.generate import generate as generate
from cocomix.models.model import CocoMixLM as CocoMixLM
from cocomix.models.model import count_parameters as count_parameters

__all__ = [
    "ARCH_PRESETS",
    "COCOMIX_LM_FAMILY",
    "CocoLMConfig",
    "CocoMixLM",
    "count_parameters",
    "create_cocomix_lm",
    "generate",
    "get_cocomix_lm_hub",
    "register_cocomix_lm",
]
