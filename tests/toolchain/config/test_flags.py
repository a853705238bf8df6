from __future__ import annotations

import argparse
from typing import Literal

import pytest

from base.errors import UsageError
from toolchain.config.field_types import FieldError, ImageSize, Pattern, PositiveInt
from toolchain.config.flags import Command, add_flags, explain, from_text, merged_tree, resolve
from toolchain.quantization.config import QuantConfig


def _command(**kwargs) -> Command:
    return Command("q", QuantConfig, lambda cfg: None, "quant", **kwargs)


def _parse(command: Command, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    add_flags(parser, command)
    return parser.parse_args(list(argv))


def test_flags_are_the_dotted_keys_and_the_short_ones_first():
    flags = _command(aliases={"--percentile": "input.percentile"}).flags()
    assert flags["input.percentile"] == ["--percentile", "--input.percentile"]
    assert flags["quantize_head_tail"] == ["--quantize-head-tail"]
    assert "input" not in flags and "overrides" in flags
    assert "target" not in _command(fixed={"target": "set by the command"}).flags()


def test_values_sections_and_files_resolve_in_order(tmp_path):
    (tmp_path / "c.yaml").write_text("input: {percentile: 99.0, num_bins: 512}\n")
    command = _command(aliases={"--input": "input", "--bins": "input.num_bins"})
    args = _parse(command, "--config", str(tmp_path / "c.yaml"), "--input", "{num_bins: 1024}", "--bins", "256")
    tree, origins = merged_tree(command, args)
    assert tree["input"]["percentile"] == 99.0 and tree["input"]["num_bins"] == 256
    assert origins["input.percentile"] == str(tmp_path / "c.yaml") and origins["input.num_bins"] == "--bins 256"
    assert resolve(command, args).input.calibrator == "histogram_percentile"


def test_a_bad_value_names_its_flag_and_what_it_was_given():
    with pytest.raises(UsageError, match=r"^--input.num-bins 0: expected an integer >= 1, got 0$"):
        resolve(_command(), _parse(_command(), "--input.num-bins", "0"))
    with pytest.raises(UsageError, match=r"^--no-input.symmetric: TensorRT takes only symmetric int8"):
        resolve(_command(), _parse(_command(), "--no-input.symmetric"))


def test_explain_names_the_source_of_a_section_error():
    origins = {"input.percentile": "c.yaml"}
    names = {"input.percentile": ["--input.percentile"]}
    assert explain(FieldError("input", "bad"), origins, names) == "c.yaml: input: bad"
    assert explain(FieldError("weights", "required, and not given"), {}, {"weights": ["--weights"]}) == (
        "--weights is required (or 'weights:' in the --config file)"
    )


@pytest.mark.parametrize(
    ("hint", "text", "value"),
    [(int, "3", 3), (float, "1e-3", 0.001), (ImageSize | None, "none", None), (bool, "off", False),
     (dict[PositiveInt, Pattern], "{1: 'a.b'}", {1: "a.b"}), (tuple[str, ...], "[val, test]", ("val", "test")),
     (Literal["fast", "exact"], "exact", "exact"), (Literal[1, 2], "2", 2)],
)  # fmt: skip
def test_command_line_text(hint, text, value):
    assert from_text(hint, text, "k") == value


@pytest.mark.parametrize(
    ("hint", "text", "said"),
    [(bool, "maybe", "k: expected true or false, got 'maybe'"), (int, "3.5", "k: expected an integer, got '3.5'"),
     (PositiveInt, "0", "k: expected an integer >= 1, got 0")],
)  # fmt: skip
def test_bad_command_line_text_is_one_line(hint, text, said):
    with pytest.raises(FieldError) as info:
        from_text(hint, text, "k")
    assert str(info.value) == said
