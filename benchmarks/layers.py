"""Where OpenVINO spends a batch-1 inference: its per-layer counters (``PERF_COUNT``) in a few groups.

Groups: INT8 and float convolutions, FakeQuantize nodes left standing (requantization), Concat,
SiLU not fused into its convolution, reorders (layout changes), the Maximum no-op of the Concat
workaround, splits, and the rest.

Example:
    >>> profile = layer_profile("m.int8.onnx", precision="f32", threads=2)
    >>> profile["groups"]["conv int8"]["ms"]
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from deploy.runtime.openvino import LayerTime, OpenVINORunner

GROUPS = ("conv int8", "conv float", "FakeQuantize", "Concat", "SiLU", "Reorder", "Maximum no-op", "Split", "other")


def group_of(layer: LayerTime) -> str:
    """The group of one executed node, from its type and OpenVINO's kernel name."""
    kernel = layer.exec_type.lower()
    if layer.node_type == "Convolution":
        return "conv int8" if kernel.endswith(("_i8", "_u8")) else "conv float"
    if layer.node_type in ("Swish", "Sigmoid", "SiLU"):
        return "SiLU"
    if layer.node_type == "Maximum":
        return "Maximum no-op"
    if layer.node_type in ("Split", "VariadicSplit"):
        return "Split"
    return layer.node_type if layer.node_type in GROUPS else "other"


def group_times(runs: list[list[LayerTime]]) -> dict[str, dict]:
    """Mean milliseconds per inference and node count of each group, over several inferences."""
    out = {g: {"ms": 0.0, "nodes": 0} for g in GROUPS}
    for layers in runs:
        for layer in layers:
            out[group_of(layer)]["ms"] += layer.ms / len(runs)
    for layer in runs[0] if runs else []:
        out[group_of(layer)]["nodes"] += 1
    return out


def layer_profile(
    model: str, precision: str = "f32", threads: int | None = None, concat_workaround: str = "maximum",
    runs: int = 20, warmup: int = 5, int8_remedy: str = "auto",
) -> dict:  # fmt: skip
    """Per-group times of ``model`` at batch 1, the counters' total, and how many convolutions run in each
    precision and with each kernel (``brgconv_avx512_amx_i8``: AMX tiles; ``..._avx512_bf16``: AVX-512 BF16)."""
    with OpenVINORunner(model, precision, threads, concat_workaround=concat_workaround, perf_count=True,
                        int8_remedy=int8_remedy) as runner:  # fmt: skip
        shape = runner.input_shape
        x = np.random.default_rng(0).random((1, *shape[1:]), dtype=np.float32)
        for _ in range(warmup):
            runner.infer(x)
        samples = []
        for _ in range(runs):
            runner.infer(x)
            samples.append(runner.layer_times())
        groups = group_times(samples)
        kernels = Counter(t.exec_type for t in samples[-1] if t.node_type == "Convolution")
        return {"groups": groups, "total_ms": sum(g["ms"] for g in groups.values()),
                "convs": dict(runner.conv_precisions()), "conv_kernels": dict(kernels),
                "patched": runner.patched, "remedy": runner.remedy, "int8_note": runner.int8_note()}  # fmt: skip


def markdown(profiles: dict[str, dict]) -> list[str]:
    """A table: one column per profiled model, one line per group (ms per inference, nodes)."""
    names = list(profiles)
    lines = ["| group | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for g in GROUPS:
        cells = [f"{p['groups'][g]['ms']:.2f} ({p['groups'][g]['nodes']})" for p in profiles.values()]
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    lines.append("| total (counters) | " + " | ".join(f"{p['total_ms']:.2f}" for p in profiles.values()) + " |")
    for row, key in (("convs by precision", "convs"), ("convs by kernel", "conv_kernels")):
        cells = [", ".join(f"{k} {v}" for k, v in sorted(p.get(key, {}).items())) for p in profiles.values()]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines.append("| INT8 self-check remedy | " + " | ".join(p.get("remedy", "-") for p in profiles.values()) + " |")
    notes = sorted({p["int8_note"] for p in profiles.values() if p.get("int8_note")})
    return lines + ["", *notes] if notes else lines
