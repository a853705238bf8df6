"""OpenVINO backend: the CPU runtime. It runs a QDQ ONNX in INT8 as is (Q/DQ on conv inputs and weights)."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np

from deploy.errors import ToolchainError
from deploy.runtime.base import Runner

logger = logging.getLogger(__name__)
PRECISIONS = ("f32", "bf16", "f16")


class OpenVINORunner(Runner):
    """Run an ONNX model with OpenVINO on the CPU.

    Args:
        path: The ``.onnx`` (or OpenVINO ``.xml``) file.
        precision: Inference precision hint for float layers: ``f32``, ``bf16`` or ``f16``. OpenVINO
            picks bf16 by itself on CPUs that have it, so the hint is always set.
        threads: Inference threads (``None``: OpenVINO's default).
        device: OpenVINO device name.

    Example:
        >>> with OpenVINORunner("model.int8.onnx", precision="f32", threads=2) as runner:
        ...     (pred,) = runner.infer(batch)
    """

    name = "openvino"

    def __init__(self, path: str | Path, precision: str = "f32", threads: int | None = None, device: str = "CPU"):
        try:
            import openvino as ov
        except ImportError as exc:
            raise ToolchainError(
                "OpenVINO is not installed: pip install openvino (or use --backend onnxruntime)"
            ) from exc
        path = Path(path)
        if not path.is_file():
            raise ToolchainError(f"{path}: model not found")
        if precision not in PRECISIONS:
            raise ToolchainError(f"openvino: precision must be one of {list(PRECISIONS)}, got '{precision}'")
        config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            core = ov.Core()
            self._compiled = core.compile_model(core.read_model(str(path)), device, config)
        except RuntimeError as exc:
            raise ToolchainError(f"{path}: OpenVINO cannot compile it ({exc})") from exc
        self._request = self._compiled.create_infer_request()
        self._shape = tuple(self._compiled.inputs[0].get_partial_shape())
        self.name = f"openvino-{precision}"
        self.path = path

    @property
    def input_shape(self) -> tuple[int | None, int, int, int]:
        return tuple(d.get_length() if d.is_static else None for d in self._shape)  # type: ignore[return-value]

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        self._request.infer({0: batch})
        return [self._request.get_output_tensor(i).data.copy() for i in range(len(self._compiled.outputs))]

    def conv_precisions(self) -> Counter:
        """How many convolutions run in each precision (``u8``, ``i8``, ``f32``, ``bf16``...)."""
        counts: Counter = Counter()
        for op in self._compiled.get_runtime_model().get_ops():
            info = op.get_rt_info()
            if "layerType" in info and info["layerType"].astype(str) == "Convolution":
                counts[info["runtimePrecision"].astype(str)] += 1
        return counts

    def close(self) -> None:
        self._request = None
        self._compiled = None
