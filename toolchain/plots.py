"""PNG charts written atomically (headless matplotlib): the bar charts of per-layer results."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from base.fileio import atomic_path


@contextlib.contextmanager
def png_figure(path: str | Path, size: tuple[float, float]) -> Iterator:
    """Yield a matplotlib ``Axes``; on exit the figure is laid out, saved to ``path`` and closed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
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
