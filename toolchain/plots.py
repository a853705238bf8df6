"""PNG charts written atomically (headless matplotlib): the bar charts of per-layer results and the range
histograms of one quantized layer."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from base.fileio import atomic_path


@contextlib.contextmanager
def png_figure(path: str | Path, size: tuple[float, float], panels: int = 1) -> Iterator:
    """Yield a matplotlib ``Axes`` (``panels`` of them side by side when more than one); on exit the figure
    is laid out, saved to ``path`` and closed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, panels, figsize=size)
    try:
        yield ax
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
    finally:
        plt.close(fig)


def bar_chart(path: str | Path, labels: list[str], values: list[float], ylabel: str, title: str) -> Path:
    """One bar per label, labels turned vertical (layer names are long)."""
    with png_figure(path, (12, 4)) as ax:
        ax.bar(range(len(values)), values)
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
    return Path(path)


def range_histograms(
    path: str | Path,
    title: str,
    channel_absmax: np.ndarray,
    channel_amax: np.ndarray,
    values: np.ndarray,
    value_range: tuple[float, float],
) -> Path:
    """One quantized layer's ranges: per output channel, its weight |max| (bars) and the weight quantizer's
    range (dots); the histogram of its input activation values (log counts), the input quantizer's
    ``value_range`` marked, with the share of values outside it."""
    low, high = value_range
    clipped = float(np.mean((values < low) | (values > high))) if values.size else 0.0
    with png_figure(path, (12, 3.5), panels=2) as (weights, inputs):
        weights.bar(range(len(channel_absmax)), channel_absmax, width=1.0, label="weight |max|")
        weights.plot(range(len(channel_amax)), channel_amax, "r.", markersize=3, label="quantizer amax")
        weights.set_xlabel("output channel")
        weights.set_ylabel("|w| max")
        weights.legend(fontsize=7)
        weights.set_title("weights, per output channel", fontsize=9)
        inputs.hist(values, bins=120, log=True)
        for x in (low, high):
            inputs.axvline(x, color="r", linestyle="--", linewidth=1)
        inputs.set_xlabel("input activation (red: the input quantizer's range)")
        inputs.set_ylabel("count")
        inputs.set_title(f"input activations, {100 * clipped:.3f}% outside the range", fontsize=9)
        weights.figure.suptitle(title, fontsize=10)
    return Path(path)
