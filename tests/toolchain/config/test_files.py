from __future__ import annotations

import json

import pytest
import yaml

from base.errors import UsageError
from toolchain.config.files import SCHEMA_VERSION, read_config_file, read_yaml_mapping, record, write_record
from toolchain.quantization.config import QuantConfig


@pytest.mark.parametrize(
    ("text", "said"),
    [("a: [1\n", "c.yaml:2:1: not valid YAML"), ("- 1\n", "expected a mapping"), ("a: b: c\n", "c.yaml:1:5")],
)
def test_one_line_for_a_file_that_is_not_a_yaml_mapping(tmp_path, text, said):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(UsageError) as info:
        read_yaml_mapping(tmp_path / "c.yaml")
    assert said in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UsageError, match="config file not found"):
        read_yaml_mapping(tmp_path / "none.yaml")
    assert read_yaml_mapping(_empty(tmp_path)) == {}


def _empty(folder):
    (folder / "empty.yaml").write_text("# nothing\n")
    return folder / "empty.yaml"


def test_records_are_read_back_from_yaml_sidecars_and_reports(tmp_path):
    cfg = QuantConfig.from_dict({"target": "generic"})
    path = write_record(tmp_path / "r.yaml", cfg, "ptq")
    assert path.read_text().startswith("# Resolved config of 'toolchain ptq'")
    assert yaml.safe_load(path.read_text()) == record(cfg) and record(cfg)["version"] == SCHEMA_VERSION
    assert read_config_file(path) == cfg.to_dict()
    (tmp_path / "m.onnx.json").write_text(json.dumps({"names": ["a"], "extra": {"config": record(cfg)}}))
    assert read_config_file(tmp_path / "m.onnx.json") == cfg.to_dict()
    (tmp_path / "report.json").write_text(json.dumps({"map50_95": 0.1, "config": record(cfg)}))
    assert read_config_file(tmp_path / "report.json") == cfg.to_dict()
    (tmp_path / "old.yaml").write_text("version: 0\n")
    with pytest.raises(UsageError, match="schema version 0; this toolchain reads version 1"):
        read_config_file(tmp_path / "old.yaml")
