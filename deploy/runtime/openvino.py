"""OpenVINO backend: the CPU runtime. It runs a QDQ ONNX in INT8 as is (Q/DQ on conv inputs and weights)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from base.errors import ToolchainError
from deploy.cpu import describe as describe_cpu
from deploy.cpu import effective_isa, native_precisions
from deploy.runtime.base import Runner, check_qdq_arithmetic
from deploy.runtime.openvino_int8 import (
    DEFAULT_REMEDY,
    LP_TRANSFORMS_OFF,
    REMEDIES,
    Int8Check,
    int8_self_check,
    requantize_weights_to_7_bits,
)

logger = logging.getLogger(__name__)
PRECISIONS = ("f32", "bf16", "f16")
HINTS = ("LATENCY", "THROUGHPUT")


def separate_concat_from_fake_quantize(model) -> int:
    """Put a no-op ``Maximum(x, x)`` between each Concat and the FakeQuantize that reads it.

    OpenVINO's CPU plugin (seen on 2024.6, 2025.4 and 2026.4.0) computed a wrong INT8 convolution for
    ``Concat -> FakeQuantize -> Convolution`` (about 20% relative error on the two-input graph of
    tests/deploy/runtime/test_openvino.py; a QAT export scored 0.6290 mAP where ONNX Runtime gave
    0.6629), while the same graph with any op between Concat and FakeQuantize was exact. 2026.4.1
    computes that graph and our PTQ export right unpatched. YOLOv8 has the pattern in every C2f, SPPF
    and neck concat. The no-op costs an elementwise pass and keeps the Concat in float. Returns how
    many were patched.
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


def quantize_concat_inputs(model) -> int:
    """Replace ``Concat -> FakeQuantize`` by a FakeQuantize on each Concat input, with the same ranges.

    The same arithmetic (a per-tensor FakeQuantize is elementwise, so it commutes with Concat), in the
    form OpenVINO's low-precision passes handle best: each producer writes int8, the Concat copies
    int8, and no FakeQuantize reads a Concat. FakeQuantizes with per-channel ranges are left as they
    are. Returns how many were rewritten.
    """
    import openvino.opset13 as ops

    rewritten = 0
    for fq in model.get_ordered_ops():
        if fq.get_type_name() != "FakeQuantize":
            continue
        concat = fq.input_value(0).get_node()
        ranges = [fq.input_value(i) for i in range(1, 5)]
        if concat.get_type_name() != "Concat" or any(int(np.prod(r.get_shape())) != 1 for r in ranges):
            continue
        levels = fq.get_attributes()["levels"]
        inputs = [ops.fake_quantize(concat.input_value(i), *ranges, levels) for i in range(concat.get_input_size())]
        fq.output(0).replace(ops.concat(inputs, concat.get_attributes()["axis"]).output(0))
        rewritten += 1
    return rewritten


CONCAT_WORKAROUNDS = {"maximum": separate_concat_from_fake_quantize, "requantize": quantize_concat_inputs,
                      "none": lambda model: 0}  # fmt: skip
"""Ways around the Concat -> FakeQuantize -> Convolution bug: the Maximum no-op, a FakeQuantize on
each Concat input, or nothing."""


@dataclass
class LayerTime:
    """One executed node of the compiled model in the last inference (``PERF_COUNT``)."""

    name: str
    node_type: str
    exec_type: str
    ms: float


def _remedy_for(requested: str, check: Int8Check) -> str:
    """``auto``: nothing where the self-check passes, else ``DEFAULT_REMEDY``; other values as given."""
    if requested != "auto":
        return requested
    return "none" if check.ok else DEFAULT_REMEDY


