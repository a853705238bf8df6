from __future__ import annotations

import logging
from pathlib import Path

import pytest

from base.errors import ToolchainError
from toolchain.quantization.config import QuantConfig

REPO_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "quant.yaml"


def test_repository_config_is_the_documented_defaults():
    cfg = QuantConfig.from_yaml(REPO_CONFIG)
    assert cfg == QuantConfig()  # configs/*.yaml show only what differs, and quant.yaml changes nothing
    assert cfg.weight.axis == 0 and cfg.weight.calibrator == "max" and cfg.weight.symmetric
    assert cfg.input.axis is None and cfg.input.calibrator == "histogram_percentile"
    assert cfg.input.percentile == 99.99 and cfg.target == "tensorrt"


def test_a_partial_section_keeps_the_defaults_of_its_field():
    cfg = QuantConfig.from_dict({"input": {"percentile": 99.9}, "weight": {"num_bits": 8}})
    assert cfg.input.calibrator == "histogram_percentile" and cfg.input.percentile == 99.9
    assert cfg.weight.axis == 0 and cfg.weight.calibrator == "max"


def test_misspelt_key_names_the_file_the_key_and_the_allowed_ones(tmp_path):
    path = tmp_path / "q.yaml"
    path.write_text("input:\n  calibrater: max\n")
    with pytest.raises(ToolchainError, match=r"q.yaml: input.calibrater: unknown key; allowed here: \[.*'calibrator'"):
        QuantConfig.from_yaml(path)
    path.write_text("targit: tensorrt\n")
    with pytest.raises(ToolchainError, match=r"targit: unknown key; allowed here: .*'target'"):
        QuantConfig.from_yaml(path)


def test_asymmetric_activations_for_tensorrt_are_refused():
    with pytest.raises(ToolchainError, match="input.symmetric: TensorRT takes only symmetric int8"):
        QuantConfig.from_dict({"input": {"symmetric": False}})
    with pytest.raises(ToolchainError, match=r"overrides\[0\].input.symmetric: TensorRT takes only symmetric int8"):
        QuantConfig.from_dict({"overrides": [{"pattern": "model.0.conv", "input": {"symmetric": False}}]})
    cfg = QuantConfig.from_dict({"target": "generic", "input": {"symmetric": False, "calibrator": "max"}})
    assert not cfg.input.symmetric


def test_override_lookup_last_match_wins():
    cfg = QuantConfig.from_dict(
        {
            "overrides": [
                {"pattern": r"model\.22\..*", "skip": True},
                {"pattern": r"model\.22\.cv2\.0\.0\.conv", "input": {"calibrator": "max"}},
            ]
        }
    )
    assert cfg.for_layer("model.22.cv3.1.1.conv").skip
    layer = cfg.for_layer("model.22.cv2.0.0.conv")
    assert layer.skip and layer.input == {"calibrator": "max"}
    assert not cfg.for_layer("model.0.conv").skip


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"input": {"calibrator": "kl"}}, r"input.calibrator: expected one of \['max'.*got 'kl'"),
        ({"input": {"percentile": "high"}}, r"input.percentile: expected a number in \(0, 100\], got 'high'"),
        ({"target": "generic", "input": {"num_bits": 3}}, r"input.num_bits: expected an integer in \[4, 8\], got 3"),
        ({"weight": {"calibrator": "entropy"}}, "weight.calibrator: 'entropy' is per-tensor only"),
        ({"input": {"num_bits": 6}}, "input.num_bits: 6 bits, but TensorRT takes int8 only"),
        ({"overrides": [{"pattern": "("}]}, r"overrides\[0\].pattern: '\(' is not a valid regular expression"),
        ({"overrides": [{"skip": True}]}, r"overrides\[0\].pattern: required"),
        ({"overrides": {"pattern": "x"}}, "overrides: expected a list"),
        ({"overrides": [{"pattern": "x", "input": {"calibrater": "max"}}]}, r"overrides\[0\].input.calibrater: unknown"),
        ({"fold_bn": "before_qat"}, "fold_bn: unknown key"),  # BatchNorm is folded at export, always
    ],
)
def test_bad_values(raw, match):
    with pytest.raises(ToolchainError, match=match):
        QuantConfig.from_dict(raw)


def test_exportable_needs_8_bits():
    QuantConfig().check_exportable()
    cfg = QuantConfig.from_dict({"target": "generic", "overrides": [{"pattern": "x", "weight": {"num_bits": 4}}]})
    with pytest.raises(ToolchainError, match=r"overrides\[0\].weight.num_bits: 4 bits, but ONNX Q/DQ export needs 8"):
        cfg.check_exportable()


def test_pattern_matching_nothing_warns(caplog, tiny_checkpoint):
    from toolchain.models.yolo import load_model
    from toolchain.quantization.placement import quantize_model

    cfg = QuantConfig.from_dict({"overrides": [{"pattern": r"model\.99\.conv", "skip": True}]})
    with caplog.at_level(logging.WARNING):
        quantize_model(load_model(tiny_checkpoint), cfg)
    assert "matches no conv layer" in caplog.text


def test_config_that_quantizes_nothing_warns(caplog, tiny_checkpoint):
    from toolchain.models.yolo import load_model
    from toolchain.quantization.placement import quantize_model

    cfg = QuantConfig.from_dict({"overrides": [{"pattern": ".*", "skip": True}]})
    with caplog.at_level(logging.WARNING):
        report = quantize_model(load_model(tiny_checkpoint), cfg)
    assert not report.quantized and "not quantized" in caplog.text
