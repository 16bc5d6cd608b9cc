"""Timers for `tools/bench.py`: interleaved step timing, the compressor, peak matmul FLOP/s and
peak memory (each configuration in its own process).

Every comparison runs its candidates in the same process, alternating A, B, A, B (rotating the
order each round), and reports medians: the machine is shared, and contention then slows both
sides of a ratio alike.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cocomix.perf.setups import SIZES, Setup, build_setups
from cocomix.types import TokenBatch


def interleaved(setups: dict[str, Setup], batches: list[TokenBatch], warmup: int) -> dict[str, list[float]]:
    """Seconds per optimizer step of each setup, one step of each per round, the order rotated."""
    names = list(setups)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i, batch in enumerate(batches):
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order:
            start = time.perf_counter()
            setups[name].step(batch)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def label_bench(online: Any, cached: Any, batches: list[TokenBatch]) -> dict[str, float]:
    """Seconds per micro-batch to get concept labels: online attribution (teacher forward and
    backward, SAE) vs the `cached` source reading them from disk. Timed directly, interleaved:
    a difference of two noisy step times cannot resolve a cache read of a fraction of a ms."""
    online_s, cached_s = [], []
    for i, batch in enumerate(batches):
        order = [(online_s, online, None), (cached_s, cached, batch.sample_index)]
        for out, source, index in order[::-1] if i % 2 else order:
            start = time.perf_counter()
            source.targets(batch.inputs, sample_index=index)
            out.append(time.perf_counter() - start)
    online_s, cached_s = online_s[1:], cached_s[1:]  # first round: warm-up
    return {"online_s": statistics.median(online_s), "cached_s": statistics.median(cached_s),
            "teacher_cost_removed": 1.0 - median_ratio(cached_s, online_s)}


def median_ratio(a: list[float], b: list[float]) -> float:
    """Median of the per-round ratios a/b (each round ran both under the same load)."""
    return statistics.median(x / y for x, y in zip(a, b))


def _time(fn: Callable[[], Any], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def compressor_bench(num_concepts: int, k: int, dim: int, positions: int, repeats: int) -> dict[str, float]:
    """The concept head's compressor, forward + backward: the k-column gather it uses
    (`ConceptHead.compress`, an `embedding_bag`) vs the official dense C x d matmul over a
    vector with k non-zeros."""
    from cocomix.concepts.head import ConceptHead

    head = ConceptHead(dim, num_concepts, k)
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(positions, num_concepts, generator=gen, requires_grad=True)

    def gather() -> None:
        values, indices = torch.topk(z, k, dim=-1, sorted=False)
        head.compress(values, indices).sum().backward()

    def dense() -> None:
        values, indices = torch.topk(z, k, dim=-1, sorted=False)
        sparse = torch.zeros_like(z).scatter(-1, indices, values)
        assert head.compressor is not None
        F.linear(sparse, head.compressor.weight, head.compressor.bias).sum().backward()

    gather_s, dense_s = [], []
    for _ in range(repeats):  # interleaved, first round is warm-up
        gather_s += _time(gather, 1)
        dense_s += _time(dense, 1)
    g, d = statistics.median(gather_s[1:]), statistics.median(dense_s[1:])
    return {"num_concepts": num_concepts, "k": k, "dim": dim, "positions": positions,
            "gather_s": g, "dense_s": d, "dense_over_gather": median_ratio(dense_s[1:], gather_s[1:])}


def matmul_flops_per_s(n: int, repeats: int) -> float:
    """Measured fp32 FLOP/s of an n x n x n matmul (this machine's practical peak)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    times = _time(lambda: torch.mm(a, b), repeats + 1)[1:]
    return 2.0 * n**3 / statistics.median(times)


def _rss_mib() -> float:
    """Peak resident memory of this process so far: VmHWM, the high-water mark of this address
    space (`ru_maxrss` would also count the parent's peak, kept across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0  # kB
    raise RuntimeError("no VmHWM in /proc/self/status (peak memory needs Linux)")


def memory_child(size_name: str, setup: str, steps: int, cache_root: str) -> dict[str, float]:
    """Run in a fresh process: build one setup, train `steps` steps, report peak RSS.
    `cache_root` holds the labels the parent already cached, so `cocomix_cached` only reads."""
    size = SIZES[size_name]
    setups, batches = build_setups(size, [setup], steps, Path(cache_root))
    before = _rss_mib()
    for batch in batches:
        setups[setup].step(batch)
    peak = _rss_mib()
    return {"peak_rss_mib": peak, "setup_rss_mib": before, "training_rss_mib": peak - before}


def peak_memory(size_name: str, setups: list[str], steps: int, cache_root: Path) -> dict[str, dict[str, float]]:
    """`memory_child` for each setup in its own subprocess (a peak is per address space), run
    side by side: most of a child's time is importing torch and fairseq2."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    children = {}
    for name in setups:
        code = ("import json, sys; from cocomix.runtime.builtins import load_builtins; "
                "load_builtins(); from cocomix.perf.timing import memory_child; "
                f"print(json.dumps(memory_child({size_name!r}, {name!r}, {steps}, {str(cache_root)!r})))")
        children[name] = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, env=env)
    results = {}
    for name, child in children.items():
        stdout, stderr = child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"memory run of {name} failed:\n{stderr[-2000:]}")
        results[name] = json.loads(stdout.strip().splitlines()[-1])
    return results
