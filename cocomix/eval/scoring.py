"""Log-likelihood of continuations given contexts: the one scoring engine of the eval suite.

Cloze, multiple choice and the lm-eval adapter all reduce to "log p(continuation | context)"
and "would greedy decoding have produced it". The conventions follow lm-eval's Hugging Face
model so numbers mean the same thing:

- Text is split as lm-eval does: trailing spaces of the context move to the continuation, the
  pair is encoded as one string and the continuation tokens are what the whole encoding has
  beyond the context's encoding (so the boundary is tokenized as in running text).
- An empty context is replaced by the EOS token (lm-eval's ``prefix_token_id``): the first
  continuation token then has something to be predicted from, as at a document start in the
  training stream (shards put EOS between documents).
- Inputs longer than the window keep their last ``max_len + 1`` tokens (left truncation).
- ``is_greedy``: every continuation token is the arg-max at its position under teacher forcing,
  i.e. greedy decoding from the context would have produced exactly these tokens.

Requests are batched longest first with right padding: the model is causal for every mixer
(interleaving is causal over the doubled sequence), so padding after a sequence never changes
the logits of its own positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm import tqdm

from cocomix.data.tokenizers import Tokenizer
from cocomix.registry import CocomixError
from cocomix.types import ConceptLM


@dataclass(frozen=True)
class ContinuationScore:
    logprob: float
    """Sum of the continuation tokens' log-probabilities (nats)."""
    is_greedy: bool
    num_tokens: int


def split_pair(
    tokenizer: Tokenizer, context: str, continuation: str
) -> tuple[list[int], list[int]]:
    """Token ids of ``(context, continuation)`` exactly as lm-eval's causal models split them."""
    if not context:
        cont = tokenizer.encode(continuation)
        if not cont:
            raise CocomixError(f"continuation {continuation!r} encodes to no tokens")
        # lm-eval: EOS as the context, unless the continuation itself starts with it.
        return ([tokenizer.eos_id], cont) if cont[0] != tokenizer.eos_id else (cont[:1], cont[1:])
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    if not context:  # the context was only whitespace: it now leads the continuation
        return split_pair(tokenizer, "", continuation)
    whole = tokenizer.encode(context + continuation)
    ctx = tokenizer.encode(context)
    cont = whole[len(ctx):]
    if not cont:
        raise CocomixError(
            f"continuation {continuation!r} adds no tokens after context {context[-40:]!r}"
        )
    return ctx, cont


class LogLikelihoodScorer:
    """Score token-level ``(context, continuation)`` requests with a ``ConceptLM``."""

    def __init__(
        self,
        model: ConceptLM,
        *,
        max_len: int,
        batch_size: int = 16,
        pad_id: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        if max_len < 1:
            raise CocomixError(f"max_len must be >= 1, got {max_len}")
        if batch_size < 1:
            raise CocomixError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.max_len = max_len
        self.batch_size = batch_size
        self.pad_id = pad_id
        self.device = torch.device(device)

    @torch.no_grad()
    def logits(self, tokens: Tensor) -> Tensor:
        """(B, T) -> (B, T, V) next-token logits, on the model's device."""
        return self.model.forward_lm(tokens.to(self.device)).logits

    def score_tokens(
        self,
        requests: Sequence[tuple[Sequence[int], Sequence[int]]],
        *,
        desc: str = "scoring",
    ) -> list[ContinuationScore]:
        """One ``ContinuationScore`` per ``(context_ids, continuation_ids)`` request, in order."""
        prepared: list[tuple[list[int], int]] = []
        for i, (ctx, cont) in enumerate(requests):
            if not cont:
                raise CocomixError(f"request {i} has an empty continuation; nothing to score")
            if not ctx:
                raise CocomixError(f"request {i} has an empty context; prefix it with EOS")
            seq = (list(ctx) + list(cont))[-(self.max_len + 1):]
            n_cont = min(len(cont), len(seq) - 1)  # a continuation longer than the window is cut
            prepared.append((seq, n_cont))
        order = sorted(range(len(prepared)), key=lambda i: -len(prepared[i][0]))
        results: list[ContinuationScore | None] = [None] * len(prepared)
        batches = [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        for batch in tqdm(batches, desc=desc, unit="batch", disable=None, leave=False):
            width = len(prepared[batch[0]][0]) - 1
            inputs = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            for row, i in enumerate(batch):
                seq = prepared[i][0]
                inputs[row, : len(seq) - 1] = torch.tensor(seq[:-1], dtype=torch.long)
            logits = self.logits(inputs)
            for row, i in enumerate(batch):
                seq, n_cont = prepared[i]
                end = len(seq) - 1  # positions 0..end-1 predict seq[1..end]
                # log-softmax of the continuation rows only: no second (B, T, V) tensor.
                rows = torch.log_softmax(logits[row, end - n_cont : end].float(), dim=-1).cpu()
                target = torch.tensor(seq[-n_cont:], dtype=torch.long)
                lp = rows.gather(-1, target.unsqueeze(-1)).squeeze(-1)
                greedy = bool((rows.argmax(-1) == target).all())
                results[i] = ContinuationScore(float(lp.double().sum()), greedy, n_cont)
        return [r for r in results if r is not None]

    def score_text(
        self,
        tokenizer: Tokenizer,
        pairs: Sequence[tuple[str, str]],
        *,
        desc: str = "scoring",
    ) -> list[ContinuationScore]:
        """String pairs, split with ``split_pair``."""
        return self.score_tokens([split_pair(tokenizer, c, x) for c, x in pairs], desc=desc)
