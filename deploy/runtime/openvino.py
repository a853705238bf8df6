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


def separate_concat_from_fake_quantize(model) -> int:
    """Put a no-op ``Maximum(x, x)`` between each Concat and the FakeQuantize that reads it.

    OpenVINO's CPU plugin (seen on 2024.6, 2025.4 and 2026.4) computes a wrong INT8 convolution for
    ``Concat -> FakeQuantize -> Convolution``: about 20% relative error on a two-input graph that ONNX
    Runtime and numpy agree on (tests/deploy/runtime/test_openvino.py), while the same graph without
    the Concat, or with any op between Concat and FakeQuantize, is exact. YOLOv8 has that pattern in
    every C2f, SPPF and neck concat. The no-op keeps the convolution in u8. Returns how many were patched.
    """
    import openvino.opset13 as ops

    patched = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != "FakeQuantize":
            continue
        source = op.input(0).get_source_output()
        if source.get_node().get_type_name() == "Concat":
            op.input(0).replace_source_output(ops.maximum(source, source).output(0))
            patched += 1
    return patched


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
            model = core.read_model(str(path))
            self.patched = separate_concat_from_fake_quantize(model)
            self._compiled = core.compile_model(model, device, config)
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
