"""PyTorch YOLOv8 to ONNX, with the sidecar JSON and ONNX metadata that deploy/ reads.

Example:
    >>> model = load_model("runs/baseline/weights/best.pt")
    >>> onnx_from_model(model, "model.onnx", ExportConfig(imgsz=384))
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import torch

from base.errors import ToolchainError
from base.fileio import atomic_path
from base.metadata import ModelMetadata
from toolchain.config.fields import ImageSize, PositiveInt, Range, check_fields
from toolchain.config.tree import to_dict
from toolchain.export.qdq import finalize_qdq
from toolchain.models.yolo import class_names, model_stride, set_export_mode
from toolchain.quantization.ptq import fold_batchnorm, is_quantized, quantizers

logger = logging.getLogger(__name__)
INPUT_NAME, OUTPUT_NAME = "images", "output0"


@dataclass(frozen=True)
class ExportConfig:
    """How a model is exported.

    Attributes:
        imgsz: Square input size.
        batch: Static batch size (the optimum when dynamic_batch).
        opset: ONNX opset (13 at least: per-channel QuantizeLinear needs it).
        dynamic_batch: Export the batch dimension as dynamic (engines then get a batch profile).
        simplify: Run onnx-simplifier (constant folding) after export.
    """

    imgsz: ImageSize = 640
    batch: PositiveInt = 1
    opset: Annotated[int, Range(ge=13)] = 17
    dynamic_batch: bool = False
    simplify: bool = True

    def __post_init__(self) -> None:
        check_fields(self)


def _simplify(path: Path, keep_qdq: bool = False) -> None:
    import onnx
    import onnxsim

    model = onnx.load(str(path))
    # Constant folding would turn weight Q/DQ pairs back into float weights: keep them for QDQ models.
    simplified, ok = onnxsim.simplify(model, skip_constant_folding=keep_qdq)
    if not ok:
        logger.warning("onnx-simplifier could not validate %s; keeping the unsimplified graph", path)
        return
    onnx.save(simplified, str(path))


def quantized_convs(model) -> tuple[int, int]:
    """How many of an ``onnx.ModelProto``'s convs read their weight through a DequantizeLinear, and how many convs."""
    made_by = {out: node.op_type for node in model.graph.node for out in node.output}
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    return sum(made_by.get(c.input[1]) == "DequantizeLinear" for c in convs), len(convs)


def _add_metadata(path: Path, meta: ModelMetadata, batch: int, final: Path) -> None:
    """Ultralytics' metadata keys in its format (``yolo val``/``YOLO()`` read our ONNX) beside ours; an ONNX
    whose sidecar would say int8 must hold quantized convs (else it is not written)."""
    import onnx

    model = onnx.load(str(path))
    if meta.precision == "int8" and not quantized_convs(model)[0]:
        raise ToolchainError(
            f"{final}: an INT8 ONNX would hold no quantized conv (0/{quantized_convs(model)[1]}): the model's "
            "quantizers are disabled or were never calibrated; not written"
        )
    del model.metadata_props[:]
    for key, value in meta.onnx_props(batch).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def _check_exportable(model: torch.nn.Module) -> None:
    bits = sorted({q.cfg.num_bits for q in quantizers(model) if q.enabled and q.is_calibrated} - {8})
    if bits:
        raise ToolchainError(
            f"export: ONNX QuantizeLinear/DequantizeLinear need 8-bit quantizers; this model has {bits} bits "
            "(simulation only): set num_bits: 8 to export"
        )


def export_form(model: torch.nn.Module) -> torch.nn.Module:
    """A CPU float32 eval-mode copy of ``model`` as it is exported: decoded head, BatchNorm folded if quantized."""
    net = set_export_mode(copy.deepcopy(model).eval().float().cpu())
    if is_quantized(net):
        fold_batchnorm(net)
    return net


def onnx_from_model(
    model: torch.nn.Module,
    path: str | Path,
    cfg: ExportConfig,
    precision: str = "fp32",
    source: str = "",
    quantization: dict | None = None,
    config: dict | None = None,
) -> Path:
    """Export a detection model to ONNX (TorchScript exporter) and write its sidecar.

    The Detect head is switched to export mode (decoded ``[B, 4 + nc, N]`` output); the model
    passed in is not modified.

    Args:
        model: The detection model, float or fake-quant.
        path: The ONNX to write (its sidecar is ``<path>.json``).
        cfg: Export settings.
        precision: What the sidecar says (``fp32``, ``int8``).
        source: The checkpoint it came from.
        quantization: The quantization config (and placement) of a quantized model.
        config: The resolved config of the command that exported it (sidecar ``extra.config``).

    Returns:
        The written ONNX path.
    """
    path = Path(path)
    start = time.perf_counter()
    logger.info("Exporting %s ONNX to %s (opset %d, imgsz %d)", precision, path, cfg.opset, cfg.imgsz)
    quantized = is_quantized(model)
    if quantized:
        _check_exportable(model)
    net = export_form(model)
    dummy = torch.zeros(cfg.batch, 3, cfg.imgsz, cfg.imgsz)
    dynamic = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if cfg.dynamic_batch else None
    with atomic_path(path) as tmp:
        with torch.no_grad():
            net(dummy)  # the head caches its anchors for this shape: constants in the graph
            torch.onnx.export(
                net,
                dummy,
                str(tmp),
                opset_version=cfg.opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes=dynamic,
                do_constant_folding=True,
                dynamo=False,
            )
        if cfg.simplify:
            _simplify(tmp, keep_qdq=quantized)
        if quantized:
            logger.info("QDQ passes: %s", finalize_qdq(str(tmp)))
        meta = ModelMetadata(
            names=class_names(model),
            imgsz=(cfg.imgsz, cfg.imgsz),
            stride=model_stride(model),
            precision=precision,
            source=str(source),
            quantization=quantization,
            extra={"export": to_dict(cfg), **({"config": config} if config else {})},
        )
        _add_metadata(tmp, meta, cfg.batch, path)
    meta.save(path)
    logger.info("Finished ONNX export in %.1f s (%.1f MB)", time.perf_counter() - start, path.stat().st_size / 1e6)
    return path