class OpenVINORunner(Runner):
    """Run an ONNX model with OpenVINO on the CPU.

    Args:
        path: The ``.onnx`` (or OpenVINO ``.xml``) file.
        precision: Inference precision hint for float layers: ``f32``, ``bf16`` or ``f16``. OpenVINO
            picks bf16 by itself on CPUs that have it, so the hint is always set.
        threads: Inference threads (``None``: OpenVINO's default).
        device: OpenVINO device name.
        hint: ``LATENCY`` (one stream: batch-1 latency) or ``THROUGHPUT`` (several streams, for
            ``time_async`` with many requests in flight).
        concat_workaround: A key of ``CONCAT_WORKAROUNDS`` (not applied where the convolutions run in float).
        int8_remedy: For an INT8 model where the INT8 self-check fails on this CPU (no VNNI): ``auto``
            (``DEFAULT_REMEDY``; nothing where the check passes), ``float``, ``weights7`` or ``none``
            (run as it is, wrong). See ``deploy.runtime.openvino_int8``.
        perf_count: Collect per-layer times (``layer_times``); slows inference a little.
        allow_invalid_qdq: Run a QDQ ONNX whose scales are not finite and positive (refused by default).
        config: More OpenVINO properties (e.g. ``{"ENABLE_CPU_PINNING": False}``), set last.

    Example:
        >>> with OpenVINORunner("model.int8.onnx", precision="f32", threads=2) as runner:
        ...     (pred,) = runner.infer(batch)
    """

    name = "openvino"

    def __init__(
        self, path: str | Path, precision: str = "f32", threads: int | None = None, device: str = "CPU",
        hint: str = "LATENCY", concat_workaround: str = "maximum", perf_count: bool = False,
        config: dict | None = None, int8_remedy: str = "auto", allow_invalid_qdq: bool = False,
    ):  # fmt: skip
        try:
            import openvino as ov
        except ImportError as exc:
            raise ToolchainError(
                "OpenVINO is not installed: pip install openvino (or use --backend onnxruntime)"
            ) from exc
        path = Path(path)
        if not path.is_file():
            raise ToolchainError(f"{path}: model not found")
        if path.suffix == ".onnx":
            check_qdq_arithmetic(path, allow_invalid=allow_invalid_qdq)
        for label, value, allowed in (("precision", precision, PRECISIONS), ("hint", hint, HINTS),
                                      ("concat_workaround", concat_workaround, tuple(CONCAT_WORKAROUNDS)),
                                      ("int8_remedy", int8_remedy, REMEDIES)):  # fmt: skip
            if value not in allowed:
                raise ToolchainError(f"openvino: {label} must be one of {list(allowed)}, got '{value}'")
        if precision not in native_precisions():
            # bf16 on AVX2 is emulated at best; with INT8 convolutions it gave NaN (OpenVINO 2026.4.1)
            logger.warning("openvino: %s is not native on %s: f32 instead", precision, describe_cpu())
            precision = "f32"
        self.precision = precision
        properties = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": hint, "PERF_COUNT": perf_count}
        if threads:
            properties["INFERENCE_NUM_THREADS"] = threads
        properties.update(config or {})
        self.int8_check: Int8Check | None = None
        self.remedy, self.patched = "none", 0
        try:
            core = ov.Core()
            model = core.read_model(str(path))
            if any(op.get_type_name() == "FakeQuantize" for op in model.get_ordered_ops()):
                self.int8_check = int8_self_check(core, precision, device)
                self.remedy = _remedy_for(int8_remedy, self.int8_check)
            if self.remedy == "weights7":
                requantize_weights_to_7_bits(model)
            if self.remedy == "float":
                properties.update(LP_TRANSFORMS_OFF)
            else:
                self.patched = CONCAT_WORKAROUNDS[concat_workaround](model)
            self._compiled = core.compile_model(model, device, properties)
        except RuntimeError as exc:
            raise ToolchainError(f"{path}: OpenVINO cannot compile it ({exc})") from exc
        if self.int8_check is not None and not self.int8_check.ok:
            logger.warning("openvino: %s", self.int8_note())
        self._request = self._compiled.create_infer_request()
        self._shape = tuple(self._compiled.inputs[0].get_partial_shape())
        self.name = f"openvino-{precision}"
        self.path = path
        self._perf_count = perf_count

    def int8_note(self) -> str:
        """One line: what this CPU does with the INT8 model, and what was done about it (empty for a float model)."""
        check = self.int8_check
        if check is None:
            return ""
        where = f"{describe_cpu()}, kernels {', '.join(check.kernels) or 'none'}"
        if check.ok:
            return f"INT8 on {where}: self-check exact ({check.error:.1e})"
        done = {"float": "its convolutions run in float32 with Q/DQ as FakeQuantize (ONNX Runtime's arithmetic, "
                         "no INT8 speed-up)",
                "weights7": "its int8 weights were requantized to 7 bits for OpenVINO (pair sums fit int16; "
                            "one more bit of weight rounding)",
                "none": "run as it is: its INT8 results are WRONG"}[self.remedy]  # fmt: skip
        return (f"INT8 self-check failed on {where} (relative error {check.error:.2f}: without VNNI, pairs of "
                f"u8 x s8 products saturate in int16): {done}")

    @property
    def kernel_isa(self) -> str:
        """The ISA oneDNN's kernels run on here (``ONEDNN_MAX_CPU_ISA`` respected)."""
        return effective_isa() or "unknown"

    @property
    def input_shape(self) -> tuple[int | None, int, int, int]:
        return tuple(d.get_length() if d.is_static else None for d in self._shape)  # type: ignore[return-value]

    @property
    def output_names(self) -> list[str]:
        return [output.get_any_name() for output in self._compiled.outputs]

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        self._request.infer({0: batch})
        return [self._request.get_output_tensor(i).data.copy() for i in range(len(self._compiled.outputs))]

    @property
    def streams(self) -> int:
        """Streams the compiled model runs in parallel (1 with the LATENCY hint)."""
        return int(self._compiled.get_property("NUM_STREAMS"))

    @property
    def requests(self) -> int:
        """Infer requests that keep every stream busy (``OPTIMAL_NUMBER_OF_INFER_REQUESTS``)."""
        return int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))

    def time_async(self, batch: np.ndarray, count: int) -> float:
        """Seconds to run ``batch`` ``count`` times with ``requests`` requests in flight (for throughput)."""
        import openvino as ov

        queue = ov.AsyncInferQueue(self._compiled, self.requests)
        start = time.perf_counter()
        for _ in range(count):
            queue.start_async({0: batch})
        queue.wait_all()
        return time.perf_counter() - start

    def layer_times(self) -> list[LayerTime]:
        """Per-node times of the last inference (needs ``perf_count=True``); fused nodes are not listed."""
        if not self._perf_count:
            raise ToolchainError(f"{self.path}: no per-layer counters; open the runner with perf_count=True")
        return [LayerTime(p.node_name, p.node_type, p.exec_type, p.real_time.total_seconds() * 1e3)
                for p in self._request.profiling_info if p.status == p.Status.EXECUTED]  # fmt: skip

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
