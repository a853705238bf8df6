"""TensorRT's rules for explicitly quantized (QDQ) ONNX, checked on any model, torch-free.

Rules:
- ``int8``: every Q/DQ is int8 with zero point 0 and a positive constant scale.
- ``weight-per-channel``: a quantized conv's weight is an int8 constant behind a DequantizeLinear,
  per-channel on axis 0 (one scale per output channel).
- ``conv-input``: every quantized conv (weight behind DQ) has its input behind a DequantizeLinear.
- ``one-scale``: every tensor reaches its Q nodes with one scale, looking through ops that keep
  scales (Concat, MaxPool, Resize, Slice, Split, Reshape...). This is what lets the producing conv
  write INT8: each Concat's inputs share one scale, and so do C2f's split halves.
- ``residual-add``: an Add of two activations inside the quantized body has both inputs behind
  DequantizeLinear nodes with one scale, so TensorRT fuses it into the conv.
- ``dangling``: a Q feeds only DQ nodes, a DQ reads a Q or a constant, and both are used.
- ``float``: at least one conv is quantized; a model without any is a float model, which passes
  only with ``allow_float`` (``--allow-float``).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from base.errors import ToolchainError
from deploy.qdq.graph import QdqGraph, scale_groups
from deploy.qdq.report import QdqReport, Violation


def _arithmetic_violations(g: QdqGraph, n, tensorrt: bool = True) -> list[Violation]:
    """What makes one Q/DQ node compute garbage: a scale that is not finite and positive (any runtime);
    for TensorRT also a zero point that is not int8 0."""
    found = []
    scale = g.scale(n)
    zp = g.const.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
    if scale is None:
        found.append(Violation("int8", [n.name], "scale is not a constant"))
    elif not np.all(np.isfinite(scale) & (scale > 0)):
        bad = scale.reshape(-1)[~(np.isfinite(scale.reshape(-1)) & (scale.reshape(-1) > 0))]
        found.append(Violation("int8", [n.name], f"scale has values that are not finite and > 0 ({bad[:3].tolist()})"))
    if not tensorrt:
        return found
    if zp is None or zp.dtype != np.int8:
        dtype = "missing (uint8 by default)" if zp is None else str(zp.dtype)
        found.append(Violation("int8", [n.name], f"zero point is {dtype}; TensorRT takes int8"))
    elif np.any(zp != 0):
        found.append(Violation("int8", [n.name], "zero point is not 0; TensorRT takes symmetric int8"))
    return found


def _check_qdq_nodes(g: QdqGraph, report: QdqReport) -> None:
    for n in g.nodes:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        report.violations += _arithmetic_violations(g, n)
        users = g.consumers.get(n.output[0], [])
        if n.op_type == "QuantizeLinear" and (not users or any(u.op_type != "DequantizeLinear" for u in users)):
            report.violations.append(
                Violation("dangling", [n.name], "QuantizeLinear not followed only by DequantizeLinear")
            )
        if n.op_type == "DequantizeLinear":
            src = g.producer.get(n.input[0])
            if n.input[0] not in g.const and (src is None or src.op_type != "QuantizeLinear"):
                report.violations.append(
                    Violation("dangling", [n.name], "DequantizeLinear reads neither a Q nor a constant")
                )
            if not users and n.output[0] not in g.outputs:
                report.violations.append(Violation("dangling", [n.name], "DequantizeLinear output is unused"))


def _check_convs(g: QdqGraph, report: QdqReport) -> None:
    for n in g.nodes:
        if n.op_type != "Conv":
            continue
        report.convs += 1
        wdq = g.from_dq(n.input[1])
        if wdq is None:
            continue
        report.quantized_convs += 1
        if g.from_dq(n.input[0]) is None:
            report.violations.append(Violation("conv-input", [n.name], "quantized conv whose input is not behind a DQ"))
        weight = g.const.get(n.input[1]) if n.input[1] in g.const else None
        src = g.producer.get(wdq.input[0])
        raw = g.const.get(wdq.input[0])
        if raw is None and src is not None and src.op_type == "QuantizeLinear":
            raw = g.const.get(src.input[0])
        scale = g.scale(wdq)
        out_channels = raw.shape[0] if raw is not None else (weight.shape[0] if weight is not None else None)
        if raw is None:
            report.violations.append(Violation("weight-per-channel", [n.name], "weight behind DQ is not a constant"))
        elif scale is not None and (scale.ndim != 1 or scale.size != out_channels or g.attr(wdq, "axis", 1) != 0):
            report.violations.append(
                Violation(
                    "weight-per-channel", [n.name, wdq.name],
                    f"weight scale has shape {list(scale.shape)} on axis {g.attr(wdq, 'axis', 1)}; "
                    f"expected {out_channels} scales on axis 0",
                )
            )  # fmt: skip


def _check_scales(g: QdqGraph, report: QdqReport, root: dict[str, str]) -> set[str]:
    """one-scale; returns the groups that reach a Q node (the quantized body)."""
    scales: dict[str, dict[float, list[str]]] = defaultdict(lambda: defaultdict(list))
    for n in g.nodes:
        if n.op_type == "QuantizeLinear" and n.input[0] not in g.const:
            scale = g.scale(n)
            if scale is not None and scale.size == 1:
                key = float(np.float32(scale.reshape(-1)[0]))
                scales[root.get(n.input[0], n.input[0])][key].append(n.name)
    for values in scales.values():
        if len(values) > 1:
            names = [name for group in values.values() for name in group]
            listed = ", ".join(f"{s:.6g}" for s in sorted(values))
            report.violations.append(
                Violation("one-scale", names, f"one tensor reaches Q nodes with {len(values)} scales ({listed})")
            )
    return set(scales)


def _check_adds(g: QdqGraph, report: QdqReport, root: dict[str, str], quantized_groups: set[str]) -> None:
    for n in g.nodes:
        if n.op_type != "Add" or any(i in g.const for i in n.input):
            continue
        reaches_q = root.get(n.output[0], n.output[0]) in quantized_groups or any(
            u.op_type == "QuantizeLinear" for u in g.consumers.get(n.output[0], [])
        )
        if not reaches_q:
            continue  # float tail (box decoding): not part of the quantized body
        dqs = [g.from_dq(i) for i in n.input]
        if any(d is None for d in dqs):
            report.violations.append(
                Violation(
                    "residual-add", [n.name], "residual Add with an input not behind a DQ: TensorRT cannot fuse it"
                )
            )
            continue
        a, b = (g.scale(d) for d in dqs)
        if a is None or b is None or not np.allclose(a, b, rtol=1e-6):
            report.violations.append(Violation("residual-add", [n.name], "residual Add inputs have different scales"))


def _check_quantized(report: QdqReport, allow_float: bool) -> None:
    if report.quantized_convs or allow_float:
        return
    report.violations.append(
        Violation(
            "float", [], f"no quantized conv (0/{report.convs} with a weight behind DequantizeLinear), "
            f"{report.quantize_nodes} Q nodes: a float model, not INT8; pass --allow-float if that is intended",
        )
    )  # fmt: skip


def check_qdq(path: str | Path, allow_float: bool = False) -> QdqReport:
    """Check one ONNX file against TensorRT's QDQ rules.

    Args:
        path: The ONNX file.
        allow_float: Accept a model without any quantized conv (else the ``float`` rule fails it).

    Raises:
        ToolchainError: The file is missing or not ONNX.
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ToolchainError(f"{path}: ONNX file not found")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf decode errors, or external data beside it missing
        raise ToolchainError(f"{path}: not a readable ONNX model ({exc})") from exc
    if not model.graph.node:
        raise ToolchainError(f"{path}: no graph nodes; an empty or truncated ONNX file, export it again")
    g = QdqGraph(model)
    report = QdqReport(str(path))
    report.quantize_nodes = sum(n.op_type == "QuantizeLinear" for n in g.nodes)
    report.dequantize_nodes = sum(n.op_type == "DequantizeLinear" for n in g.nodes)
    _check_qdq_nodes(g, report)
    _check_convs(g, report)
    root = scale_groups(g)
    _check_adds(g, report, root, _check_scales(g, report, root))
    _check_quantized(report, allow_float)
    return report


ALLOW_INVALID_QDQ = "--allow-invalid-qdq"


def check_runnable(model, path: str | Path, tensorrt: bool = False) -> None:
    """Refuse a QDQ ONNX whose Q/DQ arithmetic is broken before a runtime runs it (it would run and
    find nothing: a NaN or zero scale looks like an empty scene). ``tensorrt`` adds TensorRT's zero
    point 0. A float model passes.

    Args:
        model: The loaded ``onnx.ModelProto``.
        path: Its file, for the message.
        tensorrt: Also require int8 zero points of 0 (TensorRT's symmetric quantization).

    Raises:
        ToolchainError: One line: the first broken node, how many there are, and the way past it.
    """
    g = QdqGraph(model)
    found = [v for n in g.nodes if n.op_type in ("QuantizeLinear", "DequantizeLinear")
             for v in _arithmetic_violations(g, n, tensorrt)]  # fmt: skip
    if found:
        first = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ToolchainError(f"{path}: Q/DQ node {first.nodes[0]}: {first.message}{more}; export the model "
                             f"again (check-qdq {path} lists every one), or pass {ALLOW_INVALID_QDQ} to run it "
                             "anyway")  # fmt: skip
