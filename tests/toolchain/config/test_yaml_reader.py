"""One YAML reader for both halves: data.yaml (an input file, exit 1) and configs (exit 2) read YAML
through ``base.fileio.read_yaml_mapping`` and say the same line."""

from __future__ import annotations

import pytest

from base.dataset import load_data_yaml
from base.errors import ToolchainError, UsageError
from toolchain.config.files import read_yaml_mapping as read_config_yaml


def test_both_halves_read_yaml_through_it(tmp_path):
    (tmp_path / "data.yaml").write_text("train: [a\nval: b\n")
    with pytest.raises(ToolchainError) as data_error:  # an input file: exit 1
        load_data_yaml(tmp_path / "data.yaml")
    with pytest.raises(UsageError) as config_error:  # a config: exit 2
        read_config_yaml(tmp_path / "data.yaml")
    assert type(data_error.value) is ToolchainError and data_error.value.exit_code == 1
    assert str(data_error.value) == str(config_error.value) and config_error.value.exit_code == 2
