"""The ``toolchain sensitivity`` job (``sensitivity_run``: through the command line): the ranked CSV, the
chart, the record and the mixed-precision config."""

from __future__ import annotations

import csv

import yaml

from toolchain.config.files import SCHEMA_VERSION
from toolchain.models.yolo import load_model
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.placement import quantize_model
from toolchain.quantization.sensitivity import fusion_groups


def test_ranking_outputs_and_mixed_precision(sensitivity_run, tiny_checkpoint):
    assert sensitivity_run.code == 0, sensitivity_run.err
    folder = sensitivity_run.folder
    with (folder / "sensitivity.csv").open() as f:
        rows = list(csv.DictReader(f))
    fresh = load_model(tiny_checkpoint)
    quantize_model(fresh, QuantConfig())
    assert len(rows) == len(fusion_groups(fresh))
    losses = [float(r["map50_95_loss"]) for r in rows]
    assert losses == sorted(losses, reverse=True)
    assert (folder / "sensitivity.png").stat().st_size > 0
    saved = yaml.safe_load((folder / "sensitivity.yaml").read_text())
    assert saved["version"] == SCHEMA_VERSION and saved["imgsz"] == 64 and saved["keep_float"] == 1
    cfg = QuantConfig.from_yaml(folder / "quant.mixed.yaml")
    first = rows[0]["group"].split()
    assert {o.pattern for o in cfg.overrides if o.skip} == {name.replace(".", "\\.") for name in first}
    report = quantize_model(load_model(tiny_checkpoint), cfg)
    assert set(first) <= set(report.skipped)  # whole groups stay float
    assert cfg.target == "tensorrt"
