"""Is OpenVINO's INT8 right on this CPU? A self-check before the first inference, and the remedies.

A TensorRT-style QDQ ONNX has int8 weights over the full range [-127, 127]. On CPUs with VNNI (or AMX)
oneDNN sums u8 x s8 products into int32 exactly. Without it (AVX2, AVX512_CORE) it adds pairs of
products into int16 with saturation (``vpmaddubsw``): 255 x 127 x 2 overflows, and a YOLOv8 QDQ export
scored 0.38 mAP50-95 on OpenVINO where ONNX Runtime gave 0.62. No OpenVINO version is assumed: the
self-check runs two tiny Q/DQ convolutions (3x3 and 1x1, full-range weights, activations on the
int8 grid) on the same core, precision and instruction-set cap as the model, and compares them
with numpy in float64.

Remedies, where the check fails (each measured: docs/results.md, ``benchmarks.openvino_int8 --isa``):

- ``float``: OpenVINO's low-precision transformations off: the Q/DQ pairs run as FakeQuantize in
  float and the convolutions in float32: ONNX Runtime's arithmetic, exactly, at float speed or below.
- ``weights7``: every int8 weight tensor feeding a convolution requantized to 7 bits
  (``round(w / 2)``, its scale doubled) for this runtime only (the ONNX and TensorRT are untouched):
  |w1| + |w2| <= 128 keeps every pair sum within int16, and the kernels stay INT8, at the cost of
  one more bit of weight rounding.

Example:
    >>> check = int8_self_check(ov.Core(), "f32")
    >>> check.ok, check.kernels
    (False, ('jit_avx2_I8', 'jit_avx2_1x1_I8'))
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from deploy.cpu import isa_cap

logger = logging.getLogger(__name__)

REMEDIES = ("auto", "float", "weights7", "none")
DEFAULT_REMEDY = "float"
"""What ``auto`` applies where the check fails: exact arithmetic first, since a number we print must be
ONNX Runtime's. Measured on the road-signs baseline's PTQ ONNX, 140 val images, 2 threads
(``benchmarks.openvino_int8 --remedies weights7 float none``; docs/results.md): on a native AVX2 AMD EPYC,
float 0.6252 against ONNX Runtime's 0.6246 (+0.0006, exact Q/DQ arithmetic) at 1.02x the speed of f32;
weights7 0.6210 (-0.0036 [-0.0129, +0.0024], one more bit of weight rounding) at 1.6-1.7x; none 0.4111.
On another export of the same model (Zen 4 capped to AVX2) weights7 was +0.0001: its error is the
model's, not bounded by the arithmetic, so it is what a user asks for (``--int8-remedy weights7``)
when INT8 speed matters more than matching ONNX Runtime."""

# Unit roundoff of each precision hint: the int32 sums are exact, so what is left is the output's
# rounding (dequantizing multiply, stored in the hint's type) plus a few float32 operations.
UNIT_ROUNDOFF = {"f32": 2.0**-24, "bf16": 2.0**-8, "f16": 2.0**-11}
LP_TRANSFORMS_OFF = {"LP_TRANSFORMS_MODE": False}
"""The CPU plugin's property that keeps Q/DQ in float (read from its library; absent from ov.properties)."""


@dataclass(frozen=True)
class Int8Check:
    """The self-check's outcome: worst relative L2 against numpy, its bound, the kernels that ran."""

    error: float
    tolerance: float
    kernels: tuple[str, ...]

    @property
    def int8(self) -> bool:
        """Whether the check's convolutions ran as INT8 kernels at all."""
        return bool(self.kernels) and all(k.upper().endswith(("I8", "U8")) for k in self.kernels)

    @property
    def ok(self) -> bool:
        return self.error <= self.tolerance

    def describe(self) -> str:
        verdict = "exact" if self.ok else "WRONG"
        return f"INT8 self-check {verdict}: relative error {self.error:.1e} (bound {self.tolerance:.0e}), " \
               f"kernels {', '.join(self.kernels) or 'none'}"  # fmt: skip


def tolerance(precision: str) -> float:
    """The self-check's bound: 4 unit roundoffs of the output type, at least 1e-6 (float32's few ops).

    Measured: 2.3e-8 in f32 and 1.6e-3 in bf16 where the kernels are right, 0.22 where pairs saturate.
    """
    return max(4 * UNIT_ROUNDOFF[precision], 1e-6)


def _check_case(rng: np.random.Generator, cin: int = 32, cout: int = 8, size: int = 6):
    """Grid activations, full-range per-channel weights, and the numpy float64 convolutions."""
    act_scale = np.float32(0.0625)  # a power of two: every grid value and product is exact in float32
    x = (rng.integers(-128, 128, (1, cin, size, size)) * act_scale).astype(np.float32)
    weights, refs = [], []
    for k in (3, 1):
        w = rng.integers(-127, 128, (cout, cin, k, k)).astype(np.int8)
        w[:, 0, 0, 0] = 127  # the full range on every channel, as a max-calibrated export has it
        scale = np.linspace(0.5, 2.0, cout).astype(np.float32) * np.float32(2.0**-7)
        pad = k // 2
        xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        wd = w.astype(np.float64) * scale.reshape(-1, 1, 1, 1)
        ref = np.zeros((1, cout, size, size))
        for i in range(k):
            for j in range(k):
                ref += np.einsum("nchw,oc->nohw", xp[:, :, i:i + size, j:j + size], wd[:, :, i, j])
        weights.append((w, scale, pad))
        refs.append(ref)
    return x, act_scale, weights, refs


