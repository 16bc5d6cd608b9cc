"""tools/bench.py runs end to end at its tiny size and reports every measurement.

A smoke test: benchmark numbers are never asserted (the machine is shared), only that each one
is there and is a finite, positive quantity where it must be.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SETUPS = ("ntp", "cocomix_memory", "cocomix_cached", "cocomix_online")


def load_bench():
    spec = importlib.util.spec_from_file_location("bench", REPO / "tools" / "bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_bench_tiny_emits_every_key(tmp_path: Path, artifact_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench()
    out = tmp_path / "bench.json"
    assert bench.main(["--size", "tiny", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    printed = capsys.readouterr().out
    for word in ("framework overhead", "ratio to NTP", "compressor", "targets"):
        assert word in printed

    assert r["size"] == "tiny" and r["matmul_flops_per_s"] > 0
    o = r["overhead"]
    for key in ("runtime_tokens_per_s", "bare_tokens_per_s", "runtime_step_s", "bare_step_s"):
        assert o[key] > 0, key
    assert math.isfinite(o["overhead"]) and o["steps_timed"] >= 1
    assert o["tokens_per_step"] == 4 * 32  # micro_batch_size x seq_len of the tiny size

    assert set(r["steps"]) == set(SETUPS)
    for name, s in r["steps"].items():
        for key in ("median_step_s", "flops_per_token", "flops_per_s", "utilisation"):
            assert s[key] > 0, (name, key)
    # The FLOP counter: the teacher makes online CoCoMix dearer than cached, cached = in memory.
    flops = {name: r["steps"][name]["flops_per_token"] for name in SETUPS}
    assert flops["cocomix_online"] > flops["cocomix_cached"] == flops["cocomix_memory"] > flops["ntp"]
    for name in ("cocomix_memory", "cocomix_cached", "cocomix_online"):
        q = r["ratios"][f"{name}_over_ntp"]
        assert q["time"] > 0 and q["flops"] > 1 and q["time_over_flops"] > 0
    for key in ("teacher_step_s", "cached_minus_memory_step_s"):
        assert key in r["ratios"]
    assert r["labels"]["online_s"] > 0 and r["labels"]["cached_s"] > 0
    assert math.isfinite(r["labels"]["teacher_cost_removed"])

    [c] = r["compressor"]
    assert c["gather_s"] > 0 and c["dense_s"] > 0 and c["num_concepts"] > c["k"]
    assert set(r["memory"]) == {"ntp", "cocomix_cached", "cocomix_online"}
    for mem in r["memory"].values():
        assert mem["peak_rss_mib"] >= mem["setup_rss_mib"] > 0
    assert set(r["targets"]) == {"framework_overhead", "cocomix_student_time_vs_flops",
                                 "cocomix_online_time_vs_flops", "cached_removes_teacher"}
    assert all(isinstance(t["met"], bool) for t in r["targets"].values())
