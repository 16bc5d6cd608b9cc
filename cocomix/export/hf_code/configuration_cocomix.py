"""``CocoMixConfig``: the sizes of an exported cocomix student (``trust_remote_code`` side).

Standalone: this file is copied into every exported folder and imports only ``transformers``.
"""

from __future__ import annotations

from transformers import PretrainedConfig


class CocoMixConfig(PretrainedConfig):
    """A GPT-2 split at ``insert_layer``, with a concept head and a mixer there (CoCoMix, Tack et
    al. 2025, §3: predict concepts from the hidden state, compress the TopK into one vector,
    mix it into the hidden states)."""

    model_type = "cocomix"

    def __init__(
        self,
        vocab_size: int = 8000,
        n_positions: int = 256,
        n_embd: int = 128,
        n_layer: int = 4,
        n_head: int = 4,
        n_inner: int = 512,
        layer_norm_epsilon: float = 1e-5,
        insert_layer: int = 2,
        mixer: str = "interleave",
        num_concepts: int = 0,
        concept_topk: int = 32,
        concept_compress: bool = True,
        tie_word_embeddings: bool = True,
        use_cache: bool = True,
        **kwargs: object,
    ) -> None:
        self.vocab_size = vocab_size
        self.n_positions = n_positions
        self.n_embd = n_embd
        self.n_layer = n_layer
        self.n_head = n_head
        self.n_inner = n_inner
        self.layer_norm_epsilon = layer_norm_epsilon
        self.insert_layer = insert_layer
        self.mixer = mixer
        self.num_concepts = num_concepts
        self.concept_topk = concept_topk
        self.concept_compress = concept_compress
        self.use_cache = use_cache
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)  # type: ignore[arg-type]

    # The names transformers' generic code (lm-eval's HFLM, generate) looks for.
    @property
    def hidden_size(self) -> int:
        return self.n_embd

    @property
    def num_hidden_layers(self) -> int:
        return self.n_layer

    @property
    def max_position_embeddings(self) -> int:
        return self.n_positions
