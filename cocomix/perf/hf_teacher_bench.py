"""What concept labels cost through a Hugging Face teacher vs the project's own teacher of the
same size and shape (issue: at most 1.2x). Prints numbers; asserts nothing.

    python -m cocomix.perf.hf_teacher_bench [--dim 256 --layers 6 --heads 4 --vocab 8000]

Both teachers are GPT-2 blocks of one shape (pre-LN, learned positions, GELU-tanh MLP): a
``cocomix_lm`` behind ``CocoLMTeacher`` and a ``GPT2LMHeadModel`` saved to a folder and read by
``teacher.source=hf`` (``HFCausalLMTeacher``). Each step computes attribution labels (one teacher
forward, a backward through the blocks above the SAE layer, the SAE's code) and activation labels
(a forward up to the layer), alternating the two teachers so machine load hits both alike; the
report is the median of each and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from cocomix.concepts.attribution import activation_labels, attribution_labels, teacher_grad
from cocomix.concepts.sae import TopKSAE
from cocomix.types import TeacherLM


def build_teachers(args: argparse.Namespace, folder: Path) -> dict[str, TeacherLM]:
    from transformers import GPT2Config, GPT2LMHeadModel

    from cocomix.models import CocoLMConfig, create_cocomix_lm
    from cocomix.runtime.hf_teacher import HFCausalLMTeacher
    from cocomix.runtime.teacher import CocoLMTeacher

    torch.manual_seed(0)
    own = create_cocomix_lm(CocoLMConfig(model_dim=args.dim, num_layers=args.layers, num_heads=args.heads,
                                         ffn_inner_dim=4 * args.dim, vocab_size=args.vocab, max_seq_len=args.seq_len))
    GPT2LMHeadModel(GPT2Config(vocab_size=args.vocab, n_positions=args.seq_len, n_embd=args.dim, n_layer=args.layers,
                               n_head=args.heads, n_inner=4 * args.dim,
                               activation_function=args.activation)).save_pretrained(folder)
    return {"own": CocoLMTeacher(own), "hf": HFCausalLMTeacher(folder)}


def median_seconds(work: dict[str, Callable[[], object]], repeats: int, warmup: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in work}
    for step in range(warmup + repeats):
        for name, fn in work.items():  # interleaved: both see the same machine load
            start = time.perf_counter()
            fn()
            if step >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    for flag, default in (("--dim", 256), ("--layers", 6), ("--heads", 4), ("--vocab", 8000), ("--seq-len", 128),
                          ("--batch", 8), ("--layer", 3), ("--latents", 1024), ("--k", 16), ("--repeats", 15)):
        parser.add_argument(flag, type=int, default=default)
    parser.add_argument("--activation", default="gelu_pytorch_tanh",
                        help="the HF GPT-2's MLP activation: gelu_pytorch_tanh is the function and the "
                             "kernel of the own teacher (GELU, tanh approximation); GPT-2's checkpoints "
                             "name gelu_new, the same function computed in Python (slower)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        teachers = build_teachers(args, Path(tmp) / "gpt2")
        sae = TopKSAE(args.dim, args.latents, args.k, generator=torch.Generator().manual_seed(0)).freeze()
        tokens = torch.randint(0, args.vocab, (args.batch, args.seq_len), generator=torch.Generator().manual_seed(1))

        def attribution(teacher: TeacherLM) -> Callable[[], object]:
            return lambda: attribution_labels(sae, *teacher_grad(teacher, tokens, args.layer), 4)

        def activation(teacher: TeacherLM) -> Callable[[], object]:
            return lambda: activation_labels(sae.encode(teacher.hidden_at(tokens, args.layer)), 4)

        with torch.no_grad():
            attr = median_seconds({n: attribution(t) for n, t in teachers.items()}, args.repeats, 3)
            act = median_seconds({n: activation(t) for n, t in teachers.items()}, args.repeats, 3)
    print(f"teacher: d={args.dim}, {args.layers} blocks, vocab {args.vocab}, HF activation {args.activation}; "
          f"{args.batch} x {args.seq_len} tokens, "
          f"SAE {args.latents} x k{args.k} after block {args.layer}; {torch.get_num_threads()} threads")
    for label, result in (("attribution labels", attr), ("activation labels", act)):
        print(f"{label}: own teacher {result['own'] * 1e3:.1f} ms, hf teacher {result['hf'] * 1e3:.1f} ms, "
              f"ratio {result['hf'] / result['own']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
