"""A config field's help line: its entry in the class docstring's ``Attributes:`` (or ``Args:``) section,
which is what ``--help`` shows, so the words live once, beside the field.

Example:
    >>> field_help(EvalConfig)["data"]
    'The data.yaml.'
"""

from __future__ import annotations

import functools
import re


@functools.cache
def field_help(cls: type) -> dict[str, str]:
    """Field name to its one-line help, from the ``Attributes:`` (or ``Args:``) section of the docstring."""
    lines = (cls.__doc__ or "").splitlines()
    out: dict[str, str] = {}
    inside, indent, current = False, None, None
    for line in lines:
        stripped = line.strip()
        if stripped in ("Attributes:", "Args:"):
            inside, indent, current = True, None, None
            continue
        if not inside or not stripped:
            continue
        level = len(line) - len(line.lstrip())
        indent = level if indent is None else indent
        match = re.match(r"([\w, ]+):\s*(.*)", stripped)
        if level == indent and match:
            current = [n.strip() for n in match.group(1).split(",")]
            for name in current:
                out[name] = match.group(2)
        elif level > indent and current:
            for name in current:
                out[name] += " " + stripped
        elif level < indent:
            inside = False
    return {k: v.replace("``", "") for k, v in out.items()}
