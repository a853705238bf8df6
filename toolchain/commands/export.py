"""Subcommands for models out: ``export`` (FP32 ONNX, and its FP16 variant) and ``parity`` (a QDQ ONNX
against its fake-quant model)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from base.errors import ToolchainError
from base.fileio import check_distinct_paths
from base.metadata import ModelMetadata, sidecar_path
from toolchain.config.fields import (
    ExistingPath,
    ImageSize,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    Writable,
    check_fields,
)
from toolchain.config.files import record
from toolchain.config.flags import Command
from toolchain.config.tree import replace
from toolchain.export.onnx import ExportConfig


@dataclass(frozen=True)
class ExportCommandConfig:
    """``toolchain export``: a .pt to FP32 ONNX with its sidecar JSON.

    Attributes:
        weights: The .pt checkpoint.
        out: ONNX path (null: beside the weights, <weights>.onnx).
        imgsz: Input size (null: the size the weights were trained at).
        fp16: Also write <name>.fp16.onnx for FP16 engines on strongly typed TensorRT (10.x/11.x).
        export: Export settings (batch, opset, dynamic batch, simplifier).
    """

    weights: ExistingPath
    out: Annotated[str, Writable((".onnx",))] | None = None
    imgsz: ImageSize | None = None
    fp16: bool = False
    export: ExportConfig = ExportConfig()

    def __post_init__(self) -> None:
        check_fields(self)


def onnx_outputs(onnx: Path, fp16: bool) -> dict[str, Path | None]:
    """An ONNX, its sidecar and, with ``fp16``, its FP16 variant and that one's sidecar, by what names them."""
    from toolchain.export.fp16 import fp16_path

    half = fp16_path(onnx) if fp16 else None
    return {"--out": onnx, f"the sidecar of {onnx}": sidecar_path(onnx), "the FP16 ONNX": half,
            "the sidecar of the FP16 ONNX": sidecar_path(half) if half else None}  # fmt: skip


def _export(cfg: ExportCommandConfig) -> None:
    from toolchain.export.fp16 import fp16_onnx_from_onnx
    from toolchain.export.onnx import onnx_from_model
    from toolchain.models.yolo import load_model_at

    out = Path(cfg.out or Path(cfg.weights).with_suffix(".onnx"))
    check_distinct_paths(onnx_outputs(out, cfg.fp16), {"--weights": cfg.weights})
    model, imgsz = load_model_at(cfg.weights, cfg.imgsz)
    cfg = replace(cfg, imgsz=imgsz, export=replace(cfg.export, imgsz=imgsz))
    print(onnx_from_model(model, out, cfg.export, source=cfg.weights, config=record(cfg)))
    if cfg.fp16:
        print(fp16_onnx_from_onnx(out))


@dataclass(frozen=True)
class ParityConfig:
    """``toolchain parity``: a QDQ ONNX on ONNX Runtime against the fake-quant model it came from.

    Attributes:
        model: The fake-quant .pt of the ONNX (PTQ's .int8.pt, QAT's best.pt).
        onnx: Its QDQ ONNX (its input size is the size compared at).
        data: data.yaml whose val images are compared.
        images: Val images compared.
        max_aligned: Bound on the layer-aligned relative L2 (the export's correctness).
        max_map_gap: Bound on the mAP50-95 difference; a larger one fails only when it is also over
            floor_factor times the float32 floor's own mAP change and its bootstrap interval excludes 0.
        floor_factor: How many times the float32 floor's mAP change a difference may be and still be rounding.
    """

    model: ExistingPath
    onnx: ExistingPath
    data: ExistingPath
    images: PositiveInt = 16
    max_aligned: PositiveFloat = 1e-3
    max_map_gap: NonNegativeFloat = 0.002
    floor_factor: PositiveFloat = 3.0

    def __post_init__(self) -> None:
        check_fields(self)


