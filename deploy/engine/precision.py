"""The precision an engine really gets: decided from the ONNX's own types and what this TensorRT allows.

On TensorRT 10 and later an INT8 engine from a QDQ ONNX is built strongly typed: Q/DQ decide what is
INT8 and the ONNX's own types decide the rest. TensorRT 11 builds nothing else, so there an FP16
engine needs FP16 types in the ONNX (``MODEL.fp16.onnx``, written at export) and INT8 needs Q/DQ: the
calibrators are gone. A request the ONNX cannot honour is refused here, in one line, before any GPU
work, so the precision written in the engine's sidecar is always the one the engine has.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from base.errors import ToolchainError
from deploy.engine.config import EngineConfig, check_int8_source
from deploy.engine.trt import TrtFeatures

FLOAT16 = 10  # onnx.TensorProto.FLOAT16


@dataclass(frozen=True)
class OnnxTypes:
    """What the ONNX itself says about precision: Q/DQ nodes, float16 tensors."""

    qdq: bool
    float16: bool

    @classmethod
    def read(cls, path: str | Path) -> OnnxTypes:
        """Read the types of an ONNX file (external weights are not loaded).

        Raises:
            ToolchainError: The file is not a readable ONNX model, or has no nodes.
        """
        import onnx

        try:
            graph = onnx.load(str(path), load_external_data=False).graph
        except Exception as exc:  # protobuf decode errors of a truncated or foreign file
            raise ToolchainError(f"{path}: not a readable ONNX model ({exc}); export it again") from exc
        if not graph.node:
            raise ToolchainError(f"{path}: no graph nodes; an empty or truncated ONNX file, export it again")
        qdq = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node)
        tensors = [*graph.input, *graph.output, *graph.value_info]
        float16 = (
            any(t.type.tensor_type.elem_type == FLOAT16 for t in tensors)
            or any(t.data_type == FLOAT16 for t in graph.initializer)
            or any(a.name == "to" and a.i == FLOAT16 for n in graph.node if n.op_type == "Cast" for a in n.attribute)
        )
        return cls(qdq, float16)


@dataclass(frozen=True)
class BuildPlan:
    """How to build: the engine's true precision, strongly typed or not, the builder flags to set."""

    precision: str
    strongly_typed: bool
    flags: tuple[str, ...]
    int8_source: str  # "qdq", "calibration" or "none"


def fp16_onnx_path(onnx: str | Path) -> Path:
    """The FP16-typed ONNX written at export beside ``onnx``: ``best.onnx``, ``best.fp32.onnx`` -> ``best.fp16.onnx``.

    The same rule as the exporter's (toolchain/export/fp16.py), which deploy/ does not import.
    """
    onnx = Path(onnx)
    stem = onnx.name[: -len(".onnx")] if onnx.name.endswith(".onnx") else onnx.stem
    stem = stem[: -len(".fp32")] if stem.endswith(".fp32") else stem
    return onnx.with_name(f"{stem}.fp16.onnx")


def _int8_plan(onnx: Path, cfg: EngineConfig, types: OnnxTypes, features: TrtFeatures) -> BuildPlan:
    weak_flags = ("INT8", "FP16") if cfg.fp16_fallback else ("INT8",)
    if types.qdq:
        strongly_typed = features.strongly_typed  # 10+: Q/DQ and the ONNX's types decide every precision
        return BuildPlan("int8", strongly_typed, () if strongly_typed else weak_flags, "qdq")
    check_int8_source(onnx, cfg)
    if not features.calibrators:
        raise ToolchainError(
            f"{onnx}: TensorRT {features.version} has no INT8 calibration (networks are strongly typed only); "
            "build INT8 from the QDQ ONNX instead ('make ptq' or 'make qat' writes it)"
        )
    if cfg.strongly_typed:
        raise ToolchainError(f"{onnx}: INT8 calibration needs a weakly typed network; drop --strongly-typed")
    return BuildPlan("int8", False, weak_flags, "calibration")


def plan_build(onnx: str | Path, cfg: EngineConfig, types: OnnxTypes, features: TrtFeatures) -> BuildPlan:
    """The plan for ``cfg.precision`` from this ONNX on this TensorRT.

    Raises:
        ToolchainError: The ONNX's types make another precision (Q/DQ: INT8; float16: FP16), or this
            TensorRT cannot make the requested one from it (FP16 from an FP32 ONNX or calibration on 11.x).
    """
    onnx = Path(onnx)
    if cfg.strongly_typed and not features.strongly_typed:
        raise ToolchainError(f"engine: strongly typed networks need TensorRT 10 or later, this is {features.version}")
    if types.qdq and cfg.precision != "int8":
        raise ToolchainError(
            f"{onnx}: has Q/DQ nodes, so its engine is INT8 (--precision int8); for {cfg.precision.upper()} "
            "build from the float ONNX"
        )
    if cfg.precision == "int8":
        return _int8_plan(onnx, cfg, types, features)
    strongly_typed = features.strongly_typed_only or cfg.strongly_typed
    if types.float16:
        if cfg.precision != "fp16":
            raise ToolchainError(f"{onnx}: has FP16 types, so its engine is FP16 (--precision fp16); for FP32 "
                                 "build from the FP32 ONNX")  # fmt: skip
        strongly_typed = strongly_typed or features.strongly_typed
        return BuildPlan("fp16", strongly_typed, () if strongly_typed else ("FP16",), "none")
    if cfg.precision == "fp16":
        if strongly_typed:
            raise ToolchainError(
                f"{onnx}: an FP16 engine on TensorRT {features.version} (strongly typed) needs FP16 types in the "
                f"ONNX: build from {fp16_onnx_path(onnx)} (written at export), or choose --precision fp32"
            )
        return BuildPlan("fp16", False, ("FP16",), "none")
    return BuildPlan("fp32", strongly_typed, (), "none")
