"""Live detection wired end to end for ``deploy/infer.py`` and ``deploy/entrypoint.py``: the model and
outputs checked, a runner, a source and the outputs opened, the pipeline run, everything finalised.

Example:
    >>> from deploy.live.app import main
    >>> main(["--model", "runs/qat/demo/qat.int8.onnx", "--source", "video.mp4", "--save", "out.mp4"])
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from base.errors import EXIT_INTERRUPTED, EXIT_OK, ToolchainError, report_errors
from base.fileio import write_json
from base.metadata import ModelMetadata, sidecar_path
from deploy.end_to_end import warn_if_graph_differs
from deploy.live.flags import build_parser
from deploy.live.output_paths import check_outputs
from deploy.live.outputs import Outputs
from deploy.live.pipeline import PipelineConfig, run_pipeline
from deploy.live.sources import FrameSource, open_default_camera, open_source
from deploy.postprocess import END_TO_END_OUTPUTS, PostprocessConfig
from deploy.runtime import ENGINE_SUFFIXES, create_runner
from deploy.runtime.base import Runner
from deploy.runtime.machine import machine_lines, machine_report

logger = logging.getLogger("infer")


def _names(model: Path) -> list[str]:
    meta = ModelMetadata.find(model)  # the sidecar, else the metadata inside an ONNX
    if meta is None:
        logger.warning("%s: no sidecar and no class names in the model; classes are shown by id", sidecar_path(model))
        return []
    return meta.names


def _check_model(model: Path) -> None:
    if model.is_file():
        return
    if model.suffix in ENGINE_SUFFIXES:
        raise ToolchainError(
            f"{model}: engine not found; build it with 'make engine' (python -m deploy.engine.build MODEL.int8.onnx) "
            "where TensorRT is installed, or run the ONNX itself: --model runs/qat/qat/qat.int8.onnx (from make qat)"
        )
    raise ToolchainError(f"{model}: model not found; export one with 'make ptq' or 'make qat'")


def _input_size(runner: Runner, model: Path, imgsz: int | None) -> tuple[int, int]:
    shape = runner.input_shape
    e2e = runner.end_to_end
    channels = shape[3] if e2e and len(shape) == 4 else shape[1] if len(shape) == 4 else None
    if len(shape) != 4 or channels not in (3, None):
        expected = "[N, H, W, 3] uint8 of an end-to-end model" if e2e else "[N, 3, H, W] of a YOLOv8 detector"
        raise ToolchainError(f"{model}: input {list(shape)} is not an image batch {expected}")
    if shape[0] not in (None, 1):
        raise ToolchainError(
            f"{model}: static batch {shape[0]}, but live detection feeds one frame at a time; export it with batch 1 "
            "or a dynamic batch"
        )
    h, w = runner.image_size
    return h or imgsz or 640, w or imgsz or 640


def _check_detector(runner: Runner, model: Path, imgsz: tuple[int, int], names: list[str]) -> None:
    """One inference on a blank frame (a warm-up too): the output must be YOLOv8's ``[1, 4 + classes, anchors]``
    with as many classes as the sidecar names (or an end-to-end model's detections)."""
    e2e = runner.end_to_end
    blank = np.zeros((1, *imgsz, 3), np.uint8) if e2e else np.zeros((1, 3, *imgsz), np.float32)
    try:
        outs = runner.infer(blank)
    except Exception as exc:  # each backend raises its own types for a graph it cannot run
        raise ToolchainError(f"{model}: a test inference at {imgsz[0]}x{imgsz[1]} failed ({exc})") from exc
    if e2e:
        _check_end_to_end(runner, model, outs)
        return
    out = outs[0]
    if out.ndim != 3 or out.shape[1] <= 4:
        raise ToolchainError(
            f"{model}: output {list(out.shape)} is not a YOLOv8 detection output [1, 4 + classes, anchors]"
        )
    if names and len(names) != out.shape[1] - 4:
        raise ToolchainError(
            f"{model}: the sidecar names {len(names)} classes, the model outputs {out.shape[1] - 4}; "
            "re-export the model so that its .json matches it"
        )


def _check_end_to_end(runner: Runner, model: Path, outs: list[np.ndarray]) -> None:
    shapes = {name: list(o.shape) for name, o in zip(runner.output_names or END_TO_END_OUTPUTS, outs)}
    boxes, scores = shapes.get("det_boxes", []), shapes.get("det_scores")
    if len(outs) != len(END_TO_END_OUTPUTS) or len(boxes) != 3 or boxes[2] != 4 or scores != boxes[:2]:
        raise ToolchainError(
            f"{model}: outputs {shapes} are not an end-to-end model's {list(END_TO_END_OUTPUTS)} "
            "(det_boxes [1, K, 4], det_scores [1, K]); rebuild it with python -m deploy.end_to_end"
        )


def _open_source(spec: str | None) -> FrameSource:
    if spec is not None:
        return open_source(spec)
    source = open_default_camera()
    logger.info("No --source given: opened %s, the default camera (pass --source to choose another)", source.name)
    return source


def run(args: argparse.Namespace) -> dict:
    """Check the outputs, open the runner, the source and the outputs, run the pipeline, finalise
    everything; returns the summary (``interrupted`` is true after Ctrl-C or SIGTERM).

    Raises:
        ToolchainError: A missing model, a bad output path, no display, a source that cannot be
            opened, a failed write.
    """
    model = Path(args.model)
    _check_model(model)
    check_outputs(args.show, args.save, args.json, args.summary,
                  inputs=(args.model, sidecar_path(model), args.source or ""))  # fmt: skip
    post = PostprocessConfig(args.conf, args.iou, args.max_det, multi_label=False,
                             classes=tuple(args.classes) if args.classes else None)  # fmt: skip
    with create_runner(model, args.backend, threads=args.threads, precision=args.precision,
                       int8_remedy=args.int8_remedy, allow_invalid_qdq=args.allow_invalid_qdq, cuda=args.cuda,
                       cuda_graph=args.cuda_graph) as runner:  # fmt: skip
        names = _names(model)
        imgsz = _input_size(runner, model, args.imgsz)
        _check_detector(runner, model, imgsz, names)
        if runner.end_to_end:
            warn_if_graph_differs(model, post)
        with _open_source(args.source) as source, Outputs(names, args.show, args.save, args.json) as outputs:
            summary = run_pipeline(source, runner, outputs, PipelineConfig(imgsz, post, args.queue))
            summary.interrupted |= outputs.stopped_by is not None
        machine = machine_report(runner, model)
    print(f"{source.name} via {runner.name}:\n{summary.table()}\n{machine_lines(machine)}")
    if args.summary:
        write_json(args.summary, {**summary.to_dict(), "machine": machine})
    return {**summary.to_dict(), "machine": machine}


def run_command(args: argparse.Namespace) -> int:
    """``run`` for the command line: its exit status (130 when interrupted; 143 comes from SIGTERM)."""
    return EXIT_INTERRUPTED if run(args)["interrupted"] else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Parse the flags and run; a mistake is one ``error:`` line on stderr (see the exit statuses in ``--help``)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    return report_errors(run_command, args)
