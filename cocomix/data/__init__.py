"""Data: corpora, tokenizers and token shards.

Kept free of imports on purpose: ``import cocomix.data.corpora`` must not pay for tokenizers,
HF ``datasets`` or numpy memmaps it does not use.
"""
