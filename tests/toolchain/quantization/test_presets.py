"""Quant presets: ``default`` is the config as given; ``sensitive`` keeps the first conv and the fusion groups
with the lowest head SQNR float, resolved to skip overrides (a planted outlier makes one group the worst)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from base.errors import ToolchainError
from deploy.qdq.rules import check_qdq
from toolchain.config.fields import FieldError
from toolchain.config.tree import from_dict
from toolchain.export.onnx import ExportConfig
from toolchain.jobs.onnx_files import export_onnx
from toolchain.jobs.ptq import PTQConfig
from toolchain.models.yolo import load_model
from toolchain.quantization.calibration import calibrated_model, resolve_preset
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.placement import quantize_model
from toolchain.quantization.presets import FIRST_CONV, preset_base, ranking_batches, sensitive_config
from toolchain.quantization.sensitivity import GroupSQNR, fusion_groups, group_sqnr

PLANTED = ["model.4.cv1.conv"]  # a fusion group of one conv
OVERRIDE = [{"pattern": r"model\.1\.conv", "skip": True}]
KEEP_ALL = r"quant.sensitive_keep: 2, but the model has only 2 .*keep fewer \(at most 1\)$"


def _skipped(cfg: QuantConfig) -> set[str]:
    return {o.pattern.replace("\\", "") for o in cfg.overrides if o.skip}


@pytest.fixture(scope="module")
def planted(tiny_checkpoint):
    """The tiny model with model.4.cv1's weights made an outlier on an input channel that is ~0: per-channel
    int8 then rounds its other weights to zero, while float hardly notices; and two calibration images."""
    model = load_model(tiny_checkpoint)
    with torch.no_grad():
        model.model[3].bn.weight[0], model.model[3].bn.bias[0] = 0.0, -20.0  # SiLU(-20): channel 0 is ~0
        model.model[4].cv1.conv.weight[:, 0] = 1e4
    return model, [np.random.default_rng(0).random((2, 3, 64, 64), np.float32)]


@pytest.fixture(scope="module")
def ranked(planted) -> list[GroupSQNR]:
    model, batches = planted
    student, _ = calibrated_model(model, preset_base(QuantConfig()), batches)
    return group_sqnr(student, batches)


@pytest.fixture(scope="module")
def resolved(planted) -> QuantConfig:
    model, batches = planted
    return resolve_preset(model, QuantConfig(preset="sensitive", sensitive_keep=2), batches)


def test_default_preset_is_no_preset(tiny_checkpoint):
    given, plain = (
        QuantConfig.from_dict({"preset": "default", "overrides": OVERRIDE}),
        QuantConfig.from_dict({"overrides": OVERRIDE}),
    )
    assert given == plain and QuantConfig().preset == "default"
    assert resolve_preset(None, given, []) is given  # nothing calibrated, nothing ranked
    first, second = [quantize_model(load_model(tiny_checkpoint), cfg) for cfg in (given, plain)]
    assert (first.quantized, first.skipped, first.groups) == (second.quantized, second.skipped, second.groups)
    assert "model.1.conv" in first.skipped and len(first.quantized) == 56


def test_a_bad_preset_is_one_line_naming_quant_preset(tiny_checkpoint, tiny_dataset, capsys):
    with pytest.raises(FieldError, match=r"^quant.preset: expected one of \['default', 'sensitive'\], got 'fast'$"):
        from_dict(PTQConfig, {"weights": str(tiny_checkpoint), "data": str(tiny_dataset), "quant": {"preset": "fast"}})
    from toolchain.cli import main

    assert main(["ptq", "--weights", str(tiny_checkpoint), "--data", str(tiny_dataset), "--quant.preset", "fast"]) != 0
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--quant.preset fast: expected one of ['default', 'sensitive']" in err


def test_the_planted_outlier_ranks_worst_by_far(ranked):
    assert ranked[0].group == PLANTED
    assert ranked[0].sqnr < ranked[1].sqnr - 10  # dB
    assert [r.sqnr for r in ranked] == sorted(r.sqnr for r in ranked)
    assert all(FIRST_CONV not in r.group for r in ranked)  # kept float before the ranking


def test_sensitive_keeps_the_first_conv_and_the_n_worst_groups(resolved, ranked, tiny_checkpoint):
    assert resolved.preset == "default"  # resolved: a rerun with it places the same, ranking nothing
    assert _skipped(resolved) == {FIRST_CONV, *ranked[0].group, *ranked[1].group}
    assert all(re.fullmatch(o.pattern, o.pattern.replace("\\", "")) for o in resolved.overrides)
    default = load_model(tiny_checkpoint)
    quantize_model(default, QuantConfig())
    groups = [g for g in fusion_groups(default) if set(g) & _skipped(resolved)]
    assert len(groups) == 3 and all(set(g) <= _skipped(resolved) for g in groups)  # whole groups: first conv + 2
    model = load_model(tiny_checkpoint)
    tail = set(quantize_model(load_model(tiny_checkpoint), QuantConfig()).skipped)
    assert set(quantize_model(model, resolved).skipped) == tail | _skipped(resolved)


def test_sensitive_onnx_keeps_tensorrt_rules(resolved, ranked, planted, tmp_path):
    model, batches = planted
    student, _ = calibrated_model(model, resolved, batches)
    report = check_qdq(export_onnx(student, tmp_path / "s.int8.onnx", ExportConfig(imgsz=64), precision="int8"))
    assert report.ok, report.summary()
    assert report.quantized_convs == 57 - 1 - len(ranked[0].group) - len(ranked[1].group) and report.convs == 64


def test_keeping_every_group_is_refused():
    rows = [GroupSQNR(["model.1.conv"], 10.0), GroupSQNR(["model.3.conv"], 20.0)]
    assert _skipped(sensitive_config(preset_base(QuantConfig()), rows, 1)) == {FIRST_CONV, "model.1.conv"}
    with pytest.raises(ToolchainError, match=KEEP_ALL):
        sensitive_config(preset_base(QuantConfig()), rows, 2)


def test_ranking_uses_the_first_batches_holding_enough_images():
    batches = [np.zeros((n, 3, 8, 8), np.float32) for n in (16, 16, 16)]
    assert len(ranking_batches(batches, 32)) == 2 and len(ranking_batches(batches, 33)) == 3
    assert len(ranking_batches(batches[:1], 32)) == 1
