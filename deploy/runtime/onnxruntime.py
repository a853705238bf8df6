"""ONNX Runtime backend: the reference for Q/DQ arithmetic (it computes Q/DQ in float, like fake-quant)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from base.errors import ToolchainError
from deploy.runtime.base import Runner, check_qdq_arithmetic

logger = logging.getLogger(__name__)


class OnnxRuntimeRunner(Runner):
    """Run an ONNX model with ONNX Runtime.

    Args:
        path: The ``.onnx`` file.
        providers: Execution providers in order of preference (default: CPU).
        threads: Intra-op threads (``None``: ONNX Runtime's default).
        spinning: Let intra-op threads spin after a run (ONNX Runtime's default, lowest back-to-back
            latency). ``False`` puts them to sleep at once, so they take no CPU from whatever runs next
            (another model in a benchmark, the pipeline's other stages).
        allow_invalid_qdq: Run a QDQ ONNX whose scales are not finite and positive (refused by default).

    Example:
        >>> with OnnxRuntimeRunner("model.onnx", threads=2) as runner:
        ...     (pred,) = runner.infer(batch)
    """

    name = "onnxruntime"

    def __init__(
        self, path: str | Path, providers: list[str] | None = None, threads: int | None = None, spinning: bool = True,
        allow_invalid_qdq: bool = False,
    ) -> None:  # fmt: skip
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise ToolchainError(f"{path}: ONNX model not found; export one with 'make export' or check the path")
        trt_provider = "TensorrtExecutionProvider" in (providers or [])
        check_qdq_arithmetic(path, tensorrt=trt_provider, allow_invalid=allow_invalid_qdq)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # ONNX Runtime raises its own Fail/InvalidGraph types
            raise ToolchainError(f"{path}: ONNX Runtime cannot load it ({exc})") from exc
        wanted = (providers or ["CPUExecutionProvider"])[0]
        if wanted not in self._session.get_providers():
            raise ToolchainError(
                f"{path}: ONNX Runtime's {wanted} is not available here (installed: {ort.get_available_providers()}); "
                "install onnxruntime-gpu (pip install -e '.[gpu]') or use --backend openvino / onnxruntime"
            )
        self.name = "onnxruntime" if wanted == "CPUExecutionProvider" else f"onnxruntime-{wanted[:-17].lower()}"
        self._input = self._session.get_inputs()[0]
        self._outputs = [o.name for o in self._session.get_outputs()]
        self.path = path

    @property
    def input_shape(self) -> tuple[int | None, int, int, int]:
        return tuple(d if isinstance(d, int) else None for d in self._input.shape)  # type: ignore[return-value]

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        return self._session.run(self._outputs, {self._input.name: batch})

    def close(self) -> None:
        self._session = None
