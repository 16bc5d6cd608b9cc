"""An exported cocomix student for ``transformers`` (loaded with ``trust_remote_code=True``).

Standalone: this file is copied into every exported folder and imports only torch and
``transformers``. It re-states, for inference, the forward pass of ``cocomix.models.model``
(CoCoMix, Tack et al. 2025, §3; Eq. (2)-(4)): GPT-2 blocks up to ``insert_layer``; there the
concept head predicts concept logits ``z`` from the parameter-free-normalised hidden state,
keeps the TopK raw logits and compresses them into one continuous vector ``c_hat`` (at the
hidden state's scale); the mixer combines ``h`` and ``c_hat`` (``interleave``: the sequence
``[h1, c1, h2, c2, ...]`` with the LM head on the concept slots; ``add``: ``h + c_hat``;
``interleave_residual``: ``[h1, h1 + c1, ...]``; ``pause``: ``[h1, p, h2, p, ...]`` with the LM
head on the token slots); the upper blocks and the tied LM head follow. The parameter names are
the training code's, so a checkpoint maps one to one.

Decoding uses transformers' ``DynamicCache``: an interleaving mixer appends two positions per
token to the upper blocks' cache, and the causal mask of a cached step is aligned bottom-right,
so ``generate()`` gives the tokens of the full forward. ``outputs.concept_logits`` exposes the
predicted concepts; ``model.set_concept_scale(concept_id, scale)`` steers one (its logit is
multiplied by ``scale`` before the TopK; paper Fig. 5). Left-padded batches (``generate``'s) are
masked and positioned from each row's first real token. ``forward`` takes what a
``transformers`` causal LM takes (``attention_mask``, ``position_ids``, ``inputs_embeds``,
all-zero ``token_type_ids``, ``return_dict``), so ``model(**tokenizer(text))``, ``generate`` and
the text-generation pipeline work as they do with GPT-2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_cocomix import CocoMixConfig

LN_EPS = 1e-5  # added to the unbiased std of the concept head's normalisation (official code)
INTERLEAVED = {"interleave": 2, "interleave_residual": 2, "pause": 2, "add": 1, "none": 1}


@dataclass
class CocoMixCausalLMOutput(CausalLMOutputWithPast):
    concept_logits: Optional[Tensor] = None
    """(B, T, C) predicted concept logits at the insert layer (after steering, if set)."""


class _Attention(nn.Module):
    def __init__(self, config: CocoMixConfig) -> None:
        super().__init__()
        d = config.n_embd
        self.num_heads = config.n_head
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.output_proj = nn.Linear(d, d)

    def forward(self, x: Tensor, cache: Optional[Cache], layer_idx: int, keys: Optional[Tensor]) -> Tensor:
        """``keys``: (B, k_len) True for real positions (None: no padding)."""
        b, s, d = x.shape

        def heads(t: Tensor) -> Tensor:
            return t.view(b, s, self.num_heads, d // self.num_heads).transpose(1, 2)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        if cache is not None:
            k, v = cache.update(k, v, layer_idx)
        if k.size(2) == s and keys is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # query i sits at key position (k_len - s + i): bottom-right causal, minus padding
            allowed = torch.ones(s, k.size(2), dtype=torch.bool, device=x.device).tril(k.size(2) - s)
            if keys is not None:
                allowed = allowed[None, None] & keys[:, None, None, :]
            # A large negative bias rather than -inf: a padding query that sees no real key gets
            # a harmless uniform row instead of NaN.
            bias = torch.zeros(allowed.shape, dtype=q.dtype, device=x.device)
            bias = bias.masked_fill(~allowed, torch.finfo(q.dtype).min)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.output_proj(out.transpose(1, 2).reshape(b, s, d))


class _FeedForward(nn.Module):
    def __init__(self, config: CocoMixConfig) -> None:
        super().__init__()
        self.inner_proj = nn.Linear(config.n_embd, config.n_inner)
        self.output_proj = nn.Linear(config.n_inner, config.n_embd)

    def forward(self, x: Tensor) -> Tensor:
        return self.output_proj(F.gelu(self.inner_proj(x), approximate="tanh"))


class _Block(nn.Module):
    """Pre-LN GPT-2 block."""

    def __init__(self, config: CocoMixConfig) -> None:
        super().__init__()
        eps = config.layer_norm_epsilon
        self.self_attn_layer_norm = nn.LayerNorm(config.n_embd, eps=eps)
        self.self_attn = _Attention(config)
        self.ffn_layer_norm = nn.LayerNorm(config.n_embd, eps=eps)
        self.ffn = _FeedForward(config)

    def forward(self, x: Tensor, cache: Optional[Cache], layer_idx: int, keys: Optional[Tensor]) -> Tensor:
        x = x + self.self_attn(self.self_attn_layer_norm(x), cache, layer_idx, keys)
        return x + self.ffn(self.ffn_layer_norm(x))


class _ConceptHead(nn.Module):
    """Eq. (2)-(3): ``z = W_pred(LN(h) - pre_bias)``, TopK, ``c_hat = (W_comp[:, top] z_top + b
    + pre_bias) * std + mu`` with LN's own statistics (unbiased std + 1e-5, as trained)."""

    def __init__(self, config: CocoMixConfig) -> None:
        super().__init__()
        self.topk = config.concept_topk
        self.pre_bias = nn.Parameter(torch.zeros(config.n_embd))
        self.predictor = nn.Linear(config.n_embd, config.num_concepts)
        self.compressor = nn.Linear(config.num_concepts, config.n_embd) if config.concept_compress else None
        self.steer: Optional[tuple[int, float]] = None

    def forward(self, h: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        mu = h.mean(dim=-1, keepdim=True)
        std = h.std(dim=-1, keepdim=True)
        z = self.predictor((h - mu) / (std + LN_EPS) - self.pre_bias)
        if self.steer is not None:
            factor = torch.ones(z.size(-1), device=z.device, dtype=z.dtype)
            factor[self.steer[0]] = self.steer[1]
            z = z * factor
        if self.compressor is None:
            return z, None
        values, indices = torch.topk(z, self.topk, dim=-1, sorted=False)
        columns = self.compressor.weight.t()[indices]  # (..., k, d)
        compressed = (values.unsqueeze(-1) * columns).sum(-2) + self.compressor.bias
        return z, (compressed + self.pre_bias) * std + mu


class _Mixer(nn.Module):
    def __init__(self, config: CocoMixConfig) -> None:
        super().__init__()
        self.kind = config.mixer
        if self.kind not in INTERLEAVED:
            raise ValueError(f"unknown mixer {self.kind!r}; this file knows {sorted(INTERLEAVED)}")
        self.pause = nn.Parameter(torch.zeros(config.n_embd)) if self.kind == "pause" else None

    def mix(self, h: Tensor, c_hat: Optional[Tensor]) -> Tensor:
        if self.kind == "none":
            return h
        if self.kind == "pause":
            assert self.pause is not None
            second = self.pause.to(h.dtype).expand_as(h)
        else:
            if c_hat is None:
                raise ValueError(f"mixer {self.kind!r} needs the concept head's compressor")
            if self.kind == "add":
                return h + c_hat
            second = h + c_hat if self.kind == "interleave_residual" else c_hat
        return torch.stack([h, second], dim=-2).flatten(-3, -2)

    def lm_positions(self, x: Tensor) -> Tensor:
        if INTERLEAVED[self.kind] == 1:
            return x
        return x[..., 0::2, :] if self.kind == "pause" else x[..., 1::2, :]


class _Frontend(nn.Module):
    def __init__(self, config: CocoMixConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_encoder = nn.Module()
        self.pos_encoder.weight = nn.Parameter(torch.zeros(config.n_positions, config.n_embd))


class CocoMixForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = CocoMixConfig
    base_model_prefix = "cocomix"
    _tied_weights_keys = ["lm_head.weight"]
    _supports_cache_class = True

    def __init__(self, config: CocoMixConfig) -> None:
        super().__init__(config)
        self.decoder_frontend = _Frontend(config)
        self.layers = nn.ModuleList([_Block(config) for _ in range(config.n_layer)])
        self.concept_head = _ConceptHead(config) if config.num_concepts > 0 else None
        self.mixer = _Mixer(config)
        self.layer_norm = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.decoder_frontend.embed

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_concept_scale(self, concept_id: Optional[int], scale: float = 1.0) -> None:
        """Multiply concept ``concept_id``'s predicted logit by ``scale`` before the TopK at every
        position (``None``: off). ``scale = 1`` is exactly the unsteered model."""
        if self.concept_head is None:
            raise ValueError("this model has no concept head to steer")
        if concept_id is not None and not 0 <= concept_id < self.config.num_concepts:
            raise ValueError(f"concept id {concept_id} is outside 0..{self.config.num_concepts - 1}")
        self.concept_head.steer = None if concept_id is None else (int(concept_id), float(scale))

    def _tokens_seen(self, cache: Optional[Cache]) -> int:
        if cache is None or cache.get_seq_length(0) == 0:
            return 0
        # Layer 0 holds one position per token unless it is already an upper block.
        factor = INTERLEAVED[self.config.mixer] if self.config.insert_layer == 0 else 1
        return cache.get_seq_length(0) // factor

    def forward(
        self,
        input_ids: Optional[Tensor] = None,
        attention_mask: Optional[Tensor] = None,
        position_ids: Optional[Tensor] = None,
        past_key_values: Optional[Cache] = None,
        inputs_embeds: Optional[Tensor] = None,
        token_type_ids: Optional[Tensor] = None,
        labels: Optional[Tensor] = None,
        use_cache: Optional[bool] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
        cache_position: Optional[Tensor] = None,
        **kwargs: Any,
    ) -> Union[CocoMixCausalLMOutput, tuple[Tensor, ...]]:
        """The arguments of a ``transformers`` causal LM. ``position_ids`` default to the count of
        real tokens before each one (left padding starts at 0); ``token_type_ids`` are accepted
        as all zeros only (there are no segment embeddings); ``cache_position`` is implied by the
        cache. ``output_hidden_states``: the embeddings, then each block's output at the
        positions the LM head reads (for an interleaving mixer's upper blocks, every second slot),
        the last after the final LayerNorm, as GPT-2 reports them."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if token_type_ids is not None and bool(token_type_ids.ne(0).any()):
            raise ValueError("this model has no token type embeddings; pass no token_type_ids (or all zeros)")
        if output_attentions:
            raise ValueError("output_attentions is not supported (attention runs in fused SDPA kernels)")
        use_cache = self.config.use_cache if use_cache is None else use_cache
        return_dict = self.config.use_return_dict if return_dict is None else return_dict
        cache = past_key_values if past_key_values is not None else (DynamicCache() if use_cache else None)
        embeds = self.decoder_frontend.embed(input_ids) if inputs_embeds is None else inputs_embeds
        start, new = self._tokens_seen(cache), embeds.size(1)
        keys: Optional[Tensor] = None
        if attention_mask is not None and not bool(attention_mask.bool().all()):
            keys = attention_mask.bool()  # padding (generate's batches are left-padded)
            if keys.size(1) != start + new:
                raise ValueError(f"attention_mask covers {keys.size(1)} tokens, the cache and input {start + new}")
        if position_ids is None:
            position_ids = (torch.arange(start, start + new, device=embeds.device)[None] if keys is None
                            else (keys.long().cumsum(-1) - 1).clamp(min=0)[:, -new:])
        if int(position_ids.max()) >= self.config.n_positions:
            raise ValueError(
                f"position {int(position_ids.max())} is past the context of n_positions={self.config.n_positions} "
                f"tokens (the training context); keep prompt + new tokens within it (generation_config.max_length "
                f"does by default) or truncate the prompt (tokenizer(..., truncation=True))")
        h = embeds + self.decoder_frontend.pos_encoder.weight[position_ids]
        hidden: list[Tensor] = [h]
        insert = self.config.insert_layer
        for i, layer in enumerate(self.layers[:insert]):
            h = layer(h, cache, i, keys)
            hidden.append(h)
        concept_logits, c_hat = self.concept_head(h) if self.concept_head is not None else (None, None)
        x = self.mixer.mix(h, c_hat)
        # The upper blocks see length_factor positions per token (token slot, then concept slot).
        upper_keys = None if keys is None else keys.repeat_interleave(INTERLEAVED[self.config.mixer], dim=-1)
        for i, layer in enumerate(self.layers[insert:], start=insert):
            x = layer(x, cache, i, upper_keys)
            hidden.append(self.mixer.lm_positions(x))
        final = self.layer_norm(self.mixer.lm_positions(x))
        hidden[-1] = final
        logits = self.lm_head(final)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(),
                                   ignore_index=-100)
        out = CocoMixCausalLMOutput(loss=loss, logits=logits, past_key_values=cache if use_cache else None,
                                    hidden_states=tuple(hidden) if output_hidden_states else None,
                                    concept_logits=concept_logits)
        return out if return_dict else out.to_tuple()
