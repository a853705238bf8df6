"""Does ONNX Runtime, running an exported QDQ ONNX, compute what the PyTorch fake-quant model computes?

Both compute Q/DQ in float32, but their convolutions (and sigmoids) round in different orders, about
1e-7 apart. An int8 network amplifies that: a value within an ulp of a rounding boundary rounds up in
one runtime and down in the other, the flipped step moves the next layer's inputs by a whole
quantization step, which flips more values downstream. So three comparisons on the same images:

- **end to end**: both run freely; the relative L2 of the decoded head outputs (boxes and class
  scores each, the worse of the two);
- **float32 floor**: the same comparison between PyTorch and itself, its convolutions computed by
  PyTorch's reference kernels instead of oneDNN. Neither side is wrong; it is the gap float32 leaves
  open in this network, the floor under the end-to-end number;
- **layer-aligned**: PyTorch runs with each activation quantizer's output replaced by ONNX Runtime's
  value at the matching QuantizeLinear, so every layer is compared on identical int8 inputs and no
  difference cascades. This isolates the export's arithmetic: a wrong scale, a missing or extra
  quantizer, a badly rounded weight or bias shows up here at once.

Example:
    >>> report = qdq_parity(model, "m.int8.onnx", batches)
    >>> print(report.summary())
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from base.dataset import Split
from deploy.evaluate import EvalResult, evaluate
from deploy.qdq.graph import graph_constants
from deploy.runtime.onnxruntime import OnnxRuntimeRunner
from toolchain.export.onnx import export_form
from toolchain.models.torch_runner import TorchRunner
from toolchain.quantization.quantized_model import quantizers

logger = logging.getLogger(__name__)


def relative_l2(ours: np.ndarray, ref: np.ndarray) -> float:
    """``||ours - ref|| / ||ref||`` (0 when both are zero)."""
    den = float(np.linalg.norm(ref))
    num = float(np.linalg.norm(ours.astype(np.float64) - ref))
    return num / den if den else num


def head_relative_l2(ours: np.ndarray, ref: np.ndarray) -> float:
    """The worse of the relative L2 of the boxes and of the class scores of ``[B, 4 + nc, N]`` outputs.

    Taken apart because box coordinates (pixels) would otherwise drown the scores (0 to 1).
    """
    return max(relative_l2(ours[:, :4], ref[:, :4]), relative_l2(ours[:, 4:], ref[:, 4:]))


@dataclass(frozen=True)
class QuantizedTensor:
    """One activation QuantizeLinear of the ONNX graph: its output name, scale, zero point and int type."""

    name: str
    scale: float
    zero_point: int
    dtype: np.dtype = np.dtype(np.int8)


@dataclass
class ParityReport:
    """Per-batch relative L2 (``head_relative_l2``) of the three comparisons, int8 agreement of the aligned run."""

    end_to_end: list[float] = field(default_factory=list)
    float_floor: list[float] = field(default_factory=list)
    aligned: list[float] = field(default_factory=list)
    int8_values: int = 0
    int8_mismatches: int = 0
    int8_max_step: int = 0
    unmatched: set[str] = field(default_factory=set)

    @property
    def int8_mismatch_rate(self) -> float:
        return self.int8_mismatches / max(self.int8_values, 1)

    def failures(self, max_aligned: float = 1e-3, max_mismatch_rate: float = 1e-4) -> list[str]:
        """What breaks parity: layer-aligned outputs or int8 activations apart, quantizers without a match."""
        found = []
        if self.unmatched:
            found.append(f"{len(self.unmatched)} quantizer(s) have no QuantizeLinear of the same scale in the ONNX")
        if self.aligned and max(self.aligned) > max_aligned:
            found.append(f"layer-aligned relative L2 {max(self.aligned):.2e} > {max_aligned:.0e}")
        if self.int8_mismatch_rate > max_mismatch_rate:
            found.append(f"layer-aligned int8 mismatch rate {self.int8_mismatch_rate:.2e} > {max_mismatch_rate:.0e}")
        return found

    def summary(self) -> str:
        def stats(xs: list[float]) -> str:
            return f"median {np.median(xs):.2e}, max {max(xs):.2e}"

        lines = [
            f"end to end (ONNX Runtime vs PyTorch):        {stats(self.end_to_end)}",
            f"float32 floor (PyTorch vs PyTorch):           {stats(self.float_floor)}",
            f"layer-aligned (ONNX Runtime vs PyTorch):      {stats(self.aligned)}",
            f"int8 activations, layer-aligned: {self.int8_mismatches} of {self.int8_values} differ "
            f"({self.int8_mismatch_rate:.1e}), by at most {self.int8_max_step} step(s)",
        ]
        if self.unmatched:
            lines.append(f"quantizers with no QuantizeLinear of the same scale in the ONNX: {sorted(self.unmatched)}")
        return "\n".join(lines)


def activation_quantize_nodes(model) -> list[QuantizedTensor]:
    """The per-tensor QuantizeLinear nodes of an ``onnx.ModelProto`` (activations; weights are per-channel)."""
    consts = graph_constants(model)
    found = []
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[1] not in consts:
            continue
        scale = consts[node.input[1]]
        zero_point = consts.get(node.input[2]) if len(node.input) > 2 else None
        if scale.size == 1:  # no zero point: uint8, zero (the ONNX default)
            zp = np.zeros(1, np.uint8) if zero_point is None else zero_point.reshape(-1)
            found.append(QuantizedTensor(node.output[0], float(scale.reshape(-1)[0]), int(zp[0]), zp.dtype))
    return found


def _session_exposing_quantized(path: str | Path):
    """An ONNX Runtime session whose outputs are the model's, then every activation QuantizeLinear's."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    nodes = activation_quantize_nodes(model)
    for q in nodes:
        elem = onnx.helper.np_dtype_to_tensor_dtype(q.dtype)
        model.graph.output.append(onnx.helper.make_tensor_value_info(q.name, elem, None))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session, nodes


