from __future__ import annotations

import pytest

from toolchain.config.field_types import FieldError
from toolchain.config.tree import build, defaults, from_dict, leaves, merge, replace, to_dict
from toolchain.jobs.qat import QATJobConfig
from toolchain.quantization.config import QuantConfig


def test_defaults_expand_sections_and_leave_required_fields_out():
    tree = defaults(QATJobConfig)
    assert "weights" not in tree and "data" not in tree["train"]  # required
    assert tree["train"]["epochs"] == 5 and tree["quant"]["input"]["calibrator"] == "histogram_percentile"
    assert tree["quant"]["overrides"] == []


def test_merge_keeps_the_rest_of_a_section_and_replaces_values_and_lists():
    tree = defaults(QuantConfig)
    origins: dict = {}
    merge(QuantConfig, tree, {"input": {"percentile": 99.9}, "overrides": [{"pattern": "a"}]}, origins, "f.yaml")
    assert tree["input"] == {**defaults(QuantConfig)["input"], "percentile": 99.9}
    assert tree["overrides"] == [{"pattern": "a"}]
    assert origins == {"input.percentile": "f.yaml", "overrides": "f.yaml"}


def test_build_names_the_missing_and_the_unknown():
    with pytest.raises(FieldError, match="weights: required, and not given"):
        build(QATJobConfig, {**defaults(QATJobConfig), "train": {"data": __file__}})
    with pytest.raises(FieldError, match=r"train.dta: unknown key; allowed here: \['data'"):
        build(QATJobConfig, {"weights": __file__, "train": {"dta": 1}})


def test_round_trip_and_replace():
    cfg = from_dict(QuantConfig, {"overrides": [{"pattern": "x", "skip": True}], "target": "generic"})
    assert from_dict(QuantConfig, to_dict(cfg)) == cfg
    assert replace(cfg, quantize_head_tail=True).quantize_head_tail and not cfg.quantize_head_tail
    with pytest.raises(FieldError, match="target: expected one of"):
        replace(cfg, target="onnx")


def test_leaves_are_the_dotted_keys():
    keys = [k for k, _, _ in leaves(QuantConfig)]
    assert "input.percentile" in keys and "overrides" in keys and "input" not in keys
