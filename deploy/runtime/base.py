"""The one interface every inference backend implements.

``deploy/infer.py``, the evaluator and the benchmarks talk only to ``Runner``; each backend owns
its resources and frees them in ``close()`` (also on ``with`` exit).
"""

from __future__ import annotations

import abc
from pathlib import Path

import numpy as np

from base.metadata import ModelMetadata, sidecar_path
from deploy.postprocess import END_TO_END_OUTPUTS
from deploy.qdq.rules import check_runnable


class Runner(abc.ABC):
    """A loaded model that maps an NCHW float32 batch to its output arrays.

    Subclasses set ``name`` and implement ``input_shape``, ``infer`` and ``close``.
    """

    name: str = "runner"

    @property
    @abc.abstractmethod
    def input_shape(self) -> tuple[int | None, int, int, int]:
        """``(batch, channels, height, width)``; batch is ``None`` when dynamic."""

    @abc.abstractmethod
    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run one batch and return the model outputs in their declared order."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the model and any device or host buffers. Safe to call twice."""

    @property
    def max_batch(self) -> int | None:
        """Largest batch the model takes (``None``: any)."""
        return self.input_shape[0]

    @property
    def output_names(self) -> list[str]:
        """The model's output names in order (empty where the backend does not say)."""
        return []

    @property
    def end_to_end(self) -> bool:
        """Whether the model decodes and runs NMS itself (``deploy/end_to_end.py``): it takes uint8
        ``[B, H, W, 3]`` BGR (``input_shape`` is then in that order) and returns ``END_TO_END_OUTPUTS``,
        so callers skip host normalisation, decode and NMS. Told by the output names, or else by the
        sidecar beside ``self.path``."""
        if self.output_names:
            return set(END_TO_END_OUTPUTS) <= set(self.output_names)
        path = getattr(self, "path", None)
        if path is None or not sidecar_path(path).is_file():
            return False
        return isinstance(ModelMetadata.load(path).extra.get("end_to_end"), dict)

    @property
    def image_size(self) -> tuple[int | None, int | None]:
        """Input ``(height, width)``, ``None`` where dynamic, in either layout."""
        shape = self.input_shape
        return (shape[1], shape[2]) if self.end_to_end else (shape[2], shape[3])

    def host_buffer(self, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """A host array for input batches, kept and refilled by the caller: plain numpy here; a GPU runner
        may return page-locked memory it copies from faster."""
        return np.empty(shape, dtype)

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_qdq_arithmetic(path: str | Path, tensorrt: bool = False, allow_invalid: bool = False) -> None:
    """Refuse, before a runtime loads it, a QDQ ONNX whose scales are not finite and positive (or, for
    TensorRT, whose zero points are not 0): ``deploy.qdq.rules.check_runnable``. A float ONNX, a file
    ONNX cannot parse (the runtime says why) and ``allow_invalid`` pass."""
    if allow_invalid:
        return
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception:  # not ONNX, or truncated: the runtime's own error names it
        return
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        check_runnable(model, path, tensorrt)
