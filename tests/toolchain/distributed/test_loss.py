"""Two gloo ranks of 2 images take the same QAT step as one process of 4 images.

Why this can be exact: BatchNorm is frozen (QAT's default from epoch 0; in train mode each rank
would normalise with its own 2 images), the loss of each rank is its share of the whole batch's
loss (``GlobalTargetNormalization``: ultralytics normalises by the rank's own target count) and is
multiplied by the world size before ``backward`` (DDP averages). What remains is float32 summation
order (2 images then an all-reduce, against 4 images at once): tolerance 1e-5 relative on each
tensor's L2 norm; the largest gap measured was 1.6e-6 (a Detect bias), the median 2e-7.

Equality is never assumed across processes: oneDNN's AVX2 convolutions split their reductions by
thread count, so the reference runs on the ranks' one thread (with 2 threads, AVX2's LSQ gradients
were 1e-4 apart: a value within an ulp of a rounding boundary rounds the other way), and the ranges
calibrated in another process agree within RANGE_TOL, a few float32 ulps over the tiny network's
depth. The ranks agree with each other exactly: rank 0's ranges are broadcast, a copy.
"""

from __future__ import annotations

import pytest
import torch

from toolchain.distributed.loss import GlobalTargetNormalization
from toolchain.distributed.model import quantizer_ranges
from toolchain.distributed.process import DistributedContext
from toolchain.quantization.calibration import calibrate
from toolchain.training.losses import LossConfig, detection_criterion

