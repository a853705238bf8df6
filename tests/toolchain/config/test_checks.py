from __future__ import annotations

import pytest

from toolchain.config.checks import check
from toolchain.config.field_types import FieldError, ImageSize, MultipleOf, Pattern, Range, Regex, shape


@pytest.mark.parametrize(
    ("marker", "hint", "value", "said"),
    [
        (Range(ge=32), ImageSize, 16, "size: expected an integer >= 32, a multiple of 32, got 16"),
        (MultipleOf(32), ImageSize, 65, "size: expected an integer >= 32, a multiple of 32, got 65"),
        (Regex(), Pattern, "model.(", "size: 'model.(' is not a valid regular expression (missing ), unterminated"),
    ],
)
def test_a_value_that_breaks_its_marker_says_what_is_allowed(marker, hint, value, said):
    with pytest.raises(FieldError) as info:
        check(marker, shape(hint), value, "size")
    assert str(info.value).startswith(said)


@pytest.mark.parametrize(("marker", "value"), [(Range(ge=32), 32), (MultipleOf(32), 64), (Regex(), r"model\.0")])
def test_a_value_within_its_marker_passes(marker, value):
    assert check(marker, shape(ImageSize), value, "size") is None
