"""Can a small transformer learn the ``latent_topics`` rule when it is *told* the labels?

    python tools/latent_learnability.py --arity 2 --num-topics 8 --steps 1000

Trains a causal transformer of the tiny student's shape (2 layers, d=128, 4 heads: the blocks
below the tiny preset's insert layer) with cross-entropy on the true topic labels only, on
uniform random words, and prints the label loss every 100 steps next to log K (chance). It is
the upper bound of what CoCoMix's concept loss can teach the blocks below the insert layer: if
direct supervision cannot learn the rule in the budget, neither can lambda x the same loss
(``docs/findings.md``, positive control). Plain torch; seeded; CPU.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cocomix.concepts.latent_topics import latent_labels  # noqa: E402
from cocomix.eval.cli import run_tool  # noqa: E402
from cocomix.registry import CocomixError  # noqa: E402


class Probe(nn.Module):
    def __init__(self, vocab: int, classes: int, seq_len: int, dim: int, layers: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.position = nn.Embedding(seq_len, dim)
        block = nn.TransformerEncoderLayer(dim, 4, 4 * dim, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.head = nn.Linear(dim, classes + 1)  # K topics + "unknown", as the student's head

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens) + self.position(torch.arange(tokens.size(1)))
        mask = nn.Transformer.generate_square_subsequent_mask(tokens.size(1))
        return self.head(self.blocks(h, mask=mask, is_causal=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arity", type=int, default=2)
    parser.add_argument("--num-topics", type=int, default=8)
    parser.add_argument("--num-words", type=int, default=256)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    return run_tool(lambda: probe(args), debug=args.debug)


def probe(args: argparse.Namespace) -> int:
    for name, least in (("arity", 1), ("num_topics", 2), ("num_words", 2), ("steps", 1), ("batch", 1),
                        ("seq_len", 2), ("layers", 1), ("dim", 1)):
        if getattr(args, name) < least:
            raise CocomixError(f"--{name.replace('_', '-')}={getattr(args, name)} must be at least "
                               f"{least}; fix --{name.replace('_', '-')}")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        raise CocomixError(f"--lr={args.lr} must be a positive number; fix --lr")
    if args.dim % 4:
        raise CocomixError(f"--dim={args.dim} must be a multiple of 4 (the probe's attention heads)")
    torch.manual_seed(args.seed)
    k = args.num_topics
    # Token ids carry no class structure (as SentencePiece's ids do not): a random permutation.
    token_class = torch.randperm(args.num_words) % k
    model = Probe(args.num_words, k, args.seq_len, args.dim, args.layers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1)
    print(f"arity {args.arity}, K={k}, V={args.num_words}: label loss (chance log K = {math.log(k):.3f})")
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        tokens = torch.randint(0, args.num_words, (args.batch, args.seq_len))
        labels = latent_labels(tokens, token_class, k, args.arity)
        known = labels < k
        logits = model(tokens)
        loss = nn.functional.cross_entropy(logits[known], labels[known])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0 or step == args.steps:
            print(f"  step {step:5d}  loss {loss.item():.3f}  ({time.perf_counter() - start:.0f} s)",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
