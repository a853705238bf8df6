"""``report.md`` of ``toolchain analyze`` (``toolchain.jobs.analyze``): its numbers as prose and tables,
the plots linked."""

from __future__ import annotations


def markdown(report: dict) -> str:
    """``report.md``: the report's numbers as prose and tables, the plots linked."""
    c, s = report["convs"], report["sizes"]
    trt, mb = s["tensorrt_weights_estimate"], 1e6
    floats = ", ".join(f"`{n}`" for n in c["float_layers"]) or "none"
    lines = [
        f"# Quantization report: {report['weights']}", "",
        f"INT8 model: {report['int8_model']}; float reference: the same model with fake quantization off. "
        f"Measured on {report['images']} val images of {report['data']} at {report['imgsz']} px.", "",
        "## Convolutions", "",
        f"{c['quantized']} of {c['total']} convs quantized (the INT8 ONNX: {c['onnx_quantized']} of "
        f"{c['onnx_total']} read INT8 weights). Left float ({c['float']}): {floats}.", "",
        "## Sizes", "", "| | FP32 | INT8 | INT8 / FP32 |", "|---|---|---|---|",
        _size_row("ONNX file (`fp32.onnx`, `int8.onnx`)", s["fp32_onnx"]["bytes"], s["int8_onnx"]["bytes"], mb),
        _size_row("TensorRT weights, estimated", trt["fp32_bytes"], trt["int8_bytes"], mb), "",
        f"The TensorRT estimate: {trt['method']}.", "",
        "## Per-layer SQNR", "",
        "SQNR of each quantized conv's output, the whole INT8 model against the whole float one on the same images "
        f"(so the error of the layers before it counts), averaged over batches of {report['batch']}.", "",
        "![SQNR per layer](sqnr.png)", "",
        f"## The worst {len(report['worst'])} layers", "", *_table(report["worst"], ranked=True), "",
        "Each plot: the largest weight magnitude of every output channel against the weight quantizer's range, and the "
        "float input values against the input quantizer's range (dashed).", "",
        *[f"![{n}]({p})" for n, p in report["plots"]["worst"].items()], "",
        "## Every quantized layer", "", *_table(report["layers"], ranked=False),
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def _size_row(what: str, fp32: int, int8: int, mb: float) -> str:
    return f"| {what} | {fp32 / mb:.2f} MB ({fp32} B) | {int8 / mb:.2f} MB ({int8} B) | {int8 / fp32:.2f} |"


def _table(rows: list[dict], ranked: bool) -> list[str]:
    head = "| layer | SQNR (dB) | weight amax | largest / median channel amax | input range | input seen | clipped |"
    out = [("| rank " if ranked else "") + head, "|---" * (head.count("|") - 1 + ranked) + "|"]
    for i, r in enumerate(rows, 1):
        out.append((f"| {i} " if ranked else "") + f"| `{r['name']}` | {r['sqnr_db']:.2f} | {r['weight_absmax']:.4g} "
                   f"| {r['weight_spread']:.1f} | [{r['input_low']:.4g}, {r['input_high']:.4g}] "
                   f"| [{r['input_min']:.4g}, {r['input_max']:.4g}] | {100 * r['input_clipped']:.3f}% |")  # fmt: skip
    return out
