"""Quantizer ranges that travel between ranks, the LSQ batch factor, DDP wrapping in one process."""

from __future__ import annotations

import copy

import pytest
import torch

from toolchain.distributed.model import (
    ddp_options,
    differing_tensors,
    load_quantizer_ranges,
    quantizer_ranges,
    set_lsq_global_batch,
    state_digest,
    unwrap,
    wrap_ddp,
)
from toolchain.distributed.process import DistributedContext
from toolchain.quantization.calibration import calibrate
from toolchain.quantization.modules import QuantConv2d
from toolchain.quantization.quantized_model import quantizers


@pytest.fixture(scope="module")
def calibrated_and_not(qat_inputs):
    inputs = torch.load(qat_inputs / "inputs.pt", weights_only=False)
    source, target = inputs["model"], copy.deepcopy(inputs["model"])
    calibrate(source, [inputs["calib"].numpy()])
    return source, target


@pytest.fixture()
def two_models(calibrated_and_not):
    """Rank 0's model (calibrated) and rank 1's (quantizers placed, no ranges), as before the broadcast."""
    return copy.deepcopy(calibrated_and_not)


def test_ranges_of_rank_0_make_the_other_model_compute_the_same(two_models):
    source, target = two_models
    assert all(q.amax is None for q in quantizers(target))
    load_quantizer_ranges(target, quantizer_ranges(source))
    assert all(q.is_calibrated for q in quantizers(target))
    assert all(isinstance(q.learned_amax, torch.nn.Parameter) for q in quantizers(target))  # LSQ: new parameters
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(source.eval()(x)[0], target.eval()(x)[0])
    assert state_digest(source)[0] == state_digest(target)[0]
    assert torch.equal(state_digest(source)[1], state_digest(target)[1])


def test_ranges_of_another_model_are_refused(two_models):
    source, target = two_models
    ranges = quantizer_ranges(source)
    ranges.pop(next(iter(ranges)))
    with pytest.raises(ValueError, match="prepare one model on every rank"):
        load_quantizer_ranges(target, ranges)


def test_only_activation_quantizers_count_the_whole_batch(two_models):
    model, _ = two_models
    set_lsq_global_batch(model, 4)
    weights = {id(m.weight_quantizer) for m in model.modules() if isinstance(m, QuantConv2d)}
    for q in quantizers(model):
        assert getattr(q, "global_batch_factor", 1) == (1 if id(q) in weights else 4)
    assert 0 < set_lsq_global_batch(model, 1) == len(quantizers(model)) - len(weights)


def test_one_process_needs_no_wrapper_and_agrees_with_itself(two_models):
    model, _ = two_models
    ctx = DistributedContext()
    assert wrap_ddp(model, ctx) is model and unwrap(model) is model
    assert differing_tensors(model, ctx) == []


def test_ddp_options_follow_the_qat_schedule(two_models):
    model, _ = two_models  # LSQ ranges: parameters that go unused while their quantizer is off or frozen
    assert ddp_options(model, 0, -1, False) == {"broadcast_buffers": False, "find_unused_parameters": False}
    assert ddp_options(model, 2, -1, False)["broadcast_buffers"]  # BN statistics update for 2 epochs
    assert ddp_options(model, -1, -1, False)["broadcast_buffers"]
    assert ddp_options(model, 0, 3, False)["find_unused_parameters"]
    assert ddp_options(model, 0, -1, True)["find_unused_parameters"]
    for q in quantizers(model):
        q.freeze()  # fixed ranges: no parameter can go unused
    assert not ddp_options(model, 0, 3, True)["find_unused_parameters"]
