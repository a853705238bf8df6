"""A YOLOv8 detect ONNX made end to end: uint8 images in, detections out, decode and NMS in the graph.

    $ python -m deploy.end_to_end model.onnx [--out model.e2e.onnx] [--conf 0.25 --iou 0.7 --max-det 300]
          [--multi-label]

The graph written (FP32 or QDQ INT8 alike; the network itself is left as it is):

- input ``images``: ``[B, H, W, 3]`` uint8 BGR, the letterboxed canvas as OpenCV holds it
  (``deploy.preprocess.Preprocessor(uint8_nhwc=True)``). The graph casts it, scales by float32
  1/255, transposes to NCHW and flips to RGB: the arithmetic of ``deploy.preprocess``, bit for bit.
- decode as ``deploy.postprocess.decode``: ``x0 y0 x1 y1`` from ``cx cy w h``; with ``--multi-label``
  one candidate per (box, class) above conf (``yolo val``, for mAP), else only the box's best class
  (live detection, the default).
- ONNX ``NonMaxSuppression`` per class (TensorRT 8.6+ parses it to its NMS layer; ONNX Runtime and
  OpenVINO run it), then the ``max_det`` highest scores over all classes: what the host path does
  with its class offsets and ``[:max_det]``.
- outputs ``deploy.postprocess.END_TO_END_OUTPUTS``: ``det_boxes [B, K, 4]`` float32 in input pixels,
  ``det_scores [B, K]`` float32 (high to low), ``det_classes [B, K]`` int32, ``num_dets [B]`` int32,
  ``K = min(max_det, classes x anchors)``; rows from ``num_dets`` on are padding (0, 0, -1).

Unlike the host path, candidates are not capped at ``PostprocessConfig.max_candidates`` (30000)
before NMS: the results differ only where more than 30000 candidates pass conf.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from base.errors import ToolchainError, UsageError, report_errors
from base.fileio import atomic_path, check_distinct_paths
from base.metadata import ModelMetadata, sidecar_path
from deploy.postprocess import END_TO_END_OUTPUTS, PostprocessConfig

if TYPE_CHECKING:
    import onnx

logger = logging.getLogger(__name__)
MIN_OPSET = 13  # Unsqueeze and ReduceSum take their axes as inputs from 13 on
PREFIX = "e2e/"


@dataclass(frozen=True)
class EndToEndConfig:
    """Thresholds baked into the graph (live defaults; for mAP: conf 0.001, ``multi_label``).

    Attributes:
        conf: A candidate's class score must exceed it.
        iou: IoU above which the lower-scored box of the same class is suppressed.
        max_det: Most detections per image.
        multi_label: One candidate per (box, class) above conf instead of one per box.
    """

    conf: float = 0.25
    iou: float = 0.7
    max_det: int = 300
    multi_label: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.conf <= 1.0 or not 0.0 <= self.iou <= 1.0:
            raise UsageError(f"end_to_end: conf and iou must lie in [0, 1], got conf={self.conf}, iou={self.iou}")
        if self.max_det < 1:
            raise UsageError(f"end_to_end: max_det must be at least 1, got {self.max_det}")


@dataclass(frozen=True)
class _Head:
    """What the converter reads from a YOLOv8 detect ONNX."""

    input_name: str
    dims: list  # input [B, 3, H, W]: ints, or names where dynamic
    output_name: str
    output_type: int
    classes: int
    anchors: int | None


def _dims(value_info) -> list:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in value_info.type.tensor_type.shape.dim]  # fmt: skip


def _yolo_anchors(dims: list) -> int | None:
    """Anchor points of YOLOv8's strides 8, 16 and 32 for a static ``[B, 3, H, W]`` input (``None`` if dynamic)."""
    h, w = dims[2:]
    if not isinstance(h, int) or not isinstance(w, int):
        return None
    return sum(-(-h // s) * -(-w // s) for s in (8, 16, 32))


def read_head(model, path: str | Path) -> _Head:
    """The image input and detect output of a YOLOv8 ONNX (``[B, 3, H, W]`` float32 -> ``[B, 4 + nc, N]``).

    Raises:
        ToolchainError: Naming the file, what it has and what a YOLOv8 detect export has.
    """
    from onnx import TensorProto

    graph = model.graph
    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if set(END_TO_END_OUTPUTS) <= {o.name for o in graph.output}:
        raise ToolchainError(f"{path}: already an end-to-end model (outputs {list(END_TO_END_OUTPUTS)})")
    if len(inputs) != 1:
        raise ToolchainError(f"{path}: {len(inputs)} inputs; expected one image input [B, 3, H, W] of a YOLOv8 "
                             "detect export")  # fmt: skip
    inp, dims = inputs[0], _dims(inputs[0])
    if len(dims) != 4 or dims[1] != 3 or inp.type.tensor_type.elem_type != TensorProto.FLOAT:
        kind = TensorProto.DataType.Name(inp.type.tensor_type.elem_type).lower()
        raise ToolchainError(f"{path}: input '{inp.name}' is {kind} {dims}; expected float32 [B, 3, H, W] "
                             "(a YOLOv8 detect export)")  # fmt: skip
    if len(graph.output) != 1:
        names = [o.name for o in graph.output]
        raise ToolchainError(f"{path}: {len(names)} outputs {names}; expected one YOLOv8 detect output "
                             "[B, 4 + classes, anchors] (segment and pose exports have more)")  # fmt: skip
    out = graph.output[0]
    odims, otype = _dims(out), out.type.tensor_type.elem_type
    if len(odims) != 3 or not isinstance(odims[1], int) or odims[1] < 5 or otype not in (1, 10):  # FLOAT, FLOAT16
        raise ToolchainError(f"{path}: output '{out.name}' is {odims}; expected a YOLOv8 detect output "
                             "[B, 4 + classes, anchors] of cx, cy, w, h and class scores, float")  # fmt: skip
    anchors = odims[2] if isinstance(odims[2], int) else None
    if _yolo_anchors(dims) == odims[1] and anchors is not None and anchors < odims[1]:
        raise ToolchainError(f"{path}: output '{out.name}' is {odims}: anchors first, transposed? expected "
                             "[B, 4 + classes, anchors] as ultralytics exports YOLOv8")  # fmt: skip
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        raise ToolchainError(f"{path}: opset {opset}; the end-to-end graph needs opset {MIN_OPSET} or later "
                             "(re-export: toolchain export --opset 17)")  # fmt: skip
    return _Head(inp.name, dims, out.name, otype, odims[1] - 4, anchors)


def _const(name: str, value, dtype) -> object:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(value, dtype), PREFIX + name)


def _input_nodes(head: _Head) -> tuple[list, list]:
    """uint8 BGR NHWC -> float32 RGB NCHW in [0, 1], computed as ``deploy.preprocess`` computes it."""
    from onnx import TensorProto, helper

    p, float_input = PREFIX, PREFIX + "images_float"
    nodes = [
        helper.make_node("Cast", [head.input_name], [p + "x"], to=TensorProto.FLOAT, name=p + "cast"),
        helper.make_node("Mul", [p + "x", p + "scale"], [p + "x01"], name=p + "scale"),
        helper.make_node("Transpose", [p + "x01"], [p + "bgr"], perm=[0, 3, 1, 2], name=p + "nchw"),
        helper.make_node("Gather", [p + "bgr", p + "rgb"], [float_input], axis=1, name=p + "rgb"),
    ]
    return nodes, [_const("scale", np.float32(1 / 255), np.float32), _const("rgb", [2, 1, 0], np.int64)]


def _decode_nodes(head: _Head, cfg: EndToEndConfig) -> tuple[list, list]:
    """``[B, 4 + nc, N]`` -> ``e2e/boxes [B, N, 4]`` (xyxy) and ``e2e/scores [B, nc, N]`` (best class only
    unless multi-label)."""
    from onnx import TensorProto, helper

    p, n = PREFIX, helper.make_node
    pred, nodes = head.output_name, []
    if head.output_type != TensorProto.FLOAT:  # an FP16 head: decode and NMS in float32
        pred = p + "pred"
        nodes.append(n("Cast", [head.output_name], [pred], to=TensorProto.FLOAT, name=p + "cast_pred"))
    nodes += [
        n("Slice", [pred, p + "c0", p + "c4", p + "ax1"], [p + "xywh"], name=p + "xywh"),
        n("Slice", [pred, p + "c4", p + "cmax", p + "ax1"], [p + "class_scores"], name=p + "class_scores"),
        n("Transpose", [p + "xywh"], [p + "xywh_t"], perm=[0, 2, 1], name=p + "xywh_t"),
        n("Slice", [p + "xywh_t", p + "c0", p + "c2", p + "ax2"], [p + "xy"], name=p + "xy"),
        n("Slice", [p + "xywh_t", p + "c2", p + "c4", p + "ax2"], [p + "wh"], name=p + "wh"),
        n("Div", [p + "wh", p + "two"], [p + "half"], name=p + "half"),  # as decode: xy -/+ wh / 2, float32
        n("Sub", [p + "xy", p + "half"], [p + "p0"], name=p + "p0"),
        n("Add", [p + "xy", p + "half"], [p + "p1"], name=p + "p1"),
        n("Concat", [p + "p0", p + "p1"], [p + "boxes"], axis=2, name=p + "boxes"),
    ]
    if cfg.multi_label:
        nodes.append(n("Identity", [p + "class_scores"], [p + "scores"], name=p + "scores"))
    else:  # every class but the box's best (the first on ties, like numpy's argmax) drops out
        nodes += [
            n("ArgMax", [p + "class_scores"], [p + "best"], axis=1, keepdims=1, select_last_index=0, name=p + "best"),
            n("Equal", [p + "best", p + "class_ids"], [p + "is_best"], name=p + "is_best"),
            n("Where", [p + "is_best", p + "class_scores", p + "zero"], [p + "scores"], name=p + "scores"),
        ]
    inits = [_const("c0", [0], np.int64), _const("c2", [2], np.int64), _const("c4", [4], np.int64),
             _const("cmax", [np.iinfo(np.int64).max], np.int64), _const("ax1", [1], np.int64),
             _const("ax2", [2], np.int64), _const("two", np.float32(2), np.float32),
             _const("zero", np.float32(0), np.float32)]  # fmt: skip
    if not cfg.multi_label:
        inits.append(_const("class_ids", np.arange(head.classes).reshape(1, -1, 1), np.int64))
    return nodes, inits


def _nms_nodes(head: _Head, cfg: EndToEndConfig) -> tuple[list, list, int]:
    """Per-class NMS, then the ``max_det`` best over all classes, padded to ``K`` rows per image.

    The selected scores are scattered into a ``[B, nc * N]`` map (-1 elsewhere) whose TopK orders them
    by score, ties by class then anchor: the host path's order (a stable sort of (class, anchor) pairs).
    """
    from onnx import TensorProto, helper

    p, n = PREFIX, helper.make_node
    k = min(cfg.max_det, head.classes * head.anchors) if head.anchors else cfg.max_det
    nodes = [
        n("NonMaxSuppression", [p + "boxes", p + "scores", p + "max_per_class", p + "iou", p + "conf"],
          [p + "selected"], center_point_box=0, name=p + "nms"),
        n("GatherND", [p + "scores", p + "selected"], [p + "selected_scores"], name=p + "selected_scores"),
        n("Shape", [p + "scores"], [p + "scores_shape"], name=p + "scores_shape"),
        n("ConstantOfShape", [p + "scores_shape"], [p + "unselected"],
          value=helper.make_tensor("v", TensorProto.FLOAT, [1], [-1.0]), name=p + "unselected"),
        n("ScatterND", [p + "unselected", p + "selected", p + "selected_scores"], [p + "kept"], name=p + "kept"),
        n("Reshape", [p + "kept", p + "flat_shape"], [p + "kept_flat"], name=p + "kept_flat"),
        n("Shape", [p + "kept_flat"], [p + "flat_dims"], name=p + "flat_dims"),
        n("Slice", [p + "flat_dims", p + "c1", p + "c2", p + "ax0"], [p + "flat_len"], name=p + "flat_len"),
        n("Min", [p + "flat_len", p + "k"], [p + "k_used"], name=p + "k_used"),
        n("TopK", [p + "kept_flat", p + "k_used"], [p + "top_scores", p + "top_index"], axis=1, largest=1, sorted=1,
          name=p + "topk"),
        n("GreaterOrEqual", [p + "top_scores", p + "zero"], [p + "valid"], name=p + "valid"),
        n("Slice", [p + "scores_shape", p + "c2", p + "c3", p + "ax0"], [p + "anchors"], name=p + "anchors"),
        n("Div", [p + "top_index", p + "anchors"], [p + "top_class"], name=p + "top_class"),
        n("Mod", [p + "top_index", p + "anchors"], [p + "top_anchor"], name=p + "top_anchor"),
        n("Unsqueeze", [p + "top_anchor", p + "ax2"], [p + "top_anchor3"], name=p + "top_anchor3"),
        n("GatherND", [p + "boxes", p + "top_anchor3"], [p + "top_boxes"], batch_dims=1, name=p + "top_boxes"),
        n("Unsqueeze", [p + "valid", p + "ax2"], [p + "valid3"], name=p + "valid3"),
        n("Where", [p + "valid3", p + "top_boxes", p + "zero"], ["det_boxes"], name=p + "det_boxes"),
        n("Where", [p + "valid", p + "top_scores", p + "zero"], ["det_scores"], name=p + "det_scores"),
        n("Cast", [p + "top_class"], [p + "top_class32"], to=TensorProto.INT32, name=p + "top_class32"),
        n("Where", [p + "valid", p + "top_class32", p + "minus_one"], ["det_classes"], name=p + "det_classes"),
        n("Cast", [p + "valid"], [p + "valid32"], to=TensorProto.INT32, name=p + "valid32"),
        n("ReduceSum", [p + "valid32", p + "ax1"], ["num_dets"], keepdims=0, name=p + "num_dets"),
    ]
    inits = [_const("max_per_class", [cfg.max_det], np.int64), _const("iou", [cfg.iou], np.float32),
             _const("conf", [cfg.conf], np.float32), _const("flat_shape", [0, -1], np.int64),
             _const("c1", [1], np.int64), _const("c3", [3], np.int64), _const("ax0", [0], np.int64),
             _const("k", [k], np.int64), _const("minus_one", np.int32(-1), np.int32)]  # fmt: skip
    return nodes, inits, k


def end_to_end_from_onnx(model: onnx.ModelProto, cfg: EndToEndConfig, path: str | Path = "model") -> onnx.ModelProto:
    """The end-to-end graph of a YOLOv8 detect ``onnx.ModelProto`` (a new model; ``model`` is not changed).

    Raises:
        ToolchainError: ``model`` is not a YOLOv8 detect export (see ``read_head``).
    """
    import onnx
    from onnx import TensorProto, helper

    head = read_head(model, path)
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    for node in graph.node:  # the network now reads the normalised float image
        node.input[:] = [PREFIX + "images_float" if x == head.input_name else x for x in node.input]
    parts = [_input_nodes(head), _decode_nodes(head, cfg)]
    nms_nodes, nms_inits, k = _nms_nodes(head, cfg)
    nodes = parts[0][0] + list(graph.node) + parts[1][0] + nms_nodes
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(parts[0][1] + parts[1][1] + nms_inits)
    batch, _, h, w = head.dims
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info(head.input_name, TensorProto.UINT8, [batch, h, w, 3]))
    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info("det_boxes", TensorProto.FLOAT, [batch, k, 4]),
                         helper.make_tensor_value_info("det_scores", TensorProto.FLOAT, [batch, k]),
                         helper.make_tensor_value_info("det_classes", TensorProto.INT32, [batch, k]),
                         helper.make_tensor_value_info("num_dets", TensorProto.INT32, [batch])])  # fmt: skip
    props = {p.key: p.value for p in model.metadata_props}
    props["end_to_end"] = json.dumps(asdict(cfg))
    helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    return model


