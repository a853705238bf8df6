"""data.yaml read and checked: missing keys, bad names and paths, each one line naming the fix."""

from __future__ import annotations

import pytest

from base.dataset.data_yaml import load_data_yaml
from base.errors import ToolchainError


def test_missing_data_yaml_names_file_and_fix(tmp_path):
    with pytest.raises(ToolchainError, match=r"data\.yaml not found.*make data"):
        load_data_yaml(tmp_path / "data.yaml")


def test_wrong_image_folder_names_key_and_path(tmp_path):
    (tmp_path / "data.yaml").write_text("train: images/train\nval: nowhere\nnames: [a]\n")
    (tmp_path / "images" / "train").mkdir(parents=True)
    with pytest.raises(ToolchainError, match=r"'val' points to .*nowhere"):
        load_data_yaml(tmp_path / "data.yaml")


def test_missing_key_is_named(tmp_path):
    (tmp_path / "data.yaml").write_text("train: a\nval: a\n")
    with pytest.raises(ToolchainError, match="missing key 'names'"):
        load_data_yaml(tmp_path / "data.yaml")


def test_path_key_is_relative_to_working_directory(tmp_path, monkeypatch, write_dataset):
    yaml_path = write_dataset(tmp_path / "ds", {"a": ""})
    yaml_path.write_text("path: ds\ntrain: images/val\nval: images/val\nnames: {0: a, 1: b}\n")
    monkeypatch.chdir(tmp_path)
    spec = load_data_yaml(yaml_path)
    assert spec.root == tmp_path / "ds" and spec.names == ["a", "b"]


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("names: {0: a, '1': b}", r"'names' keys must be integer class ids, got '1' \(str\)"),
        ("names: {0: a, 2: b}", r"keys must be 0\.\.1 without gaps"),
        ("names: [a, [b]]", r"'names' holds \['b'\]"),
        ("names: [a, null]", "'names' holds None"),
        ("names: []", "'names' must be a non-empty list"),
        ("path: 123\nnames: [a]", r"'path' must be a folder path \(a string\), got 123"),
        ("path: [x]\nnames: [a]", "'path' must be a folder path"),
    ],
)
def test_bad_names_and_path_keys_are_one_line(tmp_path, yaml_text, message):
    (tmp_path / "images" / "val").mkdir(parents=True)
    (tmp_path / "data.yaml").write_text(f"train: images/val\nval: images/val\n{yaml_text}\n")
    with pytest.raises(ToolchainError, match=message):
        load_data_yaml(tmp_path / "data.yaml")


@pytest.mark.parametrize(
    ("split_value", "message"),
    [
        ("images/val/a.jpg", r"'val' points to the file .*a\.jpg; expected a folder of images or a \.txt"),
        ("{x: 1}", r"'val' must be a folder or a \.txt list"),
        ("[images/val, 7]", r"'val' must be a folder .* got 7"),
        ('"x\\0y"', r"'val' is not a usable path"),
        ("a" * 300, r"'val' is not a usable path .*File name too long"),
    ],
)
def test_split_must_be_a_folder_or_a_list_file(tmp_path, split_value, message, write_dataset):
    write_dataset(tmp_path, {"a": ""})
    (tmp_path / "data.yaml").write_text(f"train: images/val\nval: {split_value}\nnames: [a]\n")
    with pytest.raises(ToolchainError, match=message):
        load_data_yaml(tmp_path / "data.yaml")
