"""Corpora: named document collections with deterministic splits (recipe key ``data=``).

Importing this package registers every built-in corpus in ``cocomix.registry.CORPORA``:

- ``pd_english``: the shipped slice of public-domain English (``assets/pd_english``).
- ``pystdlib``: the local CPython standard library, a second (code) domain.
- ``openwebtext`` / ``openwebmath``: the paper's corpora through HF ``datasets`` (a hub id with
  network, or local parquet/jsonl/text files).
- ``local``: any local text/jsonl/parquet files.
- ``latent_topics``: synthetic documents whose topic is fixed by a header of keys (the positive
  control of the concept machinery, ``study/positive_control``).

    from cocomix.data.corpora import build_corpus
    corpus = build_corpus("pd_english")
    for doc in corpus.documents("valid"): ...
"""

from __future__ import annotations

from cocomix.data.corpora.base import Corpus, Document, assets_dir, build_corpus
from cocomix.data.corpora.hub import HubTextConfig, HubTextCorpus
from cocomix.data.corpora.latent_topics import LatentTopicsConfig, LatentTopicsCorpus
from cocomix.data.corpora.local import LocalTextConfig, LocalTextCorpus
from cocomix.data.corpora.pd_english import PdEnglishConfig, PdEnglishCorpus
from cocomix.data.corpora.pystdlib import PyStdlibConfig, PyStdlibCorpus

__all__ = [
    "Corpus",
    "Document",
    "HubTextConfig",
    "HubTextCorpus",
    "LatentTopicsConfig",
    "LatentTopicsCorpus",
    "LocalTextConfig",
    "LocalTextCorpus",
    "PdEnglishConfig",
    "PdEnglishCorpus",
    "PyStdlibConfig",
    "PyStdlibCorpus",
    "assets_dir",
    "build_corpus",
]
