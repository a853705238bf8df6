"""Checks of a converted value against the markers of its type: ``Range``, ``MultipleOf`` and
``Regex`` here, the markers that ask about this machine (files, GPUs, memory) in ``machine``.

Example:
    >>> check(Range(gt=0), shape(PositiveFloat), -1.0, "lr0")  # FieldError: lr0: expected a number > 0, got -1.0
"""

from __future__ import annotations

import re
from typing import Any

from toolchain.config.field_types import FieldError, MultipleOf, Range, Regex, Shape, describe
from toolchain.config.machine import check_on_machine


def check(c: object, s: Shape, value: Any, key: str) -> None:
    """Check ``value`` (already of the type ``s`` asks for) against the marker ``c``.

    Raises:
        FieldError: The value breaks the marker; the message says what is allowed and what was given.
    """
    if isinstance(c, Range) and not c.holds(value):
        raise FieldError(key, f"expected {describe(s)}, got {value!r}")
    if isinstance(c, MultipleOf) and value % c.n:
        raise FieldError(key, f"expected {describe(s)}, got {value!r}")
    if isinstance(c, Regex):
        try:
            re.compile(value)
        except re.error as exc:
            raise FieldError(key, f"{value!r} is not a valid regular expression ({exc})") from exc
    check_on_machine(c, value, key)