def default_out(src: str | Path) -> Path:
    """``model.onnx`` -> ``model.e2e.onnx``."""
    src = Path(src)
    stem = src.name[: -len(".onnx")] if src.name.endswith(".onnx") else src.name
    return src.with_name(stem + ".e2e.onnx")


def convert(src: str | Path, out: str | Path | None = None, cfg: EndToEndConfig | None = None) -> Path:
    """Write the end-to-end graph of ``src`` to ``out`` (default ``default_out``) atomically, with its sidecar.

    The sidecar is the source's (or the metadata inside it) with ``extra["end_to_end"]``: the thresholds,
    input and outputs, which runners read to skip host decode and NMS.

    Example:
        >>> convert("runs/qat/qat/qat.int8.onnx", cfg=EndToEndConfig(conf=0.001, multi_label=True))
        PosixPath('runs/qat/qat/qat.int8.e2e.onnx')

    Raises:
        ToolchainError: ``src`` missing, unreadable or not a YOLOv8 detect export; ``out`` is ``src``.
    """
    import onnx

    src, cfg = Path(src), cfg or EndToEndConfig()
    out = Path(out) if out else default_out(src)
    if not src.is_file():
        raise ToolchainError(f"{src}: ONNX model not found; export one with 'toolchain export' or 'make ptq'")
    check_distinct_paths({"--out": out, "the sidecar of --out": sidecar_path(out)},
                         {"MODEL": src, "the sidecar of MODEL": sidecar_path(src)})  # fmt: skip
    try:
        model = onnx.load(str(src))
    except Exception as exc:  # protobuf raises its own DecodeError for a file that is not an ONNX
        raise ToolchainError(f"{src}: not a readable ONNX model ({exc})") from exc
    e2e = end_to_end_from_onnx(model, cfg, src)
    head = read_head(model, src)
    meta = ModelMetadata.find(src)
    if meta is None:
        logger.warning("%s: no sidecar and no class names inside; classes are named by id", src)
        size = tuple(d if isinstance(d, int) else 640 for d in head.dims[2:])
        meta = ModelMetadata(names=[str(i) for i in range(head.classes)], imgsz=size)
    if len(meta.names) != head.classes:
        raise ToolchainError(f"{src}: the metadata names {len(meta.names)} classes, the output has {head.classes}; "
                             "re-export the model so that its .json matches it")  # fmt: skip
    with atomic_path(out, keep_suffix=True, flag="--out") as tmp:
        onnx.save(e2e, str(tmp))
    extra = {**meta.extra, "end_to_end": {**asdict(cfg), "classes": head.classes, "input": "uint8 [B, H, W, 3] BGR",
                                          "outputs": list(END_TO_END_OUTPUTS)}}  # fmt: skip
    replace(meta, source=str(src), extra=extra).save(out)
    logger.info("Wrote %s (end to end: conf %g, IoU %g, max_det %d, %s)", out, cfg.conf, cfg.iou, cfg.max_det,
                "multi-label" if cfg.multi_label else "best class per box")  # fmt: skip
    return out


