"""Mean and spread over seeds, and how every report prints them.

The guide's rule for claims is "3 seeds, mean ± std": the recipe summary, the arm comparison and
the paired reports all print that pair, so they share one definition (sample std, ``n - 1``) and
one format. One seed has no spread, so it prints the value alone rather than "± 0".
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation; the std of one value is 0.0, of none both are NaN."""
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def spread(mean: float, std: float, seeds: int, spec: str = ".4f", *, signed: bool = False) -> str:
    """``mean ± std`` in ``spec``; the mean alone for one seed. ``signed`` prints the mean's sign
    (for differences such as arm - NTP)."""
    head = format(mean, ("+" if signed else "") + spec)
    return head if seeds == 1 else f"{head} ± {format(std, spec)}"


__all__ = ["mean_std", "spread"]
