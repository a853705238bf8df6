"""Live traffic-sign detection: ``python deploy/infer.py --engine model.int8.engine`` (default camera).

Sources: the default camera (no ``--source``), a camera index, an image, a folder, a video file, an
RTSP URL or a GStreamer pipeline. Outputs: ``--show`` (window), ``--save`` (video file or image
folder), ``--json`` (JSON lines), ``--summary`` (run summary JSON); every output path is checked
before the run. At the end (or on Ctrl-C / SIGTERM, which finalise the outputs) it prints frames,
FPS end to end and model only, and p50/p99 per stage.

Example:
    $ python deploy/infer.py --model runs/qat/demo/qat.int8.onnx --source video.mp4 --save out.mp4
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from base.errors import EXIT_INTERRUPTED, EXIT_OK, ToolchainError, report_errors  # noqa: E402
from base.limits import image_size_problem  # noqa: E402
from deploy.runtime import BACKEND_HELP, BACKENDS, ENGINE_SUFFIXES  # noqa: E402
from deploy.runtime.openvino_int8 import REMEDIES  # noqa: E402

logger = logging.getLogger("infer")
EPILOG = (
    "backends:\n" + "\n".join(f"  {name:<17} {text}" for name, text in BACKEND_HELP.items())
    + "\n\nexit status: 0 done, 1 error (one line on stderr), 2 bad flag, 130 Ctrl-C, 143 SIGTERM;"
    " Ctrl-C and SIGTERM finalise --save/--json/--summary and print the summary first"
)  # fmt: skip


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _image_size(text: str) -> int:
    value = _positive_int(text)
    problem = image_size_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a class id >= 0, got {value}")
    return value


def _unit_float(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="infer", description=__doc__.split("\n\n")[0].replace("``", ""), epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--model", "--engine", dest="model", required=True,
                   help=".onnx model (with its .json sidecar) or TensorRT .engine/.plan")  # fmt: skip
    p.add_argument("--source", default=None,
                   help="camera index, image, folder, video, rtsp:// URL or GStreamer pipeline (default: camera 0; "
                   "on a Jetson without a USB camera, the CSI camera)")  # fmt: skip
    p.add_argument("--backend", default="auto", choices=BACKENDS, metavar="BACKEND",
                   help=f"one of {', '.join(BACKENDS)} (default: auto; see below)")  # fmt: skip
    p.add_argument("--precision", default="f32", choices=("f32", "bf16"),
                   help="OpenVINO only: precision hint for its float layers (default: f32)")  # fmt: skip
    p.add_argument("--allow-invalid-qdq", action="store_true",
                   help="run a QDQ ONNX whose scales are not finite and positive (refused: it finds nothing)")
    p.add_argument("--int8-remedy", default="auto", choices=REMEDIES,
                   help="OpenVINO only, an INT8 model on a CPU whose INT8 self-check fails (no VNNI): auto (the "
                        "measured default), float, weights7 (7-bit weights, INT8 kernels), none (as it is: wrong)")
    p.add_argument("--threads", type=_positive_int, default=None, help="CPU threads (default: the backend's own)")
    p.add_argument("--cuda", default="pycuda", choices=("pycuda", "cuda-python"),
                   help="TensorRT only: CUDA library (default: pycuda)")  # fmt: skip
    p.add_argument("--cuda-graph", action="store_true", help="TensorRT only: replay as a CUDA graph (cuda-python)")
    p.add_argument("--imgsz", type=_image_size, default=None,
                   help="input size for a model with a dynamic size (default: the model's, else 640)")  # fmt: skip
    p.add_argument("--conf", type=_unit_float, default=0.25, help="minimum score (default: 0.25)")
    p.add_argument("--iou", type=_unit_float, default=0.7, help="NMS IoU threshold (default: 0.7)")
    p.add_argument("--max-det", type=_positive_int, default=300, help="detections per frame (default: 300)")
    p.add_argument("--classes", type=_non_negative_int, nargs="*", default=None,
                   help="keep only these class ids (default: all)")  # fmt: skip
    p.add_argument("--show", action="store_true", help="open a window (q or Esc quits); needs a display")
    p.add_argument("--save", default=None, help="annotated video (.mp4/.avi/.mkv/.mov) or image folder")
    p.add_argument("--json", default=None, help="detections as JSON lines, one line per frame")
    p.add_argument("--summary", default=None, help="write the run summary (FPS, stage times) as JSON")
    p.add_argument("--queue", type=_positive_int, default=4, help="frames waiting between stages (default: 4)")
    return p


def _names(model: Path) -> list[str]:
    from base.metadata import ModelMetadata, sidecar_path

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


def _input_size(runner, model: Path, imgsz: int | None) -> tuple[int, int]:
    shape = runner.input_shape
    if len(shape) != 4 or shape[1] not in (3, None):
        raise ToolchainError(f"{model}: input {list(shape)} is not an image batch [N, 3, H, W] of a YOLOv8 detector")
    if shape[0] not in (None, 1):
        raise ToolchainError(
            f"{model}: static batch {shape[0]}, but live detection feeds one frame at a time; export it with batch 1 "
            "or a dynamic batch"
        )
    return shape[2] or imgsz or 640, shape[3] or imgsz or 640


def _check_detector(runner, model: Path, imgsz: tuple[int, int], names: list[str]) -> None:
    """One inference on a blank frame (a warm-up too): the output must be YOLOv8's ``[1, 4 + classes, anchors]``
    with as many classes as the sidecar names."""
    import numpy as np

    try:
        out = runner.infer(np.zeros((1, 3, *imgsz), np.float32))[0]
    except Exception as exc:  # each backend raises its own types for a graph it cannot run
        raise ToolchainError(f"{model}: a test inference at {imgsz[0]}x{imgsz[1]} failed ({exc})") from exc
    if out.ndim != 3 or out.shape[1] <= 4:
        raise ToolchainError(
            f"{model}: output {list(out.shape)} is not a YOLOv8 detection output [1, 4 + classes, anchors]"
        )
    if names and len(names) != out.shape[1] - 4:
        raise ToolchainError(
            f"{model}: the sidecar names {len(names)} classes, the model outputs {out.shape[1] - 4}; "
            "re-export the model so that its .json matches it"
        )


def _open_source(spec: str | None):
    from deploy.sources import open_default_camera, open_source

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
    from base.fileio import write_json
    from deploy.outputs import Outputs, check_outputs
    from deploy.pipeline import PipelineConfig, run_pipeline
    from deploy.postprocess import PostprocessConfig
    from deploy.runtime import create_runner
    from deploy.runtime.machine import machine_lines, machine_report

    model = Path(args.model)
    _check_model(model)
    from base.metadata import sidecar_path

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


if __name__ == "__main__":
    sys.exit(main())
