"""Worked cost estimate of the paper's runs on GPUs (docs/performance.md): FLOPs from the one FLOP
counter (`cocomix.runtime.flops`), memory from parameter counts and a per-layer activation
rule, hours at a stated model FLOP utilisation (MFU).

    python -m cocomix.perf.estimate [--gpus 8] [--mfu 0.4] [--tokens 20e9]

Assumptions (printed with the table):
- bf16 mixed precision with fp32 master weights: 16 bytes per trainable parameter (weights 4,
  gradients 4, AdamW moments 8), sharded over the GPUs under FSDP, replicated under DDP.
- Activations per block and token, bf16, PyTorch SDPA (no T x T scores kept): 34·d bytes
  (Korthikanti et al. 2022 without the attention-score term); interleaving doubles the upper
  blocks' tokens. Logits (LM head, concept head) cost 6 bytes per entry (bf16 + fp32 for the
  loss). Activation checkpointing keeps 2·d bytes per block and token plus one block's 34·d.
- The teacher (GPT-2 124M) is frozen: bf16 weights only (2 bytes per parameter), and its
  activations for one micro-batch.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

import torch

from cocomix.runtime.flops import TeacherCost, length_factor, training_flops_per_token
from cocomix.models import CocoLMConfig, count_parameters, create_cocomix_lm
from cocomix.registry import ARCHS

H100_BF16_PEAK = 989e12  # dense bf16 FLOP/s of one H100 SXM
SAE_LATENTS, SAE_K, TEACHER_LAYER = 32768, 32, 5
GIB = 2.0**30


@dataclass(frozen=True)
class Scale:
    name: str
    arch: str
    micro_batch: int
    data_parallel: str
    activation_checkpointing: bool


SCALES = (Scale("69M", "gpt2_69m", 8, "ddp", False), Scale("386M", "gpt2_386m", 8, "fsdp", False),
          Scale("1.38B", "gpt2_1b", 8, "fsdp", True))


def arch(name: str, **changes: object) -> CocoLMConfig:
    return dataclasses.replace(ARCHS.get(name).default_config(), **changes)  # type: ignore[arg-type]


def cocomix_config(scale: Scale) -> CocoLMConfig:
    return arch(scale.arch, num_concepts=SAE_LATENTS, concept_topk=SAE_K, mixer="interleave",
                concept_compress=True)


def teacher_cost(mode: str) -> TeacherCost:
    return TeacherCost.from_config(arch("gpt2_124m"), TEACHER_LAYER, mode=mode,
                                   sae_latents=SAE_LATENTS, sae_k=SAE_K)


def parameters(config: CocoLMConfig) -> int:
    return count_parameters(create_cocomix_lm(config, device=torch.device("meta")))[0]


def activation_bytes(config: CocoLMConfig, tokens: int, checkpointing: bool) -> float:
    d, layers, insert = config.model_dim, config.num_layers, config.insert_layer
    factor = length_factor(config.mixer)
    block_tokens = insert * tokens + (layers - insert) * factor * tokens
    blocks = (2.0 * d * block_tokens + 34.0 * d * factor * tokens) if checkpointing else 34.0 * d * block_tokens
    logits = 6.0 * tokens * (config.vocab_size + config.num_concepts)
    return blocks + logits


def gpu_memory_gib(config: CocoLMConfig, scale: Scale, gpus: int, seq_len: int, teacher: bool) -> float:
    params = parameters(config)
    states = 16.0 * params / (gpus if scale.data_parallel == "fsdp" else 1)
    tokens = scale.micro_batch * seq_len
    total = states + activation_bytes(config, tokens, scale.activation_checkpointing)
    if teacher:
        t = arch("gpt2_124m")
        total += 2.0 * parameters(t) + activation_bytes(t, tokens, False)
    return total / GIB


def rows(gpus: int, mfu: float, tokens: float, seq_len: int = 1024) -> list[dict[str, object]]:
    out = []
    for scale in SCALES:
        ntp = arch(f"{scale.arch}_ntp")
        coco = cocomix_config(scale)
        variants = [("NTP (width-matched)", ntp, None, False),
                    ("CoCoMix online, official (teacher fwd+bwd)", coco, teacher_cost("official"), True),
                    ("CoCoMix online, ours (attribution)", coco, teacher_cost("attribution"), True),
                    ("CoCoMix cached labels", coco, None, False)]
        base = training_flops_per_token(ntp, seq_len).total
        for label, config, teacher, holds_teacher in variants:
            per_token = training_flops_per_token(config, seq_len, teacher=teacher).total
            total = per_token * tokens
            hours = total / (gpus * H100_BF16_PEAK * mfu) / 3600.0
            out.append({"scale": scale.name, "run": label, "flops_per_token": per_token,
                        "vs_ntp": per_token / base, "total_flops": total, "hours": hours,
                        "gpu_memory_gib": gpu_memory_gib(config, scale, gpus, seq_len, holds_teacher),
                        "parallel": scale.data_parallel + (" + AC" if scale.activation_checkpointing else "")})
    return out


def markdown(gpus: int, mfu: float, tokens: float) -> str:
    lines = [(f"{gpus} x H100 (bf16 peak {H100_BF16_PEAK / 1e12:.0f} TFLOP/s each) at {mfu:.0%} MFU, "
             f"{tokens / 1e9:.0f}B tokens, context 1024, micro-batch 8 per GPU"),
             "", "| size | run | GFLOP/token | x NTP | total FLOPs | hours | GiB/GPU (est.) | parallel |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows(gpus, mfu, tokens):
        lines.append(f"| {r['scale']} | {r['run']} | {r['flops_per_token'] / 1e9:.2f} | {r['vs_ntp']:.2f} | "
                     f"{r['total_flops']:.2e} | {r['hours']:.1f} | {r['gpu_memory_gib']:.1f} | {r['parallel']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Cost of the paper's runs on GPUs")
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--mfu", type=float, default=0.4)
    parser.add_argument("--tokens", type=float, default=20e9)
    args = parser.parse_args(argv)
    print(markdown(args.gpus, args.mfu, args.tokens))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
