from __future__ import annotations

import numpy as np
import pytest
import torch

from toolchain.quantization.config import QuantizerConfig
from toolchain.quantization.quantizer import TensorQuantizer


def _fq_reference(x: np.ndarray, scale: np.ndarray, zp: np.ndarray, qmin: int, qmax: int) -> np.ndarray:
    """numpy fake-quant: round half to even, clamp, dequantize."""
    return (np.clip(np.round(x / scale) + zp, qmin, qmax) - zp) * scale


@pytest.mark.parametrize("bits", [4, 6, 8])
@pytest.mark.parametrize("axis", [None, 0])
def test_symmetric_matches_numpy(bits, axis):
    torch.manual_seed(0)
    x = torch.randn(8, 3, 5, 5) * 3
    q = TensorQuantizer(QuantizerConfig(num_bits=bits, axis=axis))
    with q.calibrating():
        q(x)
    qmax = 2 ** (bits - 1) - 1
    amax = x.abs().amax(dim=(1, 2, 3)) if axis == 0 else x.abs().max()
    torch.testing.assert_close(q.amax, amax)
    scale = (amax / qmax).numpy().reshape(-1, 1, 1, 1) if axis == 0 else (amax / qmax).numpy()
    expected = _fq_reference(x.numpy(), scale, 0, -qmax - 1, qmax)
    np.testing.assert_allclose(q(x).numpy(), expected, rtol=0, atol=1e-6)
    assert (q.qmin, q.qmax) == (-qmax - 1, qmax)


def test_asymmetric_uint8_with_zero_point():
    x = torch.rand(4, 16) * 5 - 1  # [-1, 4]
    q = TensorQuantizer(QuantizerConfig(symmetric=False))
    with q.calibrating():
        q(x)
    scale, zp = q.scale_zero_point()
    assert (q.qmin, q.qmax) == (0, 255)
    assert scale.item() == pytest.approx((x.max() - x.min()).item() / 255, rel=1e-5)
    assert 0 < zp.item() < 255
    expected = _fq_reference(x.numpy(), scale.item(), zp.item(), 0, 255)
    np.testing.assert_allclose(q(x).numpy(), expected, atol=1e-6)


def test_straight_through_gradient_zero_outside_range():
    q = TensorQuantizer(QuantizerConfig())
    q.set_range(torch.tensor(1.0))
    x = torch.tensor([-3.0, -0.5, 0.2, 0.99, 2.0], requires_grad=True)
    q(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_lsq_learns_the_range():
    torch.manual_seed(0)
    q = TensorQuantizer(QuantizerConfig(learn_amax=True))
    q.set_range(torch.tensor(0.5))
    q.train()
    x = torch.randn(1000) * 2
    assert isinstance(q.learned_amax, torch.nn.Parameter)
    opt = torch.optim.Adam([q.learned_amax], lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        ((q(x) - x) ** 2).mean().backward()
        opt.step()
    assert q.learned_amax.item() > 1.5  # a clip at 0.5 loses most of N(0, 2): the range grows
    q.freeze()
    assert q.learned_amax is None and q.amax.item() > 1.5


def test_lsq_gradient_is_scaled():
    q = TensorQuantizer(QuantizerConfig(learn_amax=True))
    q.set_range(torch.tensor(1.0))
    q.train()
    x = torch.full((100,), 2.0)  # all clipped: d out / d scale = qmax per element
    q(x).sum().backward()
    grad_factor = 1 / np.sqrt(100 * 127)
    # d(amax) = d(scale) / 127 = 100 elements * qmax * grad_factor / 127
    assert q.learned_amax.grad.item() == pytest.approx(100 * grad_factor, rel=1e-4)


def test_disabled_and_uncalibrated_pass_through():
    x = torch.randn(10)
    q = TensorQuantizer(QuantizerConfig())
    assert torch.equal(q(x), x)  # no range yet
    q.set_range(torch.tensor(0.1))
    q.enabled = False
    assert torch.equal(q(x), x)
    q.enabled = True
    assert not torch.equal(q(x), x)


def test_calibrating_passes_values_unchanged():
    q = TensorQuantizer(QuantizerConfig())
    x = torch.randn(10)
    with q.calibrating():
        assert torch.equal(q(x), x)
    assert q.is_calibrated
