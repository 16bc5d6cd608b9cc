"""Train and evaluate a TopK SAE on a stream of activations (plain torch; Gao et al. 2024).

The paper uses OpenAI's released GPT-2 SAE (brief §1.1) and trains none. We train our own for
teachers without a released SAE, following OpenAI's recipe (``sparse_autoencoder/train.py``)
except where noted:

- Inputs are LN-normalised first (``normalize=True``, like the released ``v5`` TopK SAEs) and the
  loss lives in that normalised space.
- Loss = NMSE + ``auxk_coef`` · AuxK. NMSE is the squared error divided by the batch's squared
  deviation from its mean (so predicting the mean scores 1). AuxK (Gao et al. §A.2) reconstructs
  the residual error ``e = x - x_hat`` (detached) from the top-``auxk`` *dead* latents'
  pre-activations, normalised the same way; it gives dead latents a gradient. A latent is dead
  when it has not fired (value > 0) within the last ``dead_tokens`` tokens.
- ``pre_bias`` starts at the geometric median of the first batch (OpenAI's ``init_from_data_``,
  computed here with Weiszfeld iterations instead of the ``geom_median`` package).
- Each step: remove the gradient component parallel to each decoder column (it would only change
  the column's norm), clip the global grad norm, Adam step (eps 6.25e-10 as in OpenAI's
  ``Config``), then renormalise decoder columns to unit norm.

Defaults are sized for the CPU demo (n=1024, k=16). ``auxk=256`` is OpenAI's ``train.py`` value;
Gao et al. suggest ``d/2``; either is far above the number of dead latents a small SAE has.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from cocomix.concepts.sae import TopKSAE
from cocomix.registry import CocomixError

ADAM_EPS = 6.25e-10
"""OpenAI ``train.py`` Adam epsilon."""

ActivationStream = Callable[[int], Tensor] | Iterable[Tensor] | Tensor


@dataclass
class SAETrainConfig:
    n_latents: int = 1024
    k: int = 16
    lr: float = 1e-3
    """Adam, betas (0.9, 0.999), constant."""
    steps: int = 2000
    batch_tokens: int = 4096
    auxk: int = 256
    """k_aux: dead latents used by the AuxK loss (OpenAI train.py: 256; Gao et al.: d/2)."""
    auxk_coef: float = 1 / 32
    dead_tokens: int = 100_000
    """A latent that has not fired in this many tokens is dead (OpenAI: 10M at full scale)."""
    normalize: bool = True
    seed: int = 0
    grad_clip: float = 1.0
    """Global grad-norm clip; 0 disables."""


@dataclass
class SAETrainStats:
    steps: int
    tokens: int
    loss: float
    nmse: float
    auxk_loss: float
    dead_fraction: float
    history: list[dict[str, float]] = field(default_factory=list)
    """A row every ``log_every`` steps and at the last: step, loss, nmse, auxk, dead_fraction."""


def geometric_median(x: Tensor, iters: int = 100, tol: float = 1e-6) -> Tensor:
    """Weiszfeld's algorithm over the rows of ``x`` (N, d), starting from the mean."""
    x = x.double()
    median = x.mean(0)
    for _ in range(iters):
        weights = 1.0 / (x - median).norm(dim=1).clamp_min(1e-8)
        new = (weights[:, None] * x).sum(0) / weights.sum()
        if (new - median).norm() <= tol * (1.0 + median.norm()):
            median = new
            break
        median = new
    return median