def _parity(cfg: ParityConfig) -> int:
    import cv2

    from base.dataset import load_data_yaml, load_split
    from deploy.bootstrap import paired_bootstrap
    from deploy.preprocess import preprocess
    from deploy.runtime.onnxruntime import OnnxRuntimeRunner
    from toolchain.export.parity import evaluate_float_floor, evaluate_onnx_and_torch, qdq_parity
    from toolchain.models.yolo import check_classes, class_names, load_model
    from toolchain.quantization.ptq import is_quantized

    _check_qdq_onnx(cfg.onnx)
    model = load_model(cfg.model)
    if not is_quantized(model):
        raise ToolchainError(f"{cfg.model}: not a fake-quant model; pass the .pt that PTQ or QAT wrote beside the ONNX")
    check_classes(class_names(model), cfg.data, cfg.model)
    meta = ModelMetadata.find(cfg.onnx)
    if meta is not None and meta.names != class_names(model):
        raise ToolchainError(f"{cfg.onnx}: its classes {meta.names} are not those of {cfg.model} "
                             f"{class_names(model)}; pass the ONNX exported from that model")  # fmt: skip
    split = load_split(load_data_yaml(cfg.data), "val", limit=cfg.images)
    with OnnxRuntimeRunner(cfg.onnx) as onnx_runner:
        imgsz = onnx_runner.input_shape[2]
    batches = [preprocess([cv2.imread(str(r.path))], (imgsz, imgsz))[0] for r in split.images]
    report = qdq_parity(model, cfg.onnx, batches)
    onnx_result, torch_result = evaluate_onnx_and_torch(model, cfg.onnx, split)
    floor = {k: r.map50_95 - torch_result.map50_95 for k, r in evaluate_float_floor(model, split, imgsz).items()}
    gap = paired_bootstrap(onnx_result.matches, torch_result.matches)
    failures = report.failures(cfg.max_aligned)
    # The export's arithmetic is judged layer by layer above. End to end, a value within an ulp of a
    # rounding boundary flips in one runtime and cascades (on 16 images a correct export on AVX2 was
    # 0.0047 apart, interval excluding 0): a gap is a fault only when it is over the bound, over what
    # rounding alone moves this model's mAP (the same model under other arithmetic), and real.
    allowed = max(cfg.max_map_gap, cfg.floor_factor * max(abs(v) for v in floor.values()))
    if abs(gap.delta) > allowed and gap.real:
        failures.append(f"mAP50-95 differs by {abs(gap.delta):.4f} > {allowed:.4f} (the bound, or {cfg.floor_factor:g} "
                        f"x the float32 floor's change), and not by noise: {gap.describe()}")  # fmt: skip
    print(f"{cfg.onnx} against {cfg.model}, {len(split.images)} val images at {imgsz}:\n{report.summary()}")
    print(f"mAP50-95: ONNX Runtime {onnx_result.map50_95:.4f}, PyTorch fake-quant {torch_result.map50_95:.4f}, "
          f"difference {gap.describe()}")  # fmt: skip
    print("float32 floor, the same fake-quant model under other arithmetic: "
          + ", ".join(f"{k} {v:+.4f}" for k, v in floor.items()) + f"; allowed difference {allowed:.4f}")
    print("\n".join(f"FAIL: {f}" for f in failures) or "parity: OK")
    return 1 if failures else 0


def _check_qdq_onnx(path: str) -> None:
    """Parity compares a QDQ ONNX: a float or unreadable one is one line, before the model is loaded."""
    import onnx

    try:
        graph = onnx.load(path, load_external_data=False).graph
    except Exception as exc:  # protobuf's DecodeError and the like for a file that is not an ONNX
        raise ToolchainError(f"{path}: not a readable ONNX ({type(exc).__name__})") from None
    if not any(node.op_type == "QuantizeLinear" for node in graph.node):
        raise ToolchainError(f"{path}: no QuantizeLinear node, not a QDQ ONNX; pass the .int8.onnx of the model")


EXPORT_FLAGS = {"--batch": "export.batch", "--opset": "export.opset", "--dynamic-batch": "export.dynamic_batch",
                "--simplify": "export.simplify"}  # fmt: skip

COMMANDS = [
    Command("export", ExportCommandConfig, _export, "export a .pt to FP32 ONNX with its sidecar JSON", EXPORT_FLAGS,
            fixed={"export.imgsz": "imgsz: the flag, else the size the weights were trained at"}),
    Command("parity", ParityConfig, _parity,
            "compare a QDQ ONNX on ONNX Runtime with the fake-quant model it came from"),
]  # fmt: skip
