"""FP16 ONNX from an FP32 (or QDQ INT8) ONNX, for TensorRT's strongly typed builds.

TensorRT 10 builds a QDQ ONNX strongly typed, and 11.x has no builder precision flags at all: an FP16
engine, or an FP16 float tail beside INT8 layers, comes only from float16 types in the ONNX itself.
The conversion is onnxconverter-common's ``float16`` (the converter ONNX Runtime documents for this):
inputs and outputs stay float32 (a Cast at each end, so callers feed the same arrays), Q/DQ nodes and
their scales stay float32 (TensorRT reads Q/DQ scales as float32), and so do the ops the converter
itself keeps in float32 (its default block list: Resize, TopK, NonMaxSuppression...).

This is the conversion stage (models in, models out); ``toolchain.jobs.fp16_onnx.fp16_onnx_from_onnx``
reads and writes the files.

Example:
    >>> half, half_meta = fp16_model_from_onnx(onnx.load("best.onnx"), ModelMetadata.find("best.onnx"), "best.onnx")
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import onnx
from onnx import TensorProto

from base.errors import ToolchainError
from base.metadata import ModelMetadata
from deploy.engine.precision import fp16_onnx_path

logger = logging.getLogger(__name__)
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


@dataclass(frozen=True)
class Fp16Config:
    """How an ONNX is converted to float16.

    Attributes:
        keep_io_types: Keep the graph's inputs and outputs float32 (Casts inside the graph).
        block_ops: Op types kept in float32 besides Q/DQ and the converter's defaults.
        block_nodes: Node names kept in float32 (e.g. the last ops of the head, if FP16 costs accuracy there).
        max_finite_val: Float constants beyond this magnitude are clamped to it (float16 tops out at 65504).
    """

    keep_io_types: bool = True
    block_ops: tuple[str, ...] = ()
    block_nodes: tuple[str, ...] = ()
    max_finite_val: float = 65504.0

    def __post_init__(self) -> None:
        if not 0 < self.max_finite_val <= 65504.0:
            raise ToolchainError(f"fp16: max_finite_val must be in (0, 65504], got {self.max_finite_val}")


def fp16_path(onnx: str | Path) -> Path:
    """``model.onnx`` or ``model.fp32.onnx`` -> ``model.fp16.onnx``; ``model.int8.onnx`` -> ``model.int8.fp16.onnx``."""
    return fp16_onnx_path(onnx)


def _float16_initializers(model: onnx.ModelProto) -> list[str]:
    return [t.name for t in model.graph.initializer if t.data_type == TensorProto.FLOAT16]


def _drop_initializer_value_info(model) -> None:
    """Value infos that repeat an initializer's type (onnx-simplifier leaves them) make the converter treat a
    blocked node's float32 scale as a float16 tensor: it casts the scale down to float16 and back. Initializers
    carry their own type, so these entries go."""
    initializers = {t.name for t in model.graph.initializer}
    kept = [v for v in model.graph.value_info if v.name not in initializers]
    del model.graph.value_info[:]
    model.graph.value_info.extend(kept)


def _convert(model, cfg: Fp16Config):
    from onnxconverter_common import float16

    _drop_initializer_value_info(model)
    blocked = sorted({*float16.DEFAULT_OP_BLOCK_LIST, *QDQ_OPS, *cfg.block_ops})
    with warnings.catch_warnings(record=True) as clamped:  # one warning per constant outside float16's range
        warnings.simplefilter("always")
        converted = float16.convert_float_to_float16(
            model,
            max_finite_val=cfg.max_finite_val,
            keep_io_types=cfg.keep_io_types,
            op_block_list=blocked,
            node_block_list=list(cfg.block_nodes),
        )
    if clamped:
        logger.info("%d float32 constants were clamped to float16's range (e.g. %s)", len(clamped), clamped[0].message)
    return converted


def _batch(model) -> int:
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    return dim.dim_value if dim.HasField("dim_value") else 1


def fp16_model_from_onnx(
    model: onnx.ModelProto, meta: ModelMetadata | None, source: str | Path, cfg: Fp16Config | None = None
) -> tuple[onnx.ModelProto, ModelMetadata | None]:
    """The float16 variant of an ONNX model, and of its sidecar when it has one.

    A QDQ source keeps its INT8 layers (precision ``int8`` in the sidecar, float tail in float16);
    an FP32 source becomes ``fp16``.

    Args:
        model: The FP32 or QDQ ONNX model (left as it is).
        meta: Its sidecar, or ``None``.
        source: The file it was read from (the new sidecar's ``source``, and messages).
        cfg: Conversion settings.

    Raises:
        ToolchainError: The source already holds float16 tensors.
    """
    cfg = cfg or Fp16Config()
    if _float16_initializers(model):
        raise ToolchainError(f"{source}: already holds float16 tensors; convert the FP32 ONNX it came from instead")
    quantized = any(n.op_type in QDQ_OPS for n in model.graph.node)
    logger.info("Converting %s to float16 (%s)", source, "float tail of a QDQ model" if quantized else "FP32 model")
    source_copy = onnx.ModelProto()
    source_copy.CopyFrom(model)  # the converter edits its input
    converted = _convert(source_copy, cfg)
    if meta is not None:
        meta = replace(meta, precision="int8" if quantized else "fp16", source=str(source),
                       extra={**meta.extra, "float_type": "float16", "fp16": _describe(cfg)})  # fmt: skip
        del converted.metadata_props[:]
        for key, value in meta.onnx_props(_batch(converted)).items():
            converted.metadata_props.add(key=key, value=value)
    return converted, meta


def _describe(cfg: Fp16Config) -> dict:
    import onnxconverter_common

    return {"converter": f"onnxconverter-common {onnxconverter_common.__version__}", "keep_io_types": cfg.keep_io_types,
            "float32_ops": sorted({*QDQ_OPS, *cfg.block_ops}), "float32_nodes": list(cfg.block_nodes)}  # fmt: skip
