"""A detection model's class names, and the check that they are a dataset's.

Example:
    >>> check_classes(class_names(model), "data.yaml", "best.pt")
"""

from __future__ import annotations

from pathlib import Path

import torch

from base.dataset import load_data_yaml
from base.errors import ToolchainError


def class_names(model: torch.nn.Module) -> list[str]:
    """The model's class names, index = class id."""
    names = model.names
    return [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)


def check_classes(names: list[str], data: str | Path, model: str | Path) -> None:
    """Refuse a model whose classes are not the data's (count and names, in order): its mAP would be
    near 0 under wrong names, with exit 0.

    Raises:
        ToolchainError: Naming both files, both class lists and the fix.
    """
    spec = load_data_yaml(data)
    if list(names) != spec.names:
        raise ToolchainError(
            f"{model}: the model has {len(names)} classes {list(names)}, but {data} has {spec.nc} {spec.names}; "
            "use the data the model was trained on, or train a baseline on this data first"
        )
