"""GPU-readiness switches, checked without a GPU: what the scale recipes ask fairseq2 for, and
how the model is cut into FSDP units and activation-checkpointed blocks."""

from __future__ import annotations

import pytest
import torch
from fairseq2.error import NotSupportedError
from torch import nn

from cocomix.models import CocoLMConfig, CocoMixLM, create_cocomix_lm
from cocomix.models.family import apply_ac_to_cocomix_lm, apply_fsdp_to_cocomix_lm
from cocomix.runtime.builtins import load_builtins
from cocomix.runtime.components import planned_model_settings
from cocomix.experiment import plan_runs
from cocomix.runtime.recipe import to_fairseq2_config


def concept_model() -> CocoMixLM:
    torch.manual_seed(0)
    config = CocoLMConfig(model_dim=32, num_layers=4, num_heads=4, ffn_inner_dim=64, vocab_size=97,
                          max_seq_len=32, insert_layer=2, mixer="interleave", num_concepts=16,
                          concept_topk=4, dropout_p=0.0)
    return create_cocomix_lm(config)


def test_fsdp_wraps_each_decoder_block_and_nothing_else() -> None:
    model = concept_model()
    blocks = list(model.layers)
    wrapped: list[tuple[nn.Module, bool | None]] = []

    class Unit(nn.Module):  # stands in for an FSDP unit; FSDP needs a multi-rank gang
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

    def wrapper(module: nn.Module, reshard_after_forward: bool | None = None) -> nn.Module:
        wrapped.append((module, reshard_after_forward))
        return Unit(module)

    assert apply_fsdp_to_cocomix_lm(model, "layer", wrapper) is model
    assert [m for m, _ in wrapped] == blocks  # every block once, in order
    # The last block is gathered again at once for backward, so it is not resharded.
    assert [r for _, r in wrapped] == [None] * (len(blocks) - 1) + [False]
    assert all(isinstance(layer, Unit) for layer in model.layers)
    # Embeddings, tied head, concept head and mixer stay in the root unit.
    for name in ("decoder_frontend", "concept_head", "layer_norm", "final_proj"):
        assert not isinstance(getattr(model, name), Unit), name
    with pytest.raises(NotSupportedError, match="granularity 'layer' only"):
        apply_fsdp_to_cocomix_lm(concept_model(), "stack", wrapper)


def test_activation_checkpointing_wraps_every_nth_block_only() -> None:
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
        CheckpointWrapper,
    )

    model = concept_model()
    apply_ac_to_cocomix_lm(model, every_nth_layer=2)
    kinds = [isinstance(layer, CheckpointWrapper) for layer in model.layers]
    assert kinds.count(True) == 2 and kinds.count(False) == 2
    assert model.concept_head is not None and not isinstance(model.concept_head, CheckpointWrapper)
    tokens = torch.randint(0, 97, (2, 9))
    model.train()
    model(tokens).logits.sum().backward()  # checkpointed blocks still train the head
    assert model.concept_head.predictor.weight.grad is not None


@pytest.mark.parametrize("recipe,dp,ac", [("scale/69m", "ddp", "off"), ("scale/386m", "fsdp", "off"),
                                          ("scale/1b", "fsdp", "layerwise")])
def test_scale_recipes_ask_fairseq2_for_bf16_compile_fsdp_and_ac(recipe: str, dp: str, ac: str) -> None:
    load_builtins()
    for plan in plan_runs(recipe, []):
        config = to_fairseq2_config(plan.composed, 50257, planned_model_settings(plan.composed))
        assert config.trainer.data_parallelism == dp
        assert config.trainer.fsdp.granularity == "layer"  # our applier's only granularity
        assert config.trainer.activation_checkpointing.mode == ac
        assert config.trainer.mixed_precision.mode == "static"
        assert config.trainer.mixed_precision.dtype == torch.bfloat16
        assert config.model.compile is True


def test_mixed_precision_auto_is_off_on_cpu_and_names_are_checked() -> None:
    from cocomix.registry import CocomixError
    from cocomix.runtime.recipe import _mixed_precision

    assert _mixed_precision("off").mode == "off"
    if not torch.cuda.is_available():
        assert _mixed_precision("auto").mode == "off"
    assert _mixed_precision("fp16").dtype == torch.float16
    with pytest.raises(CocomixError, match="choose off, bf16, fp16 or auto"):
        _mixed_precision("fp8")
