"""Forward passes: shapes, loss path, causality, the insert-layer split, dropout, padding, and the
mixer contract (a length-doubling mixer plugs in without changing the model)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from fairseq2.models.clm import CausalLM
from fairseq2.models.transformer import AttentionBiasCache
from fairseq2.nn import BatchLayout
from torch import Tensor, nn

from cocomix.mixers import Mixer
from cocomix.models import CocoLMConfig, CocoMixLM, create_cocomix_lm
from cocomix.registry import CocomixError
from cocomix.types import ConceptLM, ModelOutput


class DoublingMixer(Mixer):
    """Test stand-in for interleave/pause: [h1, p, h2, p, ...], LM head reads the p slots."""

    length_factor = 2

    def __init__(self, model_dim: int) -> None:
        super().__init__()
        self.pause = nn.Parameter(torch.randn(model_dim) * 0.5)

    def mix(self, h: Tensor, concept: Tensor | None) -> Tensor:
        p = self.pause.expand_as(h)
        return torch.stack([h, p], dim=-2).flatten(-3, -2)

    def select_lm_positions(self, x: Tensor) -> Tensor:
        return x.unflatten(-2, (-1, 2))[..., 1, :]


def tokens(batch: int = 2, length: int = 12, vocab: int = 97, seed: int = 0) -> Tensor:
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_is_a_fairseq2_causal_lm_and_a_concept_lm(small_model: CocoMixLM) -> None:
    assert isinstance(small_model, CausalLM)
    assert isinstance(small_model, ConceptLM)


def test_shapes(small_model: CocoMixLM) -> None:
    x = tokens()
    logits = small_model(x, BatchLayout.of(x))
    assert logits.shape == (2, 12, 97)
    out = small_model.forward_lm(x)
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (2, 12, 97) and out.hidden is not None
    assert out.hidden.shape == (2, 12, 32) and out.concept_logits is None
    torch.testing.assert_close(out.logits, logits)


def test_loss_path(small_model: CocoMixLM) -> None:
    x = tokens(length=13)
    inp, tgt = x[:, :-1], x[:, 1:]
    layout = BatchLayout.of(inp)
    logits = small_model(inp, layout)
    expected = F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), reduction="sum")
    torch.testing.assert_close(small_model(inp, layout, tgt), expected)
    mean = small_model(inp, layout, tgt, reduction="mean")
    torch.testing.assert_close(mean, expected / tgt.numel())
    loss, logits2 = small_model(inp, layout, tgt, return_logits=True)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(logits2, logits)
    mask = torch.ones_like(tgt, dtype=torch.bool)
    mask[:, :4] = False
    masked = small_model(inp, layout, tgt, target_mask=mask)
    expected_masked = F.cross_entropy(logits[:, 4:].flatten(0, 1), tgt[:, 4:].flatten(),
                                      reduction="sum")
    torch.testing.assert_close(masked, expected_masked)


def test_loss_ignores_pad_idx(small_config: Callable[..., CocoLMConfig]) -> None:
    torch.manual_seed(0)
    model = create_cocomix_lm(small_config(pad_idx=0)).eval()
    x = tokens(length=9)
    inp, tgt = x[:, :-1], x[:, 1:].clone()
    tgt[:, -3:] = 0
    logits = model(inp, BatchLayout.of(inp))
    expected = F.cross_entropy(logits[:, :-3].flatten(0, 1), tgt[:, :-3].flatten(), reduction="sum")
    torch.testing.assert_close(model(inp, BatchLayout.of(inp), tgt), expected)


def test_causality(small_model: CocoMixLM) -> None:
    x = tokens(length=16)
    base = small_model.forward_lm(x).logits
    y = x.clone()
    t = 9
    y[:, t] = (y[:, t] + 1) % 97
    changed = small_model.forward_lm(y).logits
    torch.testing.assert_close(changed[:, :t], base[:, :t], rtol=0, atol=1e-6)
    assert (changed[:, t:] - base[:, t:]).abs().max() > 1e-4


@pytest.mark.parametrize("insert_layer", [0, 1, 3])
def test_hidden_is_the_residual_entering_the_insert_layer(
    small_config: Callable[..., CocoLMConfig], insert_layer: int
) -> None:
    torch.manual_seed(0)
    model = create_cocomix_lm(small_config(insert_layer=insert_layer)).eval()
    x = tokens()
    layout = BatchLayout.of(x)
    with torch.no_grad():
        h, _ = model.decoder_frontend(x, layout)
        for layer in list(model.layers)[:insert_layer]:
            h = layer(h, layout, AttentionBiasCache())
        out = model.forward_lm(x)
        torch.testing.assert_close(out.hidden, h)
        # ... and the rest of GPT-2 from there gives the logits.
        for layer in list(model.layers)[insert_layer:]:
            h = layer(h, layout, AttentionBiasCache())
        torch.testing.assert_close(out.logits, model.final_proj(model.layer_norm(h)))


def test_split_point_does_not_change_the_none_model(
    small_config: Callable[..., CocoLMConfig]
) -> None:
    # The state dict is independent of insert_layer, and with mixer=none so is the function.
    a = create_cocomix_lm(small_config(insert_layer=1)).eval()
    b = create_cocomix_lm(small_config(insert_layer=3)).eval()
    b.load_state_dict(a.state_dict())
    x = tokens()
    torch.testing.assert_close(a.forward_lm(x).logits, b.forward_lm(x).logits)


def test_dropout_only_in_training(small_config: Callable[..., CocoLMConfig]) -> None:
    torch.manual_seed(0)
    model = create_cocomix_lm(small_config(dropout_p=0.1))
    plain = create_cocomix_lm(small_config(dropout_p=0.0))
    plain.load_state_dict(model.state_dict())
    x = tokens()
    model.eval()
    plain.eval()
    ref = plain.forward_lm(x).logits
    torch.testing.assert_close(model.forward_lm(x).logits, ref)
    torch.testing.assert_close(model.forward_lm(x).logits, ref)
    model.train()
    a, b = model.forward_lm(x).logits, model.forward_lm(x).logits
    assert (a - b).abs().max() > 1e-4 and (a - ref).abs().max() > 1e-4


def test_padded_batch_matches_unpadded_rows(small_model: CocoMixLM) -> None:
    x = tokens(batch=2, length=10)
    layout = BatchLayout((2, 10), seq_lens=[10, 6])
    logits = small_model(x, layout)
    short = small_model(x[1:, :6], BatchLayout.of(x[1:, :6]))
    torch.testing.assert_close(logits[1:, :6], short, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits[:1], small_model(x[:1], BatchLayout.of(x[:1])))


def test_backward_reaches_every_parameter(small_model: CocoMixLM) -> None:
    small_model.train()
    x = tokens(length=13)
    loss = small_model(x[:, :-1], BatchLayout.of(x[:, :-1]), x[:, 1:], reduction="mean")
    loss.backward()
    missing = [n for n, p in small_model.named_parameters() if p.grad is None]
    assert missing == []


def test_forward_lm_rejects_bad_input(small_model: CocoMixLM) -> None:
    with pytest.raises(CocomixError, match="max_seq_len=64"):
        small_model.forward_lm(tokens(length=65))
    with pytest.raises(CocomixError, match=r"\(B, T\)"):
        small_model.forward_lm(tokens()[0])


def test_a_length_doubling_mixer_plugs_in(small_model: CocoMixLM) -> None:
    small_model.mixer = DoublingMixer(32)
    seen: list[tuple[int, ...]] = []
    small_model.layers[1].register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    small_model.layers[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    x = tokens(length=10)
    out = small_model.forward_lm(x)
    assert seen == [(2, 10, 32), (2, 20, 32)]  # lower on T, upper on 2T
    assert out.logits.shape == (2, 10, 97) and out.hidden is not None
    assert out.hidden.shape == (2, 10, 32)
    torch.testing.assert_close(small_model(x, BatchLayout.of(x)), out.logits)
    # Still causal over the doubled sequence: token t only affects slots >= t.
    y = x.clone()
    y[:, 6] = (y[:, 6] + 1) % 97
    changed = small_model.forward_lm(y).logits
    torch.testing.assert_close(changed[:, :6], out.logits[:, :6], rtol=0, atol=1e-6)
    assert (changed[:, 6:] - out.logits[:, 6:]).abs().max() > 1e-4


def test_doubling_mixer_padded_layout(small_model: CocoMixLM) -> None:
    small_model.mixer = DoublingMixer(32)
    x = tokens(batch=2, length=10)
    logits = small_model(x, BatchLayout((2, 10), seq_lens=[10, 7]))
    short = small_model(x[1:, :7], BatchLayout.of(x[1:, :7]))
    torch.testing.assert_close(logits[1:, :7], short, rtol=1e-5, atol=1e-5)
    upper = small_model.upper_layout(BatchLayout((2, 10), seq_lens=[10, 7]))
    assert list(upper.seq_lens) == [20, 14] and upper.width == 20


def test_activation_checkpointing_keeps_the_function(small_model: CocoMixLM) -> None:
    from cocomix.models.family import apply_ac_to_cocomix_lm

    x = tokens(length=13)
    inp, tgt = x[:, :-1], x[:, 1:]
    small_model.train()
    ref = small_model(inp, BatchLayout.of(inp), tgt)
    ref.backward()
    ref_grad = small_model.layers[0].ffn.inner_proj.weight.grad.clone()
    small_model.zero_grad()
    apply_ac_to_cocomix_lm(small_model, every_nth_layer=1)
    loss = small_model(inp, BatchLayout.of(inp), tgt)
    loss.backward()
    torch.testing.assert_close(loss, ref)
    grad = small_model.layers[0]._checkpoint_wrapped_module.ffn.inner_proj.weight.grad
    torch.testing.assert_close(grad, ref_grad)


def test_forward_without_layout_is_forward_lm(small_model: CocoMixLM) -> None:
    x = tokens()
    out = small_model(x)
    assert isinstance(out, ModelOutput)
    torch.testing.assert_close(out.logits, small_model.forward_lm(x).logits)
    with pytest.raises(CocomixError, match="need a seqs_layout"):
        small_model(x, None, x)


def test_forward_lm_through_ddp(small_model: CocoMixLM, tmp_path: Path) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1
    )
    try:
        small_model.train()
        x = tokens()
        out = DistributedDataParallel(small_model)(x)  # no layout: forward_lm through the wrapper
        assert isinstance(out, ModelOutput)
        torch.testing.assert_close(out.logits, small_model.forward_lm(x).logits)
        out.logits.sum().backward()
        assert all(p.grad is not None for p in small_model.parameters())
    finally:
        dist.destroy_process_group()
