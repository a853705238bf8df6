from __future__ import annotations

import yaml

from deploy.dataset import load_data_yaml, load_split
from toolchain.models.yolo import load_model
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.placement import quantize_model
from toolchain.quantization.ptq import calibrate, calibration_batches, quantizers
from toolchain.quantization.sensitivity import (
    fusion_groups,
    layer_sensitivity,
    write_mixed_precision_config,
    write_sensitivity,
)

REPO = __import__("pathlib").Path(__file__).resolve().parents[3]


def test_groups_ranking_outputs_and_mixed_precision(tmp_path, tiny_checkpoint, tiny_dataset):
    model = load_model(tiny_checkpoint)
    quantize_model(model, QuantConfig())
    calibrate(model, calibration_batches(str(tiny_dataset), 64, 8, 8))
    groups = fusion_groups(model)
    assert sum(len(g) for g in groups) == 57
    assert ["model.2.cv2.conv", "model.2.m.0.cv1.conv"] in groups  # a C2f's concat and bottleneck: one group
    split = load_split(load_data_yaml(tiny_dataset), "val", limit=2)
    rows = layer_sensitivity(model, split, 64)
    assert len(rows) == len(groups)
    assert [r.loss for r in rows] == sorted((r.loss for r in rows), reverse=True)
    assert all(q.enabled for q in quantizers(model))  # states restored
    csv_path, png_path = write_sensitivity(rows, tmp_path)
    assert csv_path.read_text().count("\n") == len(rows) + 1 and png_path.stat().st_size > 0
    out = write_mixed_precision_config(rows, 2, REPO / "configs" / "quant.yaml", tmp_path / "mixed.yaml")
    cfg = QuantConfig.from_yaml(out)
    skipped = {o.pattern for o in cfg.overrides if o.skip}
    assert len(skipped) == len(rows[0].group) + len(rows[1].group)
    fresh = load_model(tiny_checkpoint)
    report = quantize_model(fresh, cfg)
    assert set(rows[0].group) <= set(report.skipped)  # whole groups stay float
    assert yaml.safe_load(out.read_text())["target"] == "tensorrt"
