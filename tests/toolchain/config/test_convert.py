from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

import pytest

from toolchain.config.convert import build, check_fields, convert, number_from_text
from toolchain.config.field_types import Decay, ExistingPath, FieldError, ImageSize, Pattern, PositiveInt, Range


@dataclass(frozen=True)
class Inner:
    rate: Decay = 0.5
    a: int = 0
    b: int = 0

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class Outer:
    size: ImageSize | None = None
    mode: Literal["fast", "exact"] = "fast"
    stages: dict[PositiveInt, Pattern] = field(default_factory=dict)
    items: tuple[Inner, ...] = ()
    path: ExistingPath | None = None
    inner: Inner = Inner()

    def __post_init__(self) -> None:
        check_fields(self)


@pytest.mark.parametrize(
    ("hint", "value", "said"),
    [
        (ImageSize, 100, "expected an integer >= 32, a multiple of 32, got 100"),
        (ImageSize, 64.0, "expected an integer"),
        (PositiveInt, True, "expected an integer >= 1, got True"),
        (Decay, 1.0, "expected a number in [0, 1), got 1.0"),
        (Decay, "0.5", "expected a number in [0, 1), got '0.5'"),
        (Literal["a", "b"], "c", "expected one of ['a', 'b'], got 'c'"),
        (bool, "yes", "expected true or false"),
        (Pattern, "a(", "is not a valid regular expression"),
        (ExistingPath, "/no/such/file", "file not found: /no/such/file"),
        (dict[PositiveInt, Pattern], {0: "a"}, "k[0]: expected an integer >= 1, got 0"),
        (dict[PositiveInt, Pattern], {"x": "a"}, "k['x']: expected an integer >= 1, got 'x'"),
        (tuple[Inner, ...], {"rate": 0.1}, "expected a list"),
        (tuple[Inner, ...], [{"rate": 2}], "k[0].rate: expected a number in [0, 1)"),
        (Inner, {"rat": 0.1}, "k.rat: unknown key; allowed here: ['rate', 'a', 'b']"),
        (int, None, "expected an integer, got null"),
    ],
)
def test_bad_values_name_the_key_what_was_given_and_what_is_allowed(hint, value, said):
    with pytest.raises(FieldError) as info:
        convert(hint, value, "k")
    assert said in str(info.value) and str(info.value).startswith("k")


def test_good_values_are_converted():
    assert convert(float, 1, "k") == 1.0 and isinstance(convert(float, 1, "k"), float)
    assert convert(str, 0, "device") == "0"  # YAML's 'device: 0'
    assert convert(tuple[Inner, ...], [{"rate": 0.1}], "k") == (Inner(rate=0.1),)
    assert convert(dict[PositiveInt, Pattern], {"2": "a"}, "k") == {2: "a"}  # JSON's string keys
    assert convert(ImageSize | None, None, "k") is None


@pytest.mark.parametrize(
    ("hint", "text", "value"),
    [(int, "3", 3), (float, "1e-3", 0.001), (PositiveInt | None, "null", None), (Literal[1, 2], "2", 2)],
)
def test_numbers_from_text(hint, text, value):
    assert number_from_text(hint, text, "k") == value


def test_a_number_from_text_is_checked():
    with pytest.raises(FieldError, match=r"^k: expected an integer >= 1, got 0$"):
        number_from_text(PositiveInt, "0", "k")
    with pytest.raises(FieldError, match=r"^k: expected a number in \(0, 1\], got 'x'$"):
        number_from_text(Annotated[float, Range(gt=0, le=1)], "x", "k")


def test_a_section_is_built_with_its_dotted_keys():
    assert build(Outer, {"inner": {"a": 2}}).inner == Inner(a=2)
    with pytest.raises(FieldError, match=r"^quant\.inner\.rate: expected a number in \[0, 1\), got 7.0$"):
        build(Outer, {"inner": {"rate": 7}}, "quant")
    with pytest.raises(FieldError, match=r"^quant\.nope: unknown key"):
        build(Outer, {"nope": 1}, "quant")


def test_python_construction_is_checked_too():
    with pytest.raises(FieldError, match="rate: expected a number in"):
        Inner(rate=3)
    with pytest.raises(FieldError, match="mode: expected one of"):
        Outer(mode="slow")
