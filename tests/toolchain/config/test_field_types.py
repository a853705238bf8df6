from __future__ import annotations

from typing import Annotated, Literal

import pytest

from toolchain.config.field_types import (
    Decay,
    ExistingPath,
    FieldError,
    ImageSize,
    Pattern,
    PositiveInt,
    Range,
    Writable,
    describe,
    shape,
)


@pytest.mark.parametrize(
    ("hint", "words"),
    [
        (ImageSize, "an integer >= 32, a multiple of 32"),
        (Decay, "a number in [0, 1)"),
        (Annotated[float, Range(gt=0, le=100)], "a number in (0, 100]"),
        (Literal["a", "b"], "one of ['a', 'b']"),
        (ImageSize | None, "or null"),
        (Pattern, "a regular expression"),
        (ExistingPath, "the path of an existing file"),
        (Annotated[str, Writable((".onnx",))], "a path ending in .onnx in a writable folder"),
        (dict[PositiveInt, Pattern], "a mapping"),
    ],
)
def test_what_a_type_accepts_in_words(hint, words):
    assert words in describe(shape(hint))


def test_a_type_taken_apart():
    s = shape(Annotated[PositiveInt | None, Range(le=9)])
    assert (s.base, s.optional, s.checks) == (int, True, (Range(le=9), Range(ge=1)))


def test_an_error_seen_from_its_section():
    assert str(FieldError("rate", "bad").within("quant.input")) == "quant.input.rate: bad"
    assert str(FieldError("[0].rate", "bad").within("overrides")) == "overrides[0].rate: bad"
