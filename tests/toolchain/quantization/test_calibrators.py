"""Calibrators against numpy references on known distributions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toolchain.quantization.calibrators import create_calibrator
from toolchain.quantization.config import QuantizerConfig


def _range(calibrator: str, batches: list[np.ndarray], **kwargs) -> float:
    cal = create_calibrator(QuantizerConfig(calibrator=calibrator, **kwargs))
    for b in batches:
        cal.collect(torch.from_numpy(b))
    return float(cal.compute_range()[1])


def _fq(x: np.ndarray, amax: float, qmax: int = 127) -> np.ndarray:
    scale = amax / qmax
    return np.clip(np.round(x / scale), -qmax - 1, qmax) * scale


@pytest.fixture(scope="module")
def gaussian() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal(200_000).astype(np.float32) for _ in range(4)]


def test_max(gaussian):
    assert _range("max", gaussian) == pytest.approx(max(np.abs(b).max() for b in gaussian))


def test_max_per_channel():
    x = np.stack([np.linspace(-1, 1, 50), np.linspace(-3, 2, 50)]).astype(np.float32)
    cal = create_calibrator(QuantizerConfig(calibrator="max", axis=0))
    cal.collect(torch.from_numpy(x))
    np.testing.assert_allclose(cal.compute_range()[1].numpy(), [1.0, 3.0])


def test_moving_average_max():
    batches = [np.array([1.0, -2.0], np.float32), np.array([4.0], np.float32), np.array([0.5], np.float32)]
    m = 0.9
    expected = 2.0
    for b in batches[1:]:
        expected = m * expected + (1 - m) * np.abs(b).max()
    assert _range("moving_average_max", batches, momentum=m) == pytest.approx(expected)


def test_histogram_grows_without_rebinning():
    small = np.random.default_rng(1).uniform(-1, 1, 10_000).astype(np.float32)
    large = np.random.default_rng(2).uniform(-4, 4, 10_000).astype(np.float32)
    cal = create_calibrator(QuantizerConfig(calibrator="histogram_percentile", num_bins=1000))
    cal.collect(torch.from_numpy(small))
    cal.collect(torch.from_numpy(large))
    assert cal.hist.sum() == 20_000
    assert len(cal.hist) >= 4000  # the bin width of the first batch is kept
    edges = cal.edges
    ref, _ = np.histogram(np.abs(np.concatenate([small, large])), bins=len(edges), range=(0, edges[-1]))
    np.testing.assert_allclose(cal.hist, ref, atol=2)  # histc and numpy may place edge values differently


@pytest.mark.parametrize("percentile", [99.0, 99.9, 99.99])
def test_percentile(gaussian, percentile):
    ref = np.percentile(np.abs(np.concatenate(gaussian)), percentile)
    width = float(np.abs(gaussian[0]).max()) / 2048
    assert _range("histogram_percentile", gaussian, percentile=percentile) == pytest.approx(ref, abs=2 * width)


def test_mse_minimises_the_error_of_fake_quantization():
    rng = np.random.default_rng(3)
    x = rng.laplace(0, 1, 400_000).astype(np.float32)  # heavy tails: the best clip is well below max
    amax = _range("mse", [x])
    candidates = np.linspace(0.2 * np.abs(x).max(), np.abs(x).max(), 400)
    errors = [np.mean((x - _fq(x, a)) ** 2) for a in candidates]
    best = candidates[int(np.argmin(errors))]
    assert amax < 0.8 * np.abs(x).max()
    assert np.mean((x - _fq(x, amax)) ** 2) <= 1.02 * min(errors)
    assert amax == pytest.approx(best, rel=0.15)


def _kl_reference(hist: np.ndarray, i: int, levels: int = 128) -> float:
    """TensorRT's entropy calibration step, written out with plain loops."""
    p = hist[:i].astype(np.float64).copy()
    p[i - 1] += hist[i:].sum()
    q = np.zeros(i)
    for idx in np.array_split(np.arange(i), levels):
        chunk = hist[idx]
        nz = chunk != 0
        if nz.any():
            q[idx] = np.where(nz, chunk.sum() / nz.sum(), 0)
    p, q = p / p.sum(), q / q.sum()
    m = p > 0
    return np.inf if np.any(q[m] == 0) else float(np.sum(p[m] * np.log(p[m] / q[m])))


def test_entropy_matches_reference_search():
    x = np.random.default_rng(4).laplace(0, 1, 400_000).astype(np.float32)
    x[:3] = [60.0, -70.0, 80.0]  # rare outliers that a max calibrator would follow
    cal = create_calibrator(QuantizerConfig(calibrator="entropy", num_bins=1024))
    cal.collect(torch.from_numpy(x))
    amax = float(cal.compute_range()[1])
    kls = [_kl_reference(cal.hist, i) for i in range(128, len(cal.hist) + 1)]
    expected = cal.edges[128 + int(np.argmin(kls)) - 1]
    assert amax == pytest.approx(expected)
    assert 2.0 < amax < 0.5 * np.abs(x).max()  # clips the outliers
