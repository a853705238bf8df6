from __future__ import annotations

import logging

import pytest

from deploy.errors import ToolchainError
from toolchain.quantization.config import QuantConfig

REPO_CONFIG = __import__("pathlib").Path(__file__).resolve().parents[3] / "configs" / "quant.yaml"


def test_repository_config_loads_with_the_documented_defaults():
    cfg = QuantConfig.from_yaml(REPO_CONFIG)
    assert cfg.weight.axis == 0 and cfg.weight.calibrator == "max" and cfg.weight.symmetric
    assert cfg.input.axis is None and cfg.input.calibrator == "histogram_percentile"
    assert cfg.input.percentile == 99.99 and cfg.target == "tensorrt"


def test_misspelt_key_names_the_key_and_the_allowed_ones(tmp_path):
    path = tmp_path / "q.yaml"
    path.write_text("input:\n  calibrater: max\n")
    with pytest.raises(ToolchainError, match=r"unknown key\(s\) \['calibrater'\]; allowed: \[.*'calibrator'"):
        QuantConfig.from_yaml(path)
    path.write_text("targit: tensorrt\n")
    with pytest.raises(ToolchainError, match=r"'targit'.*allowed: .*'target'"):
        QuantConfig.from_yaml(path)


def test_asymmetric_activations_for_tensorrt_are_refused():
    with pytest.raises(ToolchainError, match="TensorRT takes only symmetric int8"):
        QuantConfig.from_dict({"input": {"symmetric": False}})
    with pytest.raises(ToolchainError, match="TensorRT takes only symmetric int8"):
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
        ({"input": {"calibrator": "kl"}}, "unknown calibrator 'kl'"),
        ({"target": "generic", "input": {"num_bits": 3}}, "num_bits must be 4..8"),
        ({"weight": {"calibrator": "entropy"}}, "per-tensor only"),
        ({"input": {"num_bits": 6}}, "TensorRT takes int8 only"),
        ({"overrides": [{"pattern": "("}]}, "not a valid regex"),
        ({"fold_bn": "never"}, "fold_bn must be one of"),
    ],
)
def test_bad_values(raw, match):
    with pytest.raises(ToolchainError, match=match):
        QuantConfig.from_dict(raw)


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