def graph_config(path: str | Path) -> EndToEndConfig | None:
    """The thresholds an end-to-end model was built with (its sidecar, else its own metadata); ``None`` if unknown."""
    meta = ModelMetadata.find(path) if sidecar_path(path).exists() else None
    if meta is not None and isinstance(meta.extra.get("end_to_end"), dict):
        raw = meta.extra["end_to_end"]
    elif str(path).endswith(".onnx"):
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        raw = json.loads(props["end_to_end"]) if "end_to_end" in props else None
    else:
        raw = None
    if not isinstance(raw, dict):
        return None
    return EndToEndConfig(**{k: raw[k] for k in ("conf", "iou", "max_det", "multi_label") if k in raw})


def warn_if_graph_differs(path: str | Path | None, cfg: PostprocessConfig) -> None:
    """Log where an end-to-end model's own thresholds differ from ``cfg``: the graph's decide (only a
    stricter conf, a smaller max_det and a class filter still apply on the host)."""
    graph = graph_config(path) if path is not None else None
    if graph is None:
        logger.warning("%s: an end-to-end model whose thresholds are unknown (no sidecar)", path)
        return
    pairs = [(k, getattr(graph, k), getattr(cfg, k)) for k in ("conf", "iou", "max_det", "multi_label")]
    differs = [f"{k} {built} (asked: {asked})" for k, built, asked in pairs if built != asked]
    if differs:
        logger.warning("%s: the end-to-end graph decodes and runs NMS with its own %s; rebuild it with "
                       "python -m deploy.end_to_end for other thresholds", path, ", ".join(differs))  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The command line; every default is ``EndToEndConfig``'s."""
    d = EndToEndConfig()
    p = argparse.ArgumentParser(prog="python -m deploy.end_to_end", description=__doc__.split("\n")[0])
    p.add_argument("model", help="a YOLOv8 detect ONNX (FP32 or QDQ INT8) with output [B, 4 + classes, anchors]")
    p.add_argument("--out", default=None, help="where to write it (default: MODEL.e2e.onnx)")
    p.add_argument("--conf", type=float, default=d.conf, help=f"class score a detection must exceed ({d.conf}; "
                   "0.001 for mAP)")  # fmt: skip
    p.add_argument("--iou", type=float, default=d.iou, help=f"NMS IoU threshold ({d.iou})")
    p.add_argument("--max-det", type=int, default=d.max_det, help=f"most detections per image ({d.max_det})")
    p.add_argument("--multi-label", action="store_true", help="one candidate per box and class above conf "
                   "(yolo val, for mAP) instead of the box's best class only (live)")  # fmt: skip
    return p


def _run(args: argparse.Namespace) -> None:
    convert(args.model, args.out, EndToEndConfig(args.conf, args.iou, args.max_det, args.multi_label))


def main(argv: list[str] | None = None) -> int:
    """Parse the flags and convert; a mistake is one ``error:`` line on stderr, exit status 1 (2 for a bad flag)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")  # fmt: skip
    return report_errors(_run, args)


if __name__ == "__main__":
    sys.exit(main())
