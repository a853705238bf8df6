"""The start every job shares: outputs that overwrite no input, the model loaded at its one image size,
its classes checked against the data, and for the jobs that calibrate, FP32 weights (not a ptq or qat
checkpoint, whose quantizers they would place again over).

Example:
    >>> model, imgsz = prologue("best.pt", None, "data.yaml", {"--out": "runs/ptq/best.int8.onnx"})
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from torch import nn

from base.errors import ToolchainError, UsageError
from base.fileio import check_distinct_paths
from toolchain.models.names import check_classes, class_names
from toolchain.models.yolo import load_model_at
from toolchain.quantization.modules import QuantConv2d

Outputs = Mapping[str, str | Path | None] | Iterable[tuple[str, str | Path | None]]


def prologue(
    weights: str | Path,
    imgsz: int | None = None,
    data: str | Path | None = None,
    outputs: Outputs | None = None,
    run: Path | None = None,
    fp32_only: bool = False,
) -> tuple[nn.Module, int]:
    """Check the job's outputs, then load its model and check the model's classes.

    Args:
        weights: The ``.pt`` the job starts from (``--weights``).
        imgsz: The size asked for (``None``: the size the weights were trained at).
        data: The data.yaml whose classes the model must have (``--data``; ``None``: not checked).
        outputs: What names each file the job writes to its path: none may be ``--weights``, ``--data``
            or another output (``base.fileio.check_distinct_paths``).
        run: A run folder the job writes over: the weights must not be inside it.
        fp32_only: The job calibrates (ptq, sensitivity): refuse a quantized checkpoint.

    Returns:
        The model and the one image size everything after it uses.

    Raises:
        UsageError: An output is an input or another output, or the weights are inside ``run``.
        ToolchainError: The weights do not load, their classes are not the data's, or with ``fp32_only``
            they are quantized.
    """
    if run is not None and Path(weights).resolve().is_relative_to(run.resolve()):  # its files are this run's outputs
        raise UsageError(f"--weights {weights}: inside the run folder {run}, which this run writes over; "
                         "copy it out, or choose another --name")  # fmt: skip
    if outputs is not None:
        check_distinct_paths(outputs, {"--weights": weights, "--data": data})
    model, size = load_model_at(weights, imgsz)
    convs = sum(isinstance(m, QuantConv2d) for m in model.modules())
    if fp32_only and convs:
        raise ToolchainError(f"--weights {weights}: a quantized checkpoint ({convs} quantized convs and their ranges, "
                             "from ptq or qat), but this job calibrates FP32 weights; pass the FP32 .pt it came from, "
                             f"or train it further with 'toolchain qat --weights {weights}'")  # fmt: skip
    if data is not None:
        check_classes(class_names(model), data, weights)
    return model, size
