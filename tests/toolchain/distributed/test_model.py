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


def test_feature_adapters_outside_the_model_step_on_every_rank_as_in_one_process(tiny_dataset, tmp_path, worker,
                                                                                 launch):  # fmt: skip
    """A student distilled from a wider teacher trains 1x1 adapters that DDP does not hold. Each rank seeds
    its own adapter init; after one ``QATTrainer`` step on 2 images per rank, the adapters' gradients are the
    one process's on all 4 (the trainer broadcast rank 0's init and averaged the gradients: without the
    average each rank keeps its own half, twice over) and every rank holds the same adapters."""
    import numpy as np

    from tests.toolchain.distributed.conftest import detection_batch
    from toolchain.data.signs import SIGN_CLASSES
    from toolchain.quantization.config import QuantConfig
    from toolchain.quantization.placement import quantize_model

    from .test_loss import REL_TOL, rel_err

    def yolo(width: float, seed: int):
        from ultralytics.nn.tasks import DetectionModel, yaml_model_load

        torch.manual_seed(seed)
        spec = {**yaml_model_load("yolov8n.yaml"), "scale": "x", "scales": {"x": [0.33, width, 1024]}}
        model = DetectionModel(spec, nc=len(SIGN_CLASSES), verbose=False)
        model.names = dict(enumerate(SIGN_CLASSES))
        return model

    student = yolo(1 / 16, 0)
    quantize_model(student, QuantConfig())
    calibrate(student, [np.random.default_rng(0).random((2, 3, 64, 64), np.float32)])
    batch = detection_batch()
    batch["cls"] = batch["cls"] % len(SIGN_CLASSES)
    batch["img"] = batch["img"] * 255
    torch.save({"student": student, "teacher": yolo(1 / 8, 1), "batch": batch, "data": str(tiny_dataset)},
               tmp_path / "adapters.pt")  # fmt: skip
    started_ranks, wait_all = launch
    with started_ranks("adapters", tmp_path) as procs:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the ranks' one thread: the same kernels' summation order
        try:
            ref = worker.adapter_step(tmp_path)
        finally:
            torch.set_num_threads(threads)
        for rc, _, err in wait_all(procs, timeout=240):
            assert rc == 0, err[-3000:]
    ranks = [torch.load(tmp_path / f"adapters{r}.pt", weights_only=False) for r in range(2)]
    assert len(ref["grads"]) == 6 and all(g.norm() > 0 for g in ref["grads"])  # 3 levels, weight and bias
    for out in ranks:
        errors = [rel_err(g, want) for g, want in zip(out["grads"], ref["grads"], strict=True)]
        assert max(errors) <= REL_TOL, errors
        assert all(rel_err(a, b) <= REL_TOL for a, b in zip(out["after"], ref["after"], strict=True))
    assert all(torch.equal(a, b) for a, b in zip(ranks[0]["after"], ranks[1]["after"], strict=True))
