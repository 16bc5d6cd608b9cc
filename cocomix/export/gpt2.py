"""A ``CocoMixLM`` without mixer as ``transformers.GPT2LMHeadModel``, weight for weight.

With the ``none`` mixer our model is GPT-2 exactly (``cocomix.models.factory``: learned absolute
positions added at the input, pre-LN blocks with biased attention and a 4d GELU-tanh MLP, final
LayerNorm, LM head tied to the token embedding), so the export is a renaming: fairseq2 keeps
``q/k/v`` as three ``nn.Linear`` (out, in), GPT-2 one ``Conv1D`` ``c_attn`` (in, 3 * out), and
every GPT-2 ``Conv1D`` stores the transpose of the matching linear weight.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from cocomix.models.config import CocoLMConfig


def gpt2_config(config: CocoLMConfig, *, positions: int) -> dict[str, Any]:
    """``GPT2Config`` keyword arguments for a model of ``config`` keeping ``positions`` rows of
    its position table (``gpt2_state_dict``); the special token ids come from the tokenizer."""
    return {
        "vocab_size": config.vocab_size,
        "n_positions": positions,
        "n_embd": config.model_dim,
        "n_layer": config.num_layers,
        "n_head": config.num_heads,
        "n_inner": config.ffn_inner_dim,
        "activation_function": "gelu_new",  # GELU with the tanh approximation, as trained
        "resid_pdrop": config.dropout_p,
        "embd_pdrop": config.dropout_p,
        "attn_pdrop": config.dropout_p,
        "layer_norm_epsilon": config.layer_norm_eps,
        "initializer_range": config.init_std,
        "tie_word_embeddings": True,
        "architectures": ["GPT2LMHeadModel"],
    }


def gpt2_state_dict(state: dict[str, Tensor], num_layers: int, positions: int) -> dict[str, Tensor]:
    """Our state dict (``CocoMixLM.state_dict()``) under GPT-2's names and layouts, with the
    first ``positions`` rows of the position table: the rows training reached (``train.seq_len``;
    the rest are still at their random initialisation, and a consumer such as lm-eval sizes its
    windows by ``n_positions``)."""
    out = {
        "transformer.wte.weight": state["decoder_frontend.embed.weight"],
        "transformer.wpe.weight": state["decoder_frontend.pos_encoder.weight"][:positions],
        "transformer.ln_f.weight": state["layer_norm.weight"],
        "transformer.ln_f.bias": state["layer_norm.bias"],
        "lm_head.weight": state["decoder_frontend.embed.weight"],  # tied
    }
    for i in range(num_layers):
        ours, theirs = f"layers.{i}.", f"transformer.h.{i}."
        attn = ours + "self_attn."
        out[theirs + "attn.c_attn.weight"] = torch.cat(
            [state[attn + f"{p}_proj.weight"] for p in "qkv"], dim=0
        ).t()
        out[theirs + "attn.c_attn.bias"] = torch.cat([state[attn + f"{p}_proj.bias"] for p in "qkv"])
        out[theirs + "attn.c_proj.weight"] = state[attn + "output_proj.weight"].t()
        out[theirs + "attn.c_proj.bias"] = state[attn + "output_proj.bias"]
        out[theirs + "mlp.c_fc.weight"] = state[ours + "ffn.inner_proj.weight"].t()
        out[theirs + "mlp.c_fc.bias"] = state[ours + "ffn.inner_proj.bias"]
        out[theirs + "mlp.c_proj.weight"] = state[ours + "ffn.output_proj.weight"].t()
        out[theirs + "mlp.c_proj.bias"] = state[ours + "ffn.output_proj.bias"]
        for norm, name in (("self_attn_layer_norm", "ln_1"), ("ffn_layer_norm", "ln_2")):
            out[theirs + f"{name}.weight"] = state[ours + f"{norm}.weight"]
            out[theirs + f"{name}.bias"] = state[ours + f"{norm}.bias"]
    return {name: tensor.detach().contiguous().clone() for name, tensor in out.items()}
