"""Helpers shared by the subcommands."""

from __future__ import annotations

import argparse

from deploy.errors import ToolchainError


def yaml_mapping(text: str) -> dict:
    """argparse type: a YAML mapping given inline, e.g. ``'{mosaic: 0.5}'``."""
    import yaml

    value = yaml.safe_load(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a YAML mapping like '{{mosaic: 0.5}}', got {text!r}")
    return value


def train_imgsz(model) -> int:
    """The image size a checkpoint was trained at (640 when it does not say)."""
    return int(getattr(model, "args", {}).get("imgsz", 640))


def typed(cls, raw: dict, key: str):
    """A config dataclass from a YAML mapping, naming unknown keys."""
    allowed = list(cls.__dataclass_fields__)
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ToolchainError(f"{key}: unknown key(s) {unknown}; allowed: {allowed}")
    return cls(**raw)
