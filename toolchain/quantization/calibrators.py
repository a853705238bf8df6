"""Calibrators: statistics of a tensor over calibration batches, turned into a quantization range.

- ``max``: the largest magnitude seen (per channel along ``axis`` when set); min and max when asymmetric.
- ``moving_average_max``: an exponential moving average of each batch's max (and min).
- ``histogram_percentile`` / ``mse`` / ``entropy``: a histogram of magnitudes with a fixed bin width
  (bins are added as the range grows, so nothing is re-binned), then the percentile, the range that
  minimises the expected quantization MSE, or TensorRT's KL-divergence search.
"""

from __future__ import annotations

import abc

import numpy as np
import torch

from toolchain.quantization.config import QuantizerConfig


class Calibrator(abc.ABC):
    """Collects statistics of what passes through a quantizer."""

    def __init__(self, cfg: QuantizerConfig) -> None:
        self.cfg = cfg
        self.seen = 0

    def _reduce_dims(self, x: torch.Tensor) -> tuple[int, ...]:
        if self.cfg.axis is None:
            return tuple(range(x.dim()))
        axis = self.cfg.axis % x.dim()
        return tuple(d for d in range(x.dim()) if d != axis)

    @abc.abstractmethod
    def collect(self, x: torch.Tensor) -> None:
        """Add one batch."""

    @abc.abstractmethod
    def compute_range(self) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``(amin, amax)``; ``amin`` is ``None`` for symmetric quantizers."""


class MaxCalibrator(Calibrator):
    """Running max of |x| (symmetric) or running min and max (asymmetric)."""

    def __init__(self, cfg: QuantizerConfig) -> None:
        super().__init__(cfg)
        self.amin: torch.Tensor | None = None
        self.amax: torch.Tensor | None = None

    def _batch_range(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dims = self._reduce_dims(x)
        x = x.float()
        if self.cfg.symmetric:
            return torch.zeros(()), torch.amax(x.abs(), dim=dims)
        return torch.amin(x, dim=dims), torch.amax(x, dim=dims)

    def collect(self, x: torch.Tensor) -> None:
        lo, hi = self._batch_range(x)
        self.amin = lo if self.amin is None else torch.minimum(self.amin, lo)
        self.amax = hi if self.amax is None else torch.maximum(self.amax, hi)
        self.seen += 1

    def compute_range(self) -> tuple[torch.Tensor | None, torch.Tensor]:
        return (None if self.cfg.symmetric else self.amin), self.amax


class MovingAverageMaxCalibrator(MaxCalibrator):
    """``amax = m * amax + (1 - m) * batch_max`` (and the same for the min)."""

    def collect(self, x: torch.Tensor) -> None:
        lo, hi = self._batch_range(x)
        m = self.cfg.momentum
        self.amin = lo if self.amin is None else m * self.amin + (1 - m) * lo
        self.amax = hi if self.amax is None else m * self.amax + (1 - m) * hi
        self.seen += 1


class HistogramCalibrator(Calibrator):
    """Histogram of |x| with a fixed bin width set by the first batch; the range comes from ``method``."""

    def __init__(self, cfg: QuantizerConfig) -> None:
        super().__init__(cfg)
        self.hist: np.ndarray | None = None
        self.width = 0.0

    def collect(self, x: torch.Tensor) -> None:
        x = x.detach().float().abs().flatten()
        top = float(x.max()) if x.numel() else 0.0
        if self.hist is None:
            self.width = max(top, 1e-8) / self.cfg.num_bins
            self.hist = np.zeros(self.cfg.num_bins, np.float64)
        bins = max(len(self.hist), int(np.ceil(top / self.width)))
        if bins > len(self.hist):
            self.hist = np.pad(self.hist, (0, bins - len(self.hist)))
        counts = torch.histc(x, bins=bins, min=0.0, max=bins * self.width)
        self.hist += counts.cpu().double().numpy()
        self.seen += 1

    @property
    def edges(self) -> np.ndarray:
        """Upper edge of every bin."""
        return (np.arange(len(self.hist)) + 1) * self.width

    def compute_range(self) -> tuple[None, torch.Tensor]:
        method = {"histogram_percentile": self._percentile, "mse": self._mse, "entropy": self._entropy}
        return None, torch.tensor(method[self.cfg.calibrator](), dtype=torch.float32)

    def _percentile(self) -> float:
        cdf = np.cumsum(self.hist) / self.hist.sum()
        idx = int(np.searchsorted(cdf, self.cfg.percentile / 100.0))
        return float(self.edges[min(idx, len(self.hist) - 1)])

    def _mse(self, start: int = 128, stride: int = 1) -> float:
        """The bin edge that minimises the expected squared error of fake-quantizing the histogram."""
        qmax = 2 ** (self.cfg.num_bits - 1) - 1
        centres = self.edges - self.width / 2
        candidates = self.edges[min(start, len(self.hist) - 1) :: stride]
        best, best_err = candidates[-1], np.inf
        for chunk in np.array_split(candidates, max(1, len(candidates) // 64)):
            scale = chunk[:, None] / qmax
            err = ((centres - np.clip(np.round(centres / scale), 0, qmax) * scale) ** 2 * self.hist).sum(1)
            i = int(np.argmin(err))
            if err[i] < best_err:
                best, best_err = chunk[i], err[i]
        return float(best)

    def _entropy(self, start: int = 128, stride: int = 1) -> float:
        """TensorRT's search: the clip bin minimising KL(reference || quantized) over 2**(bits-1) levels."""
        levels = 2 ** (self.cfg.num_bits - 1)
        hist = self.hist
        nbins = len(hist)
        start = min(start, nbins)
        best_i, best_kl = nbins, np.inf
        for i in range(max(start, levels), nbins + 1, stride):
            p = hist[:i].copy()
            p[i - 1] += hist[i:].sum()
            kl = _kl_after_quantization(p, hist[:i], levels)
            if kl < best_kl:
                best_i, best_kl = i, kl
        return float(self.edges[best_i - 1])


def _kl_after_quantization(reference: np.ndarray, clipped: np.ndarray, levels: int) -> float:
    """KL divergence between ``reference`` and ``clipped`` merged into ``levels`` groups and spread back."""
    n = len(clipped)
    sizes = np.full(levels, n // levels)
    sizes[: n % levels] += 1  # as np.array_split: the first groups take the remainder
    sizes = sizes[sizes > 0]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    nonzero = clipped != 0
    mass = np.add.reduceat(clipped, starts)
    count = np.add.reduceat(nonzero.astype(np.float64), starts)
    per_bin = np.repeat(np.divide(mass, count, out=np.zeros_like(mass), where=count > 0), sizes)
    q = np.where(nonzero, per_bin, 0.0)
    p = reference / reference.sum()
    total_q = q.sum()
    if total_q == 0:
        return np.inf
    q = q / total_q
    mask = p > 0
    if np.any(q[mask] == 0):
        return np.inf
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def create_calibrator(cfg: QuantizerConfig) -> Calibrator:
    """The calibrator named by ``cfg.calibrator``."""
    if cfg.calibrator == "max":
        return MaxCalibrator(cfg)
    if cfg.calibrator == "moving_average_max":
        return MovingAverageMaxCalibrator(cfg)
    return HistogramCalibrator(cfg)
