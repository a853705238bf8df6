from __future__ import annotations

from dataclasses import dataclass

from toolchain.config.docstrings import field_help


@dataclass(frozen=True)
class Inner:
    """Inner.

    Attributes:
        rate: A rate, which takes
            two lines to say.
        a, b: Two at once (``a`` and ``b``).

    Not a field: after the section.
    """

    rate: float = 0.5
    a: int = 0
    b: int = 0


@dataclass(frozen=True)
class Flat:
    """Attributes:
    size: Image side.
    """

    size: int = 0


def test_help_lines_come_from_the_docstring():
    said = {
        "rate": "A rate, which takes two lines to say.",
        "a": "Two at once (a and b).",
        "b": "Two at once (a and b).",
    }
    assert field_help(Inner) == said
    assert field_help(Flat) == {"size": "Image side."}


def test_a_class_without_a_docstring_section_has_no_help():
    @dataclass(frozen=True)
    class Bare:
        x: int = 0

    assert field_help(Bare) == {}
