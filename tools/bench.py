"""Benchmark what training costs here, side by side and as ratios (docs/performance.md).

    python tools/bench.py [--size tiny|bench] [--json OUT]

Measures, with medians over repeated steps after warm-up:
- framework overhead: NTP through the full runtime (Hydra, fairseq2 Trainer, data pipeline,
  metric recording) vs a bare PyTorch loop on the same model and batches (interleaved);
- per-step time of NTP and CoCoMix (labels in memory / `concepts=cached` / online attribution),
  interleaved, next to the FLOP ratios of `cocomix.runtime.flops`;
- the concept compressor: k-column gather vs a dense C x d matmul;
- achieved training FLOP/s vs this machine's fp32 matmul FLOP/s (utilisation);
- peak resident memory of each configuration, each in its own process.
`--size bench` (default) is the tiny preset every CPU recipe uses; `--size tiny` takes seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SETUPS = ("ntp", "cocomix_memory", "cocomix_cached", "cocomix_online")
MEMORY_SETUPS = ("ntp", "cocomix_cached", "cocomix_online")
# Compressor shapes: (C, k, d, positions) at the bench size's head and at the paper's 69M head.
PAPER_HEAD = (32768, 32, 512, 256)
TARGETS = {"overhead_max": 0.05, "flop_ratio_tolerance": 0.10, "teacher_cost_removed_min": 0.95}


def machine_load() -> str:
    try:
        return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def step_report(setups: dict[str, Any], times: dict[str, list[float]], peak: float) -> dict[str, Any]:
    out = {}
    for name, setup in setups.items():
        median = statistics.median(times[name])
        tokens = setup.extra["tokens_per_step"]
        flops = setup.flops_per_token * tokens / median
        out[name] = {"median_step_s": median, "tokens_per_step": tokens,
                     "flops_per_token": setup.flops_per_token, "flops_per_s": flops,
                     "utilisation": flops / peak, "steps_timed": len(times[name])}
    return out


def ratios(steps: dict[str, Any], times: dict[str, list[float]]) -> dict[str, Any]:
    from cocomix.perf.timing import median_ratio

    out = {}
    for name in ("cocomix_memory", "cocomix_cached", "cocomix_online"):
        flop = steps[name]["flops_per_token"] / steps["ntp"]["flops_per_token"]
        timed = median_ratio(times[name], times["ntp"])
        fastest = min(times[name]) / min(times["ntp"])
        out[f"{name}_over_ntp"] = {"time": timed, "flops": flop, "time_over_flops": timed / flop,
                                   "time_of_fastest": fastest}
    teacher = [o - m for o, m in zip(times["cocomix_online"], times["cocomix_memory"])]
    left = [c - m for c, m in zip(times["cocomix_cached"], times["cocomix_memory"])]
    teacher_s, left_s = statistics.median(teacher), statistics.median(left)
    # From step times: the teacher's share of a step, and what `cached` adds over labels held
    # in memory (noisy: a difference of two step times; `labels` times the sources directly).
    out["teacher_step_s"] = teacher_s
    out["cached_minus_memory_step_s"] = left_s
    return out


def targets(result: dict[str, Any]) -> dict[str, Any]:
    overhead = result["overhead"]["overhead"]
    student = result["ratios"]["cocomix_memory_over_ntp"]["time_over_flops"]
    online = result["ratios"]["cocomix_online_over_ntp"]["time_over_flops"]
    removed = result["labels"]["teacher_cost_removed"]
    tol = TARGETS["flop_ratio_tolerance"]
    return {
        "framework_overhead": {"value": overhead, "target": f"<= {TARGETS['overhead_max']:.0%}",
                               "met": overhead <= TARGETS["overhead_max"]},
        "cocomix_student_time_vs_flops": {"value": student, "target": f"within {tol:.0%} of 1",
                                          "met": abs(student - 1) <= tol},
        "cocomix_online_time_vs_flops": {"value": online, "target": f"within {tol:.0%} of 1",
                                         "met": abs(online - 1) <= tol},
        "cached_removes_teacher": {"value": removed,
                                   "target": f">= {TARGETS['teacher_cost_removed_min']:.0%}",
                                   "met": removed >= TARGETS["teacher_cost_removed_min"]},
    }


def run(size_name: str, rounds: int | None = None, steps: int | None = None) -> dict[str, Any]:
    import torch

    from cocomix.perf.overhead import measure_overhead
    from cocomix.perf.setups import SIZES, build_setups
    from cocomix.perf.timing import (
        compressor_bench,
        interleaved,
        label_bench,
        matmul_flops_per_s,
        peak_memory,
    )

    size = SIZES[size_name]
    # More rounds/steps give steadier medians on a busy machine, at the cost of wall time.
    size = dataclasses.replace(size, rounds=rounds or size.rounds,
                               runtime_steps=steps or size.runtime_steps)
    quick = size_name == "tiny"
    start = time.perf_counter()
    result: dict[str, Any] = {"size": size_name, "load_before": machine_load(),
                              "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count()}
    peak = matmul_flops_per_s(256 if quick else 1024, 3 if quick else 8)
    result["matmul_flops_per_s"] = peak
    result["overhead"] = measure_overhead(["preset=tiny", *size.overrides], size.runtime_steps,
                                          size.warmup)
    with tempfile.TemporaryDirectory(prefix="cocomix-bench-labels-") as cache:
        setups, batches = build_setups(size, list(SETUPS), size.warmup + size.rounds, Path(cache))
        times = interleaved(setups, batches, size.warmup)
        result["steps"] = step_report(setups, times, peak)
        result["ratios"] = ratios(result["steps"], times)
        result["labels"] = label_bench(setups["cocomix_online"].objective.source,
                                       setups["cocomix_cached"].objective.source, batches)
        head = setups["cocomix_memory"].extra["config"]
        shapes = [(head.num_concepts, head.concept_topk, head.model_dim, batches[0].inputs.numel())]
        if not quick:
            shapes.append(PAPER_HEAD)
        result["compressor"] = [compressor_bench(*shape, repeats=4 if quick else 6) for shape in shapes]
        del setups
        result["memory"] = peak_memory(size_name, list(MEMORY_SETUPS), 1 if quick else 2, Path(cache))
    result["runtime_ntp_utilisation"] = (
        result["steps"]["ntp"]["flops_per_token"] * result["overhead"]["runtime_tokens_per_s"] / peak
    )
    result["targets"] = targets(result)
    result["load_after"] = machine_load()
    result["wall_s"] = time.perf_counter() - start
    return result


def table(r: dict[str, Any]) -> str:
    o = r["overhead"]
    lines = [
        (f"size={r['size']}  cpus={r['cpus']}  torch threads={r['torch_threads']}  "
        f"{r['load_before']} -> {r['load_after']}  wall {r['wall_s']:.0f}s"),
        (f"fp32 matmul peak: {r['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s; the full runtime's NTP "
        f"reaches {r['runtime_ntp_utilisation']:.1%} of it"),
        "",
        "framework overhead (NTP, interleaved with a bare PyTorch loop)",
        (f"  runtime {o['runtime_tokens_per_s']:.0f} tok/s ({o['runtime_step_s'] * 1e3:.1f} ms/step)"
        f"   bare {o['bare_tokens_per_s']:.0f} tok/s ({o['bare_step_s'] * 1e3:.1f} ms/step)"
        f"   overhead {o['overhead']:+.1%} (fastest steps: {o['overhead_of_fastest']:+.1%}, "
        f"{o['steps_timed']} steps)"),
        "",
        (f"{'config':<16}{'ms/step':>9}{'MFLOP/tok':>11}{'GFLOP/s':>9}{'util':>7}{'peak MiB':>10}"
        f"{'train MiB':>11}"),
    ]
    for name, s in r["steps"].items():
        mem = r["memory"].get(name, {})
        peak = f"{mem['peak_rss_mib']:.0f}" if mem else "-"
        grown = f"{mem['training_rss_mib']:.0f}" if mem else "-"
        lines.append(f"{name:<16}{s['median_step_s'] * 1e3:>9.1f}{s['flops_per_token'] / 1e6:>11.2f}"
                     f"{s['flops_per_s'] / 1e9:>9.2f}{s['utilisation']:>7.1%}{peak:>10}{grown:>11}")
    lines += ["", f"{'ratio to NTP':<24}{'time':>7}{'FLOPs':>7}{'time/FLOPs':>11}{'fastest':>9}"]
    for name in ("cocomix_memory", "cocomix_cached", "cocomix_online"):
        q = r["ratios"][f"{name}_over_ntp"]
        lines.append(f"{name:<24}{q['time']:>7.2f}{q['flops']:>7.2f}{q['time_over_flops']:>11.2f}"
                     f"{q['time_of_fastest']:>9.2f}")
    q = r["ratios"]
    lab = r["labels"]
    lines.append(f"teacher share of an online step {q['teacher_step_s'] * 1e3:.1f} ms; labels per "
                 f"micro-batch: online {lab['online_s'] * 1e3:.1f} ms, cached read "
                 f"{lab['cached_s'] * 1e3:.2f} ms ({lab['teacher_cost_removed']:.1%} removed)")
    lines += ["", "compressor (forward+backward)"]
    for c in r["compressor"]:
        lines.append(f"  C={c['num_concepts']} k={c['k']} d={c['dim']} positions={c['positions']}: "
                     f"gather {c['gather_s'] * 1e3:.2f} ms, dense {c['dense_s'] * 1e3:.2f} ms "
                     f"({c['dense_over_gather']:.1f}x)")
    lines += ["", "targets"]
    for name, t in r["targets"].items():
        lines.append(f"  {name:<32}{t['value']:>8.3f}  {t['target']:<18}{'met' if t['met'] else 'NOT met'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("tiny", "bench"), default="bench")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--rounds", type=int, help="timed rounds of the interleaved steps")
    parser.add_argument("--steps", type=int, help="optimizer steps of the full-runtime run")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    from cocomix.eval.cli import run_tool

    return run_tool(lambda: body(args), debug=args.debug)


def body(args: argparse.Namespace) -> int:
    from cocomix.eval.cli import check_output_file
    from cocomix.runtime.builtins import load_builtins

    check_output_file(args.json, "--json")
    # Reuse the repository's artifact cache (tokenizer, shards) unless told otherwise.
    os.environ.setdefault("COCOMIX_ARTIFACTS", str(REPO / "runs" / "_artifacts"))
    load_builtins()
    result = run(args.size, args.rounds, args.steps)
    print(table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