def _check_model(x: np.ndarray, act_scale: np.float32, weights: list):
    """FakeQuantize(int8 grid) -> Convolution(i8 Constant -> Convert -> Multiply), as the ONNX frontend reads Q/DQ."""
    import openvino as ov
    import openvino.opset13 as ops

    param = ops.parameter(list(x.shape), np.float32, name="x")
    low, high = (ops.constant(np.float32(v * act_scale)) for v in (-128, 127))
    fq = ops.fake_quantize(param, low, high, low, high, 256)
    outputs = []
    for w, scale, pad in weights:
        dequantized = ops.multiply(ops.convert(ops.constant(w), np.float32), ops.constant(scale.reshape(-1, 1, 1, 1)))
        outputs.append(ops.convolution(fq, dequantized, [1, 1], [pad, pad], [pad, pad], [1, 1]))
    return ov.Model(outputs, [param], "int8_self_check")


_CACHE: dict[tuple, Int8Check] = {}


def int8_self_check(core, precision: str = "f32", device: str = "CPU") -> Int8Check:
    """Run the self-check on ``core`` (cached per precision, device and ``ONEDNN_MAX_CPU_ISA``).

    Args:
        core: The ``openvino.Core`` the model will be compiled on.
        precision: The inference precision hint the model gets.
        device: OpenVINO device name.
    """
    key = (precision, device, isa_cap())
    if key not in _CACHE:
        x, act_scale, weights, refs = _check_case(np.random.default_rng(0))
        compiled = core.compile_model(_check_model(x, act_scale, weights), device,
                                      {"INFERENCE_PRECISION_HINT": precision, "PERF_COUNT": True})  # fmt: skip
        request = compiled.create_infer_request()
        request.infer({0: x})
        errors = [
            float(np.linalg.norm(request.get_output_tensor(i).data - ref) / np.linalg.norm(ref))
            for i, ref in enumerate(refs)
        ]
        kernels = tuple(p.exec_type for p in request.profiling_info if p.node_type == "Convolution")
        _CACHE[key] = Int8Check(max(errors), tolerance(precision), kernels)
    return _CACHE[key]


def requantize_weights_to_7_bits(model) -> int:
    """Halve every int8 weight Constant that feeds a convolution (``round(w / 2)``), doubling its scale.

    The pattern is the ONNX frontend's DequantizeLinear: ``Constant(i8) -> Convert -> [Subtract(zero
    point)] -> Multiply(scale) -> (Group)Convolution``. A weight with a nonzero zero point is left as
    it is. Returns how many weight tensors were requantized.
    """
    import openvino.opset13 as ops

    done = 0
    for conv in model.get_ordered_ops():
        if conv.get_type_name() not in ("Convolution", "GroupConvolution"):
            continue
        found = _weight_dequantization(conv.input_value(1).get_node())
        if found is None:
            continue
        constant, multiply, scale_index = found
        halved = np.clip(np.rint(constant.get_data().astype(np.float32) / 2), -64, 64).astype(np.int8)
        constant.output(0).replace(ops.constant(halved).output(0))
        scale = multiply.input_value(scale_index)
        multiply.input(scale_index).replace_source_output(ops.multiply(scale, ops.constant(np.float32(2))).output(0))
        done += 1
    model.validate_nodes_and_infer_types()
    return done


def _weight_dequantization(node):
    """``(int8 Constant, Multiply, index of the scale input)`` of a weight DequantizeLinear, else ``None``."""
    if node.get_type_name() == "Reshape":  # a grouped convolution's weights are reshaped after dequantizing
        node = node.input_value(0).get_node()
    if node.get_type_name() != "Multiply":
        return None
    for index in (0, 1):
        source = node.input_value(1 - index).get_node()
        if source.get_type_name() == "Subtract":
            zero_point = _constant_data(source.input_value(1).get_node())
            if zero_point is None or np.any(zero_point != 0):
                return None
            source = source.input_value(0).get_node()
        if source.get_type_name() == "Convert":
            constant = source.input_value(0).get_node()
            if constant.get_type_name() == "Constant" and constant.get_output_element_type(0).get_type_name() == "i8":
                return constant, node, index
    return None


def _constant_data(node) -> np.ndarray | None:
    """A Constant's values, through the Convert (and Reshape) the frontend puts after a zero point."""
    while node.get_type_name() in ("Convert", "Reshape"):
        node = node.input_value(0).get_node()
    return node.get_data() if node.get_type_name() == "Constant" else None
