"""The paper-scale cost estimate orders the runs as the FLOP counter says it must."""

from __future__ import annotations

from cocomix.perf.estimate import markdown, rows


def test_estimate_orders_runs_and_scales_hours_with_mfu() -> None:
    table = rows(gpus=8, mfu=0.4, tokens=20e9)
    assert len(table) == 12
    for scale in ("69M", "386M", "1.38B"):
        r = {row["run"].split(" (")[0].split(",")[0]: row for row in table if row["scale"] == scale}
        ntp, cached = r["NTP"], r["CoCoMix cached labels"]
        online = [row for row in table if row["scale"] == scale and "online" in str(row["run"])]
        assert ntp["vs_ntp"] == 1.0 and 1.0 < cached["vs_ntp"] < 2.0
        assert all(row["flops_per_token"] > cached["flops_per_token"] for row in online)
        assert all(0 < row["gpu_memory_gib"] < 80 for row in r.values())  # fits an H100
    slower = rows(gpus=8, mfu=0.2, tokens=20e9)
    assert slower[0]["hours"] == 2 * table[0]["hours"]
    assert "| 1.38B | CoCoMix cached labels |" in markdown(8, 0.4, 20e9)
