"""PyTorch YOLOv8 to an in-memory ONNX model with the metadata deploy/ reads (the export stage: no file is
written here; ``toolchain.jobs.onnx_files`` writes the ONNX and its sidecar JSON).

Example:
    >>> exported = onnx_model_from_torch(load_model("runs/baseline/weights/best.pt"), ExportConfig(imgsz=384))
    >>> exported.model.graph.output[0].name, exported.metadata.precision
    ('output0', 'fp32')
"""

from __future__ import annotations

import copy
import io
import logging
import time
from dataclasses import dataclass
from typing import Annotated

import onnx
import torch

from base.errors import ToolchainError
from base.metadata import ModelMetadata
from toolchain.config.fields import ImageSize, PositiveInt, Range, check_fields
from toolchain.config.tree import to_dict
from toolchain.export.qdq import finalize_qdq
from toolchain.models.names import class_names
from toolchain.models.yolo import model_stride, set_export_mode
from toolchain.quantization.quantized_model import fold_batchnorm, is_quantized, quantizers

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


@dataclass(frozen=True)
class ExportedOnnx:
    """An exported model: the ONNX (metadata properties set) and the sidecar that goes beside it.

    Attributes:
        model: The ONNX model.
        metadata: Its sidecar.
    """

    model: onnx.ModelProto
    metadata: ModelMetadata


def _simplified(model: onnx.ModelProto, keep_qdq: bool, label: str) -> onnx.ModelProto:
    import onnxsim  # loaded on first use: only exports that simplify need onnx-simplifier

    candidate = onnx.ModelProto()
    candidate.CopyFrom(model)
    # Constant folding would turn weight Q/DQ pairs back into float weights: keep them for QDQ models.
    simplified, ok = onnxsim.simplify(candidate, skip_constant_folding=keep_qdq)
    if not ok:
        logger.warning("onnx-simplifier could not validate %s; keeping the unsimplified graph", label)
        return model
    return simplified


def quantized_convs(model) -> tuple[int, int]:
    """How many of an ``onnx.ModelProto``'s convs read their weight through a DequantizeLinear, and how many convs."""
    made_by = {out: node.op_type for node in model.graph.node for out in node.output}
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    return sum(made_by.get(c.input[1]) == "DequantizeLinear" for c in convs), len(convs)


def _set_metadata(model: onnx.ModelProto, meta: ModelMetadata, batch: int, label: str) -> None:
    """Ultralytics' metadata keys in its format (``yolo val``/``YOLO()`` read our ONNX) beside ours; an ONNX
    whose sidecar would say int8 must hold quantized convs (else it is refused)."""
    if meta.precision == "int8" and not quantized_convs(model)[0]:
        raise ToolchainError(
            f"{label}: an INT8 ONNX would hold no quantized conv (0/{quantized_convs(model)[1]}): the model's "
            "quantizers are disabled or were never calibrated; not written"
        )
    del model.metadata_props[:]
    for key, value in meta.onnx_props(batch).items():
        model.metadata_props.add(key=key, value=value)


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


def onnx_model_from_torch(
    model: torch.nn.Module,
    cfg: ExportConfig,
    precision: str = "fp32",
    source: str = "",
    quantization: dict | None = None,
    config: dict | None = None,
    label: str = "export",
) -> ExportedOnnx:
    """Export a detection model to ONNX (TorchScript exporter), in memory, with its sidecar.

    The Detect head is switched to export mode (decoded ``[B, 4 + nc, N]`` output); the model
    passed in is not modified.

    Args:
        model: The detection model, float or fake-quant.
        cfg: Export settings.
        precision: What the sidecar says (``fp32``, ``int8``).
        source: The checkpoint it came from.
        quantization: The quantization config (and placement) of a quantized model.
        config: The resolved config of the command that exported it (sidecar ``extra.config``).
        label: What messages call the ONNX (the file it is written to).

    Returns:
        The ONNX model and its sidecar.

    Raises:
        ToolchainError: A quantizer of other than 8 bits, or an ``int8`` model without a quantized conv.
    """
    start = time.perf_counter()
    logger.info("Exporting %s ONNX to %s (opset %d, imgsz %d)", precision, label, cfg.opset, cfg.imgsz)
    quantized = is_quantized(model)
    if quantized:
        _check_exportable(model)
    net = export_form(model)
    dummy = torch.zeros(cfg.batch, 3, cfg.imgsz, cfg.imgsz)
    dynamic = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if cfg.dynamic_batch else None
    buffer = io.BytesIO()
    with torch.no_grad():
        net(dummy)  # the head caches its anchors for this shape: constants in the graph
        torch.onnx.export(
            net,
            dummy,
            buffer,
            opset_version=cfg.opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes=dynamic,
            do_constant_folding=True,
            dynamo=False,
        )
    exported = onnx.load_model_from_string(buffer.getvalue())
    if cfg.simplify:
        exported = _simplified(exported, quantized, label)
    if quantized:
        logger.info("QDQ passes: %s", finalize_qdq(exported))
    meta = ModelMetadata(
        names=class_names(model),
        imgsz=(cfg.imgsz, cfg.imgsz),
        stride=model_stride(model),
        precision=precision,
        source=str(source),
        quantization=quantization,
        extra={"export": to_dict(cfg), **({"config": config} if config else {})},
    )
    _set_metadata(exported, meta, cfg.batch, label)
    logger.info("Finished ONNX export in %.1f s", time.perf_counter() - start)
    return ExportedOnnx(exported, meta)
