"""The start every job shares: outputs that overwrite no input, the model loaded at its one image size,
its classes checked against the data.

Example:
    >>> model, imgsz = prologue("best.pt", None, "data.yaml", {"--out": "runs/ptq/best.int8.onnx"})
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from torch import nn

from base.errors import UsageError
from base.fileio import check_distinct_paths
from toolchain.models.names import check_classes, class_names
from toolchain.models.yolo import load_model_at

Outputs = Mapping[str, str | Path | None] | Iterable[tuple[str, str | Path | None]]


def prologue(
    weights: str | Path,
    imgsz: int | None = None,
    data: str | Path | None = None,
    outputs: Outputs | None = None,
    run: Path | None = None,
) -> tuple[nn.Module, int]:
    """Check the job's outputs, then load its model and check the model's classes.

    Args:
        weights: The ``.pt`` the job starts from (``--weights``).
        imgsz: The size asked for (``None``: the size the weights were trained at).
        data: The data.yaml whose classes the model must have (``--data``; ``None``: not checked).
        outputs: What names each file the job writes to its path: none may be ``--weights``, ``--data``
            or another output (``base.fileio.check_distinct_paths``).
        run: A run folder the job writes over: the weights must not be inside it.

    Returns:
        The model and the one image size everything after it uses.

    Raises:
        UsageError: An output is an input or another output, or the weights are inside ``run``.
        ToolchainError: The weights do not load, or their classes are not the data's.
    """
    if run is not None and Path(weights).resolve().is_relative_to(run.resolve()):  # its files are this run's outputs
        raise UsageError(f"--weights {weights}: inside the run folder {run}, which this run writes over; "
                         "copy it out, or choose another --name")  # fmt: skip
    if outputs is not None:
        check_distinct_paths(outputs, {"--weights": weights, "--data": data})
    model, size = load_model_at(weights, imgsz)
    if data is not None:
        check_classes(class_names(model), data, weights)
    return model, size