def _batches(
    activations: ActivationStream, config: SAETrainConfig, d_model: int
) -> Callable[[], Tensor]:
    """Turn any supported stream into ``next_batch() -> (N, d) float``."""
    if isinstance(activations, Tensor):
        pool = activations.reshape(-1, activations.shape[-1])
        gen = torch.Generator().manual_seed(config.seed + 1)

        def sample() -> Tensor:
            rows = torch.randint(0, pool.shape[0], (config.batch_tokens,), generator=gen)
            return pool[rows.to(pool.device)]

        fetch: Callable[[], Tensor] = sample
    elif callable(activations):
        fetch = lambda: activations(config.batch_tokens)  # noqa: E731
    else:
        it: Iterator[Tensor] = (
            itertools.cycle(activations) if isinstance(activations, Sequence) else iter(activations)
        )
        count = itertools.count(1)

        def take() -> Tensor:
            n = next(count)
            try:
                return next(it)
            except StopIteration:
                raise CocomixError(
                    f"the activation stream ended after {n - 1} batches; SAE training needs "
                    f"config.steps={config.steps}"
                ) from None

        fetch = take

    def next_batch() -> Tensor:
        x = fetch()
        if x.shape[-1] != d_model:
            raise CocomixError(
                f"SAE training got activations of width {x.shape[-1]}, expected d_model={d_model}"
            )
        return x.reshape(-1, d_model).float()

    return next_batch


def _nmse(pred: Tensor, target: Tensor) -> Tensor:
    """Sum of squared error / sum of squared deviation of ``target`` from its batch mean."""
    denom = (target - target.mean(0)).pow(2).sum().clamp_min(1e-12)
    return (pred - target).pow(2).sum() / denom


def _remove_parallel_grad_(sae: TopKSAE) -> None:
    """Project out of each decoder column's gradient its component along that (unit) column."""
    w, g = sae.decoder.weight, sae.decoder.weight.grad
    if g is not None:
        g.sub_((w * g).sum(0, keepdim=True) * w)


def train_sae(
    activations: ActivationStream,
    config: SAETrainConfig,
    *,
    d_model: int,
    progress: bool = True,
    log_every: int = 100,
) -> tuple[TopKSAE, SAETrainStats]:
    """Train a ``TopKSAE`` on ``activations``.

    :param activations: ``fn(batch_tokens) -> (N, d)``, an iterable of (N, d) batches (a
        sequence is cycled; an iterator must last ``config.steps`` batches), or one (N, d)
        tensor sampled with replacement (seeded).
    :returns: the SAE (train mode, on the batches' device) and its training statistics.
    """
    if config.steps < 1 or config.batch_tokens < 1:
        raise CocomixError("SAE training needs steps >= 1 and batch_tokens >= 1")
    next_batch = _batches(activations, config, d_model)
    batch = next_batch()
    gen = torch.Generator().manual_seed(config.seed)
    sae = TopKSAE(d_model, config.n_latents, config.k, normalize=config.normalize, generator=gen)
    sae = sae.to(batch.device).train()
    with torch.no_grad():
        sae.pre_bias.copy_(geometric_median(sae.preprocess(batch)[0]))
    opt = torch.optim.Adam(sae.parameters(), lr=config.lr, betas=(0.9, 0.999), eps=ADAM_EPS)
    since_fired = torch.zeros(config.n_latents, dtype=torch.long, device=batch.device)
    stats = SAETrainStats(0, 0, float("nan"), float("nan"), 0.0, 0.0)
    bar = tqdm(total=config.steps, desc="sae", unit="step", disable=None if progress else True)
    for step in range(1, config.steps + 1):
        if step > 1:
            batch = next_batch()
        with torch.no_grad():
            x = sae.preprocess(batch)[0]
        pre = sae.encode_pre(x)
        top = torch.topk(pre, config.k, dim=-1)
        values = torch.relu(top.values)
        recon = sae.decode_normalized(values, top.indices)
        nmse = _nmse(recon, x)
        with torch.no_grad():  # dead-latent bookkeeping, updated before AuxK as OpenAI does
            fired = torch.zeros_like(since_fired, dtype=torch.bool)
            fired[top.indices[values > 0]] = True
            since_fired += x.shape[0]
            since_fired[fired] = 0
            dead = since_fired >= config.dead_tokens
        aux = nmse.new_zeros(())
        n_dead = int(dead.sum())
        if config.auxk > 0 and n_dead > 0:
            dead_pre = pre.masked_fill(~dead, float("-inf"))
            aux_top = torch.topk(dead_pre, min(config.auxk, n_dead), dim=-1)
            err = (x - recon).detach()
            err_hat = sae.decode_normalized(torch.relu(aux_top.values), aux_top.indices, bias=False)
            aux = _nmse(err_hat, err)
        loss = nmse + config.auxk_coef * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        _remove_parallel_grad_(sae)
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(sae.parameters(), config.grad_clip)
        opt.step()
        sae.normalize_decoder_()

        dead_fraction = n_dead / config.n_latents
        stats = SAETrainStats(
            step, stats.tokens + x.shape[0], loss.item(), nmse.item(), aux.item(), dead_fraction,
            stats.history,
        )
        if step % max(1, log_every) == 0 or step == config.steps:
            row = {
                "step": float(step), "loss": stats.loss, "nmse": stats.nmse,
                "auxk": stats.auxk_loss, "dead_fraction": dead_fraction,
            }
            stats.history.append(row)
            bar.set_postfix(
                loss=f"{stats.loss:.4f}", nmse=f"{stats.nmse:.4f}", dead=f"{dead_fraction:.3f}"
            )
        bar.update(1)
    bar.close()
    return sae, stats


