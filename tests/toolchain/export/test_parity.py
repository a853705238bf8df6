from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from toolchain.export.onnx import ExportConfig
from toolchain.export.parity import activation_quantize_nodes, head_relative_l2, qdq_parity, relative_l2
from toolchain.jobs.onnx_files import export_onnx
from toolchain.models.yolo import load_model
from toolchain.quantization.calibration import calibrate, calibration_batches
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.placement import quantize_model

IMGSZ = 96


def _calibrated_export(out_dir, checkpoint, dataset, cfg: QuantConfig):
    model = load_model(checkpoint)
    quantize_model(model, cfg)
    calibrate(model, calibration_batches(str(dataset), imgsz=IMGSZ, num_images=16, batch=8))
    path = export_onnx(model, out_dir / "m.int8.onnx", ExportConfig(IMGSZ), "int8")
    batches = calibration_batches(str(dataset), imgsz=IMGSZ, num_images=3, batch=1, split="val")
    return model, path, batches


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_checkpoint, tiny_dataset):
    return _calibrated_export(tmp_path_factory.mktemp("parity"), tiny_checkpoint, tiny_dataset, QuantConfig())


def _edited(path, out, name: str, change) -> str:
    """A copy of the ONNX with one initializer replaced by ``change(array)``."""
    model = onnx.load(str(path))
    (init,) = [i for i in model.graph.initializer if i.name == name]
    init.CopyFrom(numpy_helper.from_array(change(numpy_helper.to_array(init)), name))
    onnx.save(model, str(out))
    return str(out)


def test_relative_l2():
    ref = np.array([3.0, 4.0])
    assert relative_l2(ref, ref) == 0
    assert relative_l2(np.array([3.0, 4.5]), ref) == pytest.approx(0.1)
    assert relative_l2(np.zeros(2), np.zeros(2)) == 0


def test_head_relative_l2_weighs_scores_apart_from_boxes():
    ref = np.concatenate([np.full((1, 4, 10), 200.0), np.full((1, 2, 10), 0.5)], axis=1)
    ours = ref.copy()
    ours[:, 4:] *= 1.1  # scores 10% off: invisible beside pixel coordinates in one norm
    assert relative_l2(ours, ref) < 1e-3
    assert head_relative_l2(ours, ref) == pytest.approx(0.1)


def test_export_matches_fake_quant_layer_by_layer(exported):
    model, path, batches = exported
    report = qdq_parity(model, path, batches)
    assert report.failures() == [], report.summary()
    assert len(report.aligned) == len(batches) == 3
    assert max(report.aligned) <= 1e-4  # float sigmoids differ in the last bits of scores near 0
    assert report.int8_values > 50 * IMGSZ * IMGSZ  # every activation quantizer was compared
    assert report.int8_max_step <= 1
    assert max(report.end_to_end) <= 1e-2 and max(report.float_floor) <= 1e-2


def test_asymmetric_uint8_activations_match_too(tmp_path, tiny_checkpoint, tiny_dataset):
    cfg = QuantConfig.from_dict({"target": "generic", "input": {"symmetric": False, "calibrator": "max"}})
    model, path, batches = _calibrated_export(tmp_path, tiny_checkpoint, tiny_dataset, cfg)
    nodes = activation_quantize_nodes(onnx.load(str(path)))
    assert nodes and all(n.dtype == np.uint8 for n in nodes) and any(n.zero_point for n in nodes)
    report = qdq_parity(model, path, batches)
    assert report.failures() == [], report.summary()


def test_a_wrong_bias_mid_network_is_caught_by_the_int8_activations(exported, tmp_path):
    model, path, batches = exported
    bad = _edited(path, tmp_path / "bias.onnx", "model.3.conv.bias", lambda b: b + np.float32(0.5))
    report = qdq_parity(model, bad, batches)
    assert report.int8_mismatch_rate > 1e-3
    assert any("int8 mismatch" in f for f in report.failures())


def test_a_wrong_float_head_bias_is_caught_by_the_aligned_outputs(exported, tmp_path):
    model, path, batches = exported
    bad = _edited(path, tmp_path / "head.onnx", "model.22.cv3.0.2.bias", lambda b: b + np.float32(0.05))
    report = qdq_parity(model, bad, batches)
    assert max(report.aligned) > 1e-3
    assert any("layer-aligned relative L2" in f for f in report.failures())


def test_a_wrong_activation_scale_leaves_its_quantizer_unmatched(exported, tmp_path):
    model, path, batches = exported
    graph = onnx.load(str(path))
    target = activation_quantize_nodes(graph)[5].name
    (node,) = [n for n in graph.graph.node if n.output and n.output[0] == target]
    bad = _edited(path, tmp_path / "scale.onnx", node.input[1], lambda s: s * np.float32(1.01))
    report = qdq_parity(model, bad, batches)
    assert report.unmatched
    assert any("no QuantizeLinear" in f for f in report.failures())


def test_float_floor_runs_the_model_under_other_arithmetic(exported, tiny_dataset):
    """The floor's float64 run keeps the quantization grids (ranges in float32) and computes the rest
    wider: its outputs sit within the rounding cascade of the oneDNN run's, and both floor runs score."""
    from base.dataset import load_data_yaml, load_split
    from toolchain.export.onnx import export_form
    from toolchain.export.parity import _Float64Runner, evaluate_float_floor
    from toolchain.models.torch_runner import TorchRunner
    from toolchain.quantization.quantized_model import quantizers

    model, path, batches = exported
    imgsz = batches[0].shape[-1]
    with _Float64Runner(export_form(model), imgsz) as wide, TorchRunner(export_form(model), imgsz) as narrow:
        assert next(wide.model.parameters()).dtype == torch.float64
        assert all(b.dtype == torch.float32 for q in quantizers(wide.model) for b in q.buffers())
        gaps = [head_relative_l2(wide.infer(b)[0], narrow.infer(b)[0]) for b in batches]
    assert 0 < max(gaps) < 0.05
    split = load_split(load_data_yaml(tiny_dataset), "val", limit=4)
    floor = evaluate_float_floor(model, split, imgsz)
    assert set(floor) == {"reference kernels", "float64"} and all(r.images == 4 for r in floor.values())
