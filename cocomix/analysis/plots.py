"""PNG plots of validation loss against training tokens and training FLOPs (matplotlib, Agg).

One curve per arm (the mean over its seeds) with a min-max band over the seeds, the baseline's
final loss as a dashed line, a title naming the comparison, axis labels with units and a legend.
"""

from __future__ import annotations

from pathlib import Path

from cocomix.analysis.compare import ArmCurve

X_AXES: dict[str, tuple[str, str]] = {
    "tokens": ("training tokens", "Validation loss vs training tokens"),
    "flops": ("training compute (FLOPs, estimated; see docs/evaluation.md)",
              "Validation loss vs training FLOPs"),
}
_STYLES = [("-", "o"), ("--", "s"), (":", "^")]


def plot_loss(
    curves: dict[str, ArmCurve],
    axis: str,
    path: Path,
    *,
    title_suffix: str = "",
    baseline: str | None = None,
) -> Path | None:
    """Write one plot; returns its path, or ``None`` when no arm has that x-axis (FLOPs
    unknown)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    usable = {arm: c for arm, c in curves.items() if (c.tokens if axis == "tokens" else c.flops) is not None}
    if not usable:
        return None
    xlabel, title = X_AXES[axis]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    for index, (arm, curve) in enumerate(usable.items()):
        x = curve.tokens if axis == "tokens" else curve.flops
        assert x is not None
        seeds = len(curve.seeds)
        label = f"{arm} ({seeds} seed{'s' if seeds != 1 else ''})"
        # matplotlib's colour cycle has 10 colours; arms past the tenth (a sweep has 13) reuse a
        # colour, so they get another line style and marker to stay apart.
        style = _STYLES[index // 10 % len(_STYLES)]
        (line,) = ax.plot(x, curve.mean, linestyle=style[0], marker=style[1], markersize=3,
                          linewidth=1.6, label=label)
        if seeds > 1:
            ax.fill_between(x, curve.low, curve.high, color=line.get_color(), alpha=0.2, linewidth=0)
    if baseline is not None and baseline in curves:
        ax.axhline(float(curves[baseline].mean[-1]), color="0.4", linestyle="--", linewidth=1,
                   label=f"final loss of baseline {baseline!r}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation loss (nats per token)")
    ax.set_title(title + (f" — {title_suffix}" if title_suffix else ""))
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    ax.grid(True, alpha=0.3)
    ax.legend(title="arm (mean; band: min–max over seeds)", fontsize=8, title_fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
