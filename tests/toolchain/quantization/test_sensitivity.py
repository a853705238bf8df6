from __future__ import annotations

from toolchain.config.files import SCHEMA_VERSION
from toolchain.models.yolo import load_model
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.placement import quantize_model
from toolchain.quantization.sensitivity import GroupSensitivity, fusion_groups, mixed_precision_config


def test_fusion_groups_are_the_readers_of_one_input_quantizer(tiny_checkpoint):
    model = load_model(tiny_checkpoint)
    quantize_model(model, QuantConfig())
    groups = fusion_groups(model)
    assert sum(len(g) for g in groups) == 57
    assert ["model.2.cv2.conv", "model.2.m.0.cv1.conv"] in groups  # a C2f's concat and bottleneck: one group


def test_mixed_precision_config_keeps_the_k_most_sensitive_groups_float():
    rows = [GroupSensitivity(["model.2.cv2.conv", "model.2.m.0.cv1.conv"], 0.1, 0.3),
            GroupSensitivity(["model.4.cv1.conv"], 0.3, 0.1)]  # fmt: skip
    raw = mixed_precision_config(rows, 1, QuantConfig())
    assert raw["version"] == SCHEMA_VERSION
    assert raw["overrides"] == [{"pattern": r"model\.2\.cv2\.conv", "skip": True},
                                {"pattern": r"model\.2\.m\.0\.cv1\.conv", "skip": True}]  # fmt: skip
    assert QuantConfig.from_dict({k: v for k, v in raw.items() if k != "version"}).overrides[0].skip
