"""The ``toolchain parity`` job: a QDQ ONNX on ONNX Runtime against the fake-quant model it came from,
layer-aligned and end to end (``toolchain.export.parity``). It reads and prints; it writes nothing.

Example:
    >>> run_parity(ParityConfig(model="runs/ptq/best.int8.pt", onnx="runs/ptq/best.int8.onnx", data="data.yaml"))
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import onnx

from base.dataset import load_data_yaml, load_split
from base.errors import ToolchainError
from base.metadata import ModelMetadata
from deploy.bootstrap import paired_bootstrap
from deploy.preprocess import preprocess
from deploy.runtime.onnxruntime import OnnxRuntimeRunner
from toolchain.config.fields import ExistingPath, NonNegativeFloat, PositiveFloat, PositiveInt, check_fields
from toolchain.export.parity import evaluate_float_floor, evaluate_onnx_and_torch, qdq_parity
from toolchain.models.names import check_classes, class_names
from toolchain.models.yolo import load_model
from toolchain.quantization.quantized_model import is_quantized


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


def run_parity(cfg: ParityConfig) -> int:
    """Compare, print the three comparisons and the mAP difference; returns 1 when parity fails, else 0."""
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
    print(
        "float32 floor, the same fake-quant model under other arithmetic: "
        + ", ".join(f"{k} {v:+.4f}" for k, v in floor.items())
        + f"; allowed difference {allowed:.4f}"
    )
    print("\n".join(f"FAIL: {f}" for f in failures) or "parity: OK")
    return 1 if failures else 0


def _check_qdq_onnx(path: str) -> None:
    """Parity compares a QDQ ONNX: a float or unreadable one is one line, before the model is loaded."""
    try:
        graph = onnx.load(path, load_external_data=False).graph
    except Exception as exc:  # protobuf's DecodeError and the like for a file that is not an ONNX
        raise ToolchainError(f"{path}: not a readable ONNX ({type(exc).__name__})") from None
    if not any(node.op_type == "QuantizeLinear" for node in graph.node):
        raise ToolchainError(f"{path}: no QuantizeLinear node, not a QDQ ONNX; pass the .int8.onnx of the model")
