"""Our evaluator through ONNX Runtime against ``yolo val`` on the same weights and data."""

from __future__ import annotations

import pytest

from base.dataset import load_data_yaml, load_split
from deploy.evaluate import evaluate
from deploy.runtime.onnxruntime import OnnxRuntimeRunner


@pytest.mark.slow
@pytest.mark.shared
def test_onnx_map_matches_yolo_val(tmp_path, road_signs, shared_model):
    pytest.importorskip("ultralytics")
    from ultralytics import YOLO

    from toolchain.export.onnx import ExportConfig
    from toolchain.jobs.onnx_files import export_onnx
    from toolchain.models.yolo import load_model

    onnx_path = export_onnx(load_model(shared_model), tmp_path / "m.onnx", ExportConfig(imgsz=384))
    with OnnxRuntimeRunner(onnx_path) as runner:
        ours = evaluate(runner, load_split(load_data_yaml(road_signs), "val"))
    theirs = YOLO(str(shared_model)).val(
        data=str(road_signs),
        imgsz=384,
        batch=16,
        device="cpu",
        plots=False,
        verbose=False,
        project=str(tmp_path),
        name="val",
        workers=0,
    )
    print(
        f"ours (ONNX Runtime, square letterbox) {ours.map50_95:.4f}/{ours.map50:.4f}, "
        f"yolo val (.pt, rect batches) {theirs.box.map:.4f}/{theirs.box.map50:.4f}"
    )
    assert abs(ours.map50_95 - theirs.box.map) <= 0.01
    assert abs(ours.map50 - theirs.box.map50) <= 0.01
