"""Build a ``CocoMixLM`` from fairseq2 building blocks with GPT-2's initialisation.

GPT-2 (paper brief §3 "Dropout [code]" and "Common settings"): token embedding + learned absolute
positions, embedding dropout, pre-LN blocks (attention with biases, 4d GELU-tanh MLP), residual and
attention-weight dropout, a final LayerNorm and an LM head tied to the token embedding. Init
N(0, 0.02) for every linear and embedding, zero biases, and the residual output projections
(attention out, MLP out) N(0, 0.02 / sqrt(2L)). The concept head sits at ``insert_layer``:
its kind is ``concept_head`` (``cocomix.concepts.head_kinds``): ``sae`` with ``num_concepts > 0``
builds ``cocomix.concepts.head.ConceptHead``, ``hidden`` with ``teacher_dim > 0`` builds
``cocomix.concepts.hidden_head.HiddenStateHead`` (Fig. 6b); ``concept_compress=False`` builds
either without its compressor ("prediction only", Fig. 6d). The mixer comes from
``cocomix.registry.MIXERS``.

Every initialiser is attached to the module it initialises (``init_fn``, or the module's own
``reset_parameters``), so fairseq2's meta-device path (``to_empty`` + ``reset_parameters`` per
module) gives the same init as an eager build.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from fairseq2.data_type import DataType
from fairseq2.device import CPU, Device
from fairseq2.gang import Gangs, create_fake_gangs
from fairseq2.models.transformer import (
    CausalAttentionBias,
    StandardFeedForwardNetwork,
    StandardMultiheadAttention,
    TransformerEmbeddingFrontend,
    TransformerNormOrder,
    create_default_sdpa,
)
from fairseq2.models.transformer_lm import StandardTransformerLMDecoderLayer
from fairseq2.nn import Linear, StandardEmbedding, StandardLayerNorm, TiedProjection
from torch import nn

from cocomix.concepts.head_kinds import head_kind
from cocomix.models.config import CocoLMConfig
from cocomix.models.model import CocoMixLM
from cocomix.models.position import GPT2PositionEncoder
from cocomix.registry import MIXERS


def init_normal(module: Linear | StandardEmbedding, *, std: float) -> None:
    """N(0, std) weight, zero bias (GPT-2 ``_init_weights``)."""
    nn.init.normal_(module.weight, mean=0.0, std=std)
    bias = getattr(module, "bias", None)
    if bias is not None:
        nn.init.zeros_(bias)


def residual_std(config: CocoLMConfig) -> float:
    """Std of the projections that write into the residual stream: 0.02 / sqrt(2L).

    Two residual writes per block (attention, MLP), so the stream's variance grows ~linearly in
    2L; GPT-2 scales them down to compensate (paper brief §3: "c_proj scaled by 1/sqrt(2L)").
    """
    return config.init_std / math.sqrt(2 * config.num_layers)


def create_cocomix_lm(
    config: CocoLMConfig, *, device: Device | None = None, dtype: DataType | None = None
) -> CocoMixLM:
    """Validate ``config`` and build the model (this is also the fairseq2 family's factory).

    ``device``/``dtype`` default to torch's current defaults, which is how fairseq2 passes them
    (it calls ``factory(config)`` inside ``with device`` and ``set_dtype(dtype)``).
    """
    config.validate()
    if device is None:
        device = torch.get_default_device()
    # Explicit single-process gangs: the model is not tensor-parallel, and asking fairseq2 for the
    # "current" gangs would silently run ``init_fairseq2()`` (after which a runtime cannot call it
    # with its own extensions). FakeGang refuses the meta device; the linear layers accept a gang
    # on any device when they are built on meta.
    gangs = create_fake_gangs(CPU if device.type == "meta" else device)
    std = config.init_std

    embed = StandardEmbedding(
        config.vocab_size,
        config.model_dim,
        init_fn=partial(init_normal, std=std),
        device=device,
        dtype=dtype,
    )
    pos_encoder = GPT2PositionEncoder(
        config.model_dim, config.max_seq_len, init_std=std, device=device, dtype=dtype
    )
    frontend = TransformerEmbeddingFrontend(
        config.model_dim,
        embed,
        pos_encoder,
        no_scale=True,  # GPT-2 adds wte + wpe without a sqrt(d) factor
        dropout_p=config.dropout_p,  # embd_pdrop
        device=device,
        dtype=dtype,
    )
    layers = [
        _create_layer(config, gangs, device=device, dtype=dtype) for _ in range(config.num_layers)
    ]
    layer_norm = _create_layer_norm(config, device=device, dtype=dtype)
    # Tied LM head without bias (GPT-2 lm_head): shares the token embedding's Parameter.
    final_proj = TiedProjection(embed.weight, bias=None)
    concept_head = _create_concept_head(config, device=device, dtype=dtype)
    # Mixer factories take (config, model_dim) only; move the result (pause's vector) to the
    # model's device and dtype here.
    mixer = MIXERS.build(config.mixer, None, config.model_dim).to(device=device, dtype=dtype)
    return CocoMixLM(
        config, frontend, layers, layer_norm, final_proj, mixer=mixer, concept_head=concept_head
    )


def _create_concept_head(
    config: CocoLMConfig, *, device: Device, dtype: DataType | None
) -> nn.Module | None:
    """The head ``config`` asks for, or None (``config.has_concept_head`` is False).

    Every linear N(0, init_std), zero biases and pre_bias (brief §1.3-1.4); each initialiser is
    the module's own reset_parameters, so meta materialisation agrees.
    """
    if not config.has_concept_head:
        return None
    return head_kind(config).build(config, device=device, dtype=dtype)


def _create_layer(
    config: CocoLMConfig, gangs: Gangs, *, device: Device, dtype: DataType | None
) -> StandardTransformerLMDecoderLayer:
    std, out_std = config.init_std, residual_std(config)
    # Attention-weight dropout (attn_pdrop); TorchSDPA turns it off in eval mode.
    sdpa = create_default_sdpa(CausalAttentionBias(), dropout_p=config.dropout_p)
    self_attn = StandardMultiheadAttention(
        config.model_dim,
        config.num_heads,
        sdpa,
        bias=True,  # GPT-2 has biases on c_attn and c_proj
        qkv_proj_init_fn=partial(init_normal, std=std),
        output_proj_init_fn=partial(init_normal, std=out_std),
        gangs=gangs,
        device=device,
        dtype=dtype,
    )
    ffn = StandardFeedForwardNetwork(
        config.model_dim,
        config.ffn_inner_dim,
        bias=True,
        inner_activation=nn.GELU(approximate="tanh"),  # GPT-2's "gelu_new"
        proj_init_fn=partial(init_normal, std=std),
        gangs=gangs,
        device=device,
        dtype=dtype,
    )
    # The FFN takes one init_fn for both projections; its output projection writes into the
    # residual stream, so it gets the scaled one (re-initialised here, and on meta materialisation).
    ffn.output_proj.init_fn = partial(init_normal, std=out_std)  # type: ignore[union-attr]
    ffn.output_proj.reset_parameters()  # type: ignore[operator]
    return StandardTransformerLMDecoderLayer(
        self_attn,
        _create_layer_norm(config, device=device, dtype=dtype),
        ffn,
        _create_layer_norm(config, device=device, dtype=dtype),
        norm_order=TransformerNormOrder.PRE,  # GPT-2 is pre-LN
        dropout_p=config.dropout_p,  # resid_pdrop on attention and MLP outputs
        device=device,
        dtype=dtype,
    )


def _create_layer_norm(
    config: CocoLMConfig, *, device: Device, dtype: DataType | None
) -> StandardLayerNorm:
    return StandardLayerNorm(
        config.model_dim, bias=True, eps=config.layer_norm_eps, device=device, dtype=dtype
    )
