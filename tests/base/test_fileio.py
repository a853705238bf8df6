"""base/fileio.py: the one YAML reader of both halves (its error class a parameter), and outputs that
would overwrite an input refused before any work."""

from __future__ import annotations

import pytest

from base.errors import ToolchainError, UsageError
from base.fileio import check_distinct_paths, parse_yaml, read_yaml_mapping


@pytest.mark.parametrize("error", [ToolchainError, UsageError])
@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"a: [1\n", "c.yaml:2:1: not valid YAML"),
        (b"- 1\n", "c.yaml: expected a mapping of keys to values at the top, got list"),
        (b"a: \xff\n", "c.yaml: things is not UTF-8 text (byte 3)"),
        (b"[" * 5000, "c.yaml: not valid YAML"),
    ],
    ids=["syntax", "list", "latin-1", "deep"],
)
def test_one_line_with_the_error_class_asked_for(tmp_path, error, content, said):
    (tmp_path / "c.yaml").write_bytes(content)
    with pytest.raises(error) as info:
        read_yaml_mapping(tmp_path / "c.yaml", "things", error)
    assert type(info.value) is error and said in str(info.value) and "\n" not in str(info.value)


def test_missing_file_empty_file_and_hint(tmp_path):
    with pytest.raises(ToolchainError, match=r"none\.yaml: things not found; make it first"):
        read_yaml_mapping(tmp_path / "none.yaml", "things", ToolchainError, "; make it first")
    (tmp_path / "e.yaml").write_text("# nothing\n")
    assert read_yaml_mapping(tmp_path / "e.yaml") == {}
    assert parse_yaml("{a: 1}", "--flag") == {"a": 1}


def test_an_output_over_an_input_or_another_output_is_refused(tmp_path):
    weights = tmp_path / "m.int8.pt"
    weights.write_bytes(b"x")
    with pytest.raises(UsageError, match=r"the checkpoint .*m\.int8\.pt: the same file as the input --weights"):
        check_distinct_paths({"--out": tmp_path / "m.int8.onnx", "the checkpoint": weights}, {"--weights": weights})
    with pytest.raises(UsageError, match=r"--json .*a\.json: the same file as --out"):
        check_distinct_paths([("--out", tmp_path / "a.json"), ("--json", tmp_path / "x" / ".." / "a.json")], {})
    check_distinct_paths({"--out": tmp_path / "b.onnx", "fp16": None}, {"--weights": weights, "--data": None})