REL_TOL = 1e-5
RANGE_TOL = 16 * 2.0**-24  # 16 float32 ulps: a max over activations a few layers deep


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def one_process(folder, worker, onednn: bool = True) -> dict:
    """The reference: one process on the ranks' one thread, the whole batch of 4, the same calibration and
    step; with ``onednn=False`` PyTorch's reference kernels instead of oneDNN's (the float32 floor)."""
    inputs = torch.load(folder / "inputs.pt", weights_only=False)
    model = inputs["model"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.backends.mkldnn.flags(enabled=onednn):
            calibrate(model, [inputs["calib"].numpy()])
            ranges_before = quantizer_ranges(model)
            worker.prepare_for_qat(model)
            loss = worker.qat_step(model, detection_criterion(model, LossConfig()), worker.sgd(model), inputs["batch"])
    finally:
        torch.set_num_threads(threads)
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return {"loss": loss, "grads": grads, "ranges_before": ranges_before, "ranges_after": quantizer_ranges(model)}


def assert_ranges_close(got: dict, want: dict, tol: float) -> None:
    assert got.keys() == want.keys()
    for name, state in want.items():
        for key, value in state.items():
            if value is None:
                assert got[name][key] is None, (name, key)
            else:
                assert rel_err(got[name][key], value) <= tol, (name, key, rel_err(got[name][key], value))


@pytest.fixture(scope="module")
def two_ranks_and_one_process(qat_inputs, worker, launch) -> tuple[list[dict], dict]:
    """What each of 2 ranks (2 images each) wrote after its step, and the one-process reference (4 images)."""
    started_ranks, wait_all = launch
    with started_ranks("step", qat_inputs) as procs:
        ref = one_process(qat_inputs, worker)  # while the ranks start
        ref["floor"] = one_process(qat_inputs, worker, onednn=False)
        for rc, _, err in wait_all(procs, timeout=240):
            assert rc == 0, err[-3000:]
    return [torch.load(qat_inputs / f"rank{r}.pt", weights_only=False) for r in range(2)], ref


def is_activation_lsq(name: str) -> bool:
    return name.endswith("learned_amax") and "weight_quantizer" not in name


def test_two_ranks_step_like_one_process_of_the_whole_batch(two_ranks_and_one_process):
    ranks, ref = two_ranks_and_one_process
    assert any(n.endswith("weight_quantizer.learned_amax") for n in ref["grads"])  # LSQ ranges are DDP parameters
    assert_ranges_close(ranks[1]["ranges_before"], ranks[0]["ranges_before"], 0.0)  # calibrated once, broadcast
    for out in ranks:
        assert_ranges_close(out["ranges_before"], ref["ranges_before"], RANGE_TOL)
        assert rel_err(out["loss"], ref["loss"]) <= REL_TOL
        assert out["grads"].keys() == ref["grads"].keys()
        errors = {n: rel_err(out["grads"][n], g) for n, g in ref["grads"].items() if not is_activation_lsq(n)}
        assert len(errors) > 100 and max(errors.values()) <= REL_TOL, max(errors.items(), key=lambda kv: kv[1])
        weights = {n: r for n, r in ref["ranges_after"].items() if n.endswith("weight_quantizer")}
        assert_ranges_close({n: out["ranges_after"][n] for n in weights}, weights, REL_TOL)
        assert out["differ_frozen_bn"] == []  # weights, frozen BN statistics and ranges bit-identical
        assert out["from_main"] == "made on rank 0" and out["cache"] == "written by rank 0"
        assert out["mean"] == {"one": 1.0, "rank": 0.5}
        assert out["differ_training_bn"] and all("running_" in n for n in out["differ_training_bn"])


def test_activation_ranges_learn_like_one_process(two_ranks_and_one_process):
    """LSQ scales an activation range's gradient by 1/sqrt(N * qmax), N counting the batch: each rank
    counts the whole batch (``set_lsq_global_batch``), else its gradient is sqrt(2) times the reference's.

    An activation range's gradient sums ``round(x / s) - x / s`` over the tensor: where another
    summation order moves an x across a rounding boundary, its term jumps by a whole step, so these
    gradients are as far apart as rounding moves them, not a few ulps. The bound is measured: 4 times
    how far the same one-process step moves under PyTorch's reference kernels (the float32 floor),
    at least REL_TOL. A world-size error (sqrt(2)) is 40% off, far beyond either.
    """
    ranks, ref = two_ranks_and_one_process
    names = [n for n in ref["grads"] if is_activation_lsq(n)]
    assert names
    floor = max(rel_err(ref["floor"]["grads"][n], ref["grads"][n]) for n in names)
    tol = max(REL_TOL, 4 * floor)
    assert tol < 0.01, floor  # the floor is rounding, not another computation
    for out in ranks:
        assert max(rel_err(out["grads"][n], ref["grads"][n]) for n in names) <= tol, (tol, floor)
        assert_ranges_close(out["ranges_after"], ref["ranges_after"], tol)


def test_per_rank_target_normalisation_would_not_match(qat_inputs, worker):
    """The scenario discriminates: with each rank normalised by its own targets (ultralytics' DDP),
    the averaged gradient is off by far more than the tolerance."""
    inputs = torch.load(qat_inputs / "inputs.pt", weights_only=False)
    model = worker.prepare_for_qat(inputs["model"])
    calibrate(model, [inputs["calib"].numpy()])
    worker.prepare_for_qat(model)
    criterion = detection_criterion(model, LossConfig())
    whole, _ = criterion(model(inputs["batch"]["img"]), inputs["batch"])
    want = torch.autograd.grad(whole.sum(), model.model[0].conv.weight)[0]
    halves = [worker.shard(inputs["batch"], 0, 2), worker.shard(inputs["batch"], 2, 4)]
    per_rank = sum(2 * criterion(model(h["img"]), h)[0].sum() / 2 for h in halves)  # x world size, DDP's mean
    got = torch.autograd.grad(per_rank, model.model[0].conv.weight)[0]
    assert rel_err(got, want) > 100 * REL_TOL


def test_one_process_leaves_the_loss_alone(qat_inputs, worker):
    inputs = torch.load(qat_inputs / "inputs.pt", weights_only=False)
    model = inputs["model"].eval()
    criterion = detection_criterion(model, LossConfig())
    wrapped = GlobalTargetNormalization(detection_criterion(model, LossConfig()), DistributedContext())
    preds = model.train()(inputs["batch"]["img"])
    assert torch.equal(wrapped(preds, inputs["batch"])[0], criterion(preds, inputs["batch"])[0])


if __name__ == "__main__":
    pytest.main([__file__, "-q"])
