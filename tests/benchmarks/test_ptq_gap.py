"""``benchmarks.ptq_gap``: INT8 minus FP32 on the report split, with its interval and what it rests on."""

from __future__ import annotations

import json

import pytest

from base.dataset import load_data_yaml, load_split
from benchmarks import ptq_gap
from tests.toolchain.training.test_qat_report import _scored


def test_the_gap_is_int8_minus_fp32_on_the_test_split(tiny_dataset, monkeypatch, tmp_path, capsys):
    scored = {"fp32.onnx": _scored(0.02, 0), "int8.onnx": _scored(0.12, 1)}
    monkeypatch.setattr(ptq_gap, "evaluate_onnx", lambda paths, split: {k: scored[p.name] for k, p in paths.items()})
    out = tmp_path / "gap.json"
    assert ptq_gap.main(["--fp32", "fp32.onnx", "--int8", "int8.onnx", "--data", str(tiny_dataset),
                         "--resamples", "100", "--json", str(out)]) == 0  # fmt: skip
    gap = json.loads(out.read_text())
    val = load_split(load_data_yaml(tiny_dataset), "val")  # no test split: val
    assert (gap["split"], gap["images"]) == ("val", len(val.images))
    assert gap["boxes"] == sum(len(r.classes) for r in val.images) and 0 <= gap["small_boxes"] <= gap["boxes"]
    d = gap["differences"]["map50_95"]
    assert d["delta"] == pytest.approx(scored["int8.onnx"].map50_95 - scored["fp32.onnx"].map50_95, abs=1e-12)
    assert d["low"] <= d["delta"] <= d["high"] and d["delta"] < 0
    printed = capsys.readouterr().out
    assert "PTQ INT8 - FP32, map50_95:" in printed and f"{gap['small_boxes']} small" in printed


def test_a_missing_data_yaml_is_one_line(tmp_path, capsys):
    assert ptq_gap.main(["--fp32", "a.onnx", "--int8", "b.onnx", "--data", str(tmp_path / "none.yaml")]) != 0
    assert "none.yaml" in capsys.readouterr().err