class _AlignedToOnnx:
    """Forward hooks that replace each activation quantizer's output with ONNX Runtime's for that tensor.

    A quantizer call is matched to the QuantizeLinear of the same scale, zero point and shape whose
    int8 values agree best (a shared quantizer quantizes several tensors with one scale). While
    ``values`` (ONNX Runtime's outputs by name) is ``None`` the model runs freely.
    """

    def __init__(self, net: torch.nn.Module, nodes: list[QuantizedTensor], report: ParityReport) -> None:
        self.nodes, self.report = nodes, report
        self.values: dict[str, np.ndarray] | None = None
        names = {id(m): n for n, m in net.named_modules()}
        self.handles = [
            q.register_forward_hook(self._hook(names[id(q)]))
            for q in quantizers(net)
            if q.cfg.axis is None and q.enabled and q.is_calibrated
        ]

    def _hook(self, name: str):
        return lambda quantizer, inputs, out: self._replace(quantizer, name, out)

    def _replace(self, quantizer, name: str, out: torch.Tensor) -> torch.Tensor | None:
        if self.values is None:
            return None
        scale, zero_point = (float(t) for t in quantizer.scale_zero_point())
        ours = (torch.round(out / scale) + zero_point).to(torch.int32).numpy()
        candidates = [
            self.values[q.name].astype(np.int32)
            for q in self.nodes
            if q.scale == np.float32(scale) and q.zero_point == zero_point and self.values[q.name].shape == ours.shape
        ]
        if not candidates:
            self.report.unmatched.add(name)
            return None
        theirs = min(candidates, key=lambda c: int(np.count_nonzero(c != ours)))
        diff = np.abs(theirs - ours)
        self.report.int8_values += diff.size
        self.report.int8_mismatches += int(np.count_nonzero(diff))
        self.report.int8_max_step = max(self.report.int8_max_step, int(diff.max(initial=0)))
        return torch.from_numpy((theirs - zero_point).astype(np.float32) * np.float32(scale))

    def close(self) -> None:
        for h in self.handles:
            h.remove()


