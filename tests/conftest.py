"""Shared test set-up: offline, CPU, and one artifact cache (tokenizer, shards) per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Never reach for a hub: a test that tries fails instead of hanging.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]

# Under pytest-xdist (`-n 2`, the README's test command) each worker gets one core: one intra-op
# thread for the tests' own torch work. A run sets its recipe's `threads` (2) while it trains.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def artifact_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tokenizer/shard cache for the whole session, so only the first run trains them."""
    path = tmp_path_factory.mktemp("artifacts")
    os.environ["COCOMIX_ARTIFACTS"] = str(path)
    return path


@pytest.fixture(scope="session")
def spm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small SentencePiece model (vocab 400) trained on the shipped English text."""
    from cocomix.data.corpora import build_corpus
    from cocomix.data.tokenizers import SentencePieceConfig, train_sentencepiece, training_sentences

    config = SentencePieceConfig(vocab_size=400, max_train_chars=300_000)
    data = train_sentencepiece(training_sentences(build_corpus("pd_english"), 300_000), config)
    path = tmp_path_factory.mktemp("spm") / "spm.model"
    path.write_bytes(data)
    return path


@pytest.fixture(scope="session")
def hf_stand_ins(tmp_path_factory: pytest.TempPathFactory, spm_path: Path) -> dict[str, Path]:
    """Hugging Face and SAELens assets in their real formats, written by their own libraries:
    a random 4-block Llama saved with a fast tokenizer (the shipped text's SentencePiece, vocab
    400, converted), and a random SAELens TopK SAE (128 latents, k=8) on its block-1 residual."""
    import torch
    from sae_lens import TopKSAE, TopKSAEConfig
    from sae_lens.saes.sae import SAEMetadata
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from cocomix.export.spm_fast import sentencepiece_to_fast

    root = tmp_path_factory.mktemp("hf_stand_ins")
    fast = sentencepiece_to_fast(spm_path)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=fast, eos_token=fast.id_to_token(2),
                                        bos_token=fast.id_to_token(1), unk_token=fast.id_to_token(0))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64,
                         bos_token_id=1, eos_token_id=2)
    LlamaForCausalLM(config).eval().save_pretrained(root / "llama")
    tokenizer.save_pretrained(root / "llama")
    sae = TopKSAE(TopKSAEConfig(d_in=32, d_sae=128, k=8, apply_b_dec_to_input=True,
                                metadata=SAEMetadata(hook_name="blocks.1.hook_resid_post", model_name="tiny-llama")))
    with torch.no_grad():  # non-zero biases, so the conventions that use them are exercised
        sae.b_dec.normal_(0, 0.1)
        sae.b_enc.normal_(0, 0.1)
    sae.save_model(root / "sae")
    return {"llama": root / "llama", "sae": root / "sae"}


@pytest.fixture(scope="session")
def paper_configs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Overrides that point the paper-faithful recipes at local configs of GPT-2 124M and of
    OpenAI's v5_32k layer-5 SAE (as SAELens saves it), with no weights: enough for --dry-run,
    which reads configs only. Offline, the recipes' hub names are refused (tested)."""
    import json

    from sae_lens import TopKSAEConfig
    from sae_lens.saes.sae import SAEMetadata
    from transformers import GPT2Config

    root = tmp_path_factory.mktemp("paper_configs")
    GPT2Config().save_pretrained(root / "gpt2")  # 124M: 12 blocks, width 768, vocab 50257
    (root / "sae").mkdir()
    cfg = TopKSAEConfig(d_in=768, d_sae=32768, k=32, normalize_activations="layer_norm",
                        metadata=SAEMetadata(hook_name="blocks.5.hook_resid_post", model_name="gpt2-small"))
    (root / "sae" / "cfg.json").write_text(json.dumps(cfg.to_dict()))
    (root / "sae" / "sae_weights.safetensors").write_bytes(b"")  # not read by --dry-run
    return [f"teacher.path={root / 'gpt2'}", "sae.release=''", "sae.id=''", f"sae.path={root / 'sae'}"]