DENSE_RATE = 0.1
"""A latent active on more than this share of tokens counts as dense (``evaluate_sae``)."""


@torch.no_grad()
def evaluate_sae(sae: TopKSAE, batches: Iterable[Tensor] | Tensor) -> dict[str, float]:
    """Reconstruction quality in the SAE's normalised input space over ``batches`` of (N, d).

    Returns ``nmse`` (sum of squared error / sum of squared deviation from the data mean, so the
    mean baseline scores 1), ``fve = 1 - nmse`` (fraction of variance explained),
    ``dead_fraction`` (latents that never fired on these batches), ``dense_fraction`` (latents
    that fired on more than ``DENSE_RATE`` of the vectors: features of everything, which make
    poor concept labels), ``max_firing_rate`` (the busiest latent's share of vectors) and ``l0``
    (mean number of non-zero activations per vector: k unless the ReLU zeroes some of the top k).
    """
    if isinstance(batches, Tensor):
        batches = [batches]
    sse = 0.0
    count = 0
    nnz = 0.0
    sum_x: Tensor | None = None
    sum_x2: Tensor | None = None
    fired = torch.zeros(sae.n_latents, dtype=torch.long, device=sae.pre_bias.device)
    for raw in batches:
        flat = raw.reshape(-1, sae.d_model).to(sae.pre_bias)
        x = sae.preprocess(flat)[0]
        code = sae.encode(flat)
        recon = sae.decode_normalized(code.values, code.indices)
        sse += (recon - x).double().pow(2).sum().item()
        xd = x.double()
        sum_x = xd.sum(0) if sum_x is None else sum_x + xd.sum(0)
        sum_x2 = xd.pow(2).sum(0) if sum_x2 is None else sum_x2 + xd.pow(2).sum(0)
        count += x.shape[0]
        nnz += (code.values > 0).sum().item()
        fired += torch.bincount(code.indices[code.values > 0], minlength=sae.n_latents)
    if count == 0 or sum_x is None or sum_x2 is None:
        raise CocomixError("evaluate_sae got no activations")
    total_dev = (sum_x2 - sum_x.pow(2) / count).sum().item()
    nmse = sse / max(total_dev, 1e-12)
    return {
        "nmse": nmse,
        "fve": 1.0 - nmse,
        "dead_fraction": (fired == 0).float().mean().item(),
        "dense_fraction": (fired > DENSE_RATE * count).float().mean().item(),
        "max_firing_rate": fired.max().item() / count,
        "l0": nnz / count,
    }