@contextlib.contextmanager
def _reference_kernels() -> Iterator[None]:
    """PyTorch's own convolution kernels instead of oneDNN's (another summation order)."""
    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = enabled


def _decoded(out) -> np.ndarray:
    return (out[0] if isinstance(out, (tuple, list)) else out).float().numpy()


def evaluate_onnx_and_torch(
    model: torch.nn.Module, onnx_path: str | Path, split: Split
) -> tuple[EvalResult, EvalResult]:
    """COCO results on ``split`` of the QDQ ONNX on ONNX Runtime and of the fake-quant model in PyTorch."""
    with OnnxRuntimeRunner(onnx_path) as onnx_runner:
        with TorchRunner(export_form(model), onnx_runner.input_shape[2]) as torch_runner:
            return evaluate(onnx_runner, split), evaluate(torch_runner, split)


class _Float64Runner(TorchRunner):
    """The fake-quant model in float64: the same quantization grids (quantizer ranges stay float32), less rounding."""

    def __init__(self, model: torch.nn.Module, imgsz: int) -> None:
        net = copy.deepcopy(model).double()
        for q in quantizers(net):
            q.float()
        super().__init__(net, imgsz)

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        return super().infer(batch.astype(np.float64))


def evaluate_float_floor(model: torch.nn.Module, split: Split, imgsz: int) -> dict[str, EvalResult]:
    """COCO results of the same fake-quant model under other arithmetic: PyTorch's reference kernels
    instead of oneDNN's, and float64. Neither is wrong; how far their mAP moves from the oneDNN run is
    what rounding alone does to this model on these images (the rounding cascade)."""
    net = export_form(model)
    with _reference_kernels(), TorchRunner(net, imgsz) as runner:
        reference = evaluate(runner, split)
    with _Float64Runner(net, imgsz) as runner:
        wide = evaluate(runner, split)
    return {"reference kernels": reference, "float64": wide}


def map_onnx_and_torch(model: torch.nn.Module, onnx_path: str | Path, split: Split) -> tuple[float, float]:
    """mAP50-95 on ``split`` of the QDQ ONNX on ONNX Runtime and of the fake-quant model in PyTorch."""
    onnx_result, torch_result = evaluate_onnx_and_torch(model, onnx_path, split)
    return onnx_result.map50_95, torch_result.map50_95


@torch.inference_mode()
def qdq_parity(model: torch.nn.Module, onnx_path: str | Path, batches: Iterable[np.ndarray]) -> ParityReport:
    """Compare a fake-quant model with its exported QDQ ONNX on ONNX Runtime's CPU provider.

    Args:
        model: The calibrated (or QAT-trained) fake-quant model the ONNX was exported from.
        onnx_path: Its QDQ ONNX.
        batches: Preprocessed NCHW float32 images; each batch is one sample of every comparison.

    Returns:
        Per-batch relative L2 of the end-to-end, float32-floor and layer-aligned comparisons.
    """
    start = time.perf_counter()
    net = export_form(model)
    session, nodes = _session_exposing_quantized(onnx_path)
    input_name = session.get_inputs()[0].name
    report = ParityReport()
    aligner = _AlignedToOnnx(net, nodes, report)
    for batch in tqdm(list(batches), desc="parity", unit="batch"):
        outputs = session.run(None, {input_name: batch})
        onnx_out = outputs[0]
        aligner.values = {q.name: v for q, v in zip(nodes, outputs[1:])}
        aligned = _decoded(net(torch.from_numpy(batch)))
        aligner.values = None
        free = _decoded(net(torch.from_numpy(batch)))
        with _reference_kernels():
            reference_kernels = _decoded(net(torch.from_numpy(batch)))
        report.end_to_end.append(head_relative_l2(onnx_out, free))
        report.float_floor.append(head_relative_l2(reference_kernels, free))
        report.aligned.append(head_relative_l2(onnx_out, aligned))
    aligner.close()
    logger.info("Finished QDQ parity on %d batches in %.1f s", len(report.aligned), time.perf_counter() - start)
    return report
