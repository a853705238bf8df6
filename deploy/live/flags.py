"""The command line of live detection (``deploy/infer.py``): its flags, their checks and ``--help``."""

from __future__ import annotations

import argparse

from base.limits import image_size_problem
from deploy.runtime import BACKEND_HELP, BACKENDS
from deploy.runtime.openvino_int8 import REMEDIES

DESCRIPTION = "Live traffic-sign detection: python deploy/infer.py --engine model.int8.engine (default camera)."
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
    """The ``infer`` parser: every flag checked as it is parsed (a bad value exits 2 naming the flag)."""
    p = argparse.ArgumentParser(
        prog="infer", description=DESCRIPTION, epilog=EPILOG,
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
                        "measured default: float), float (float convolutions, exact), weights7 (7-bit weights, "
                        "INT8 kernels, faster, one more bit of rounding), none (as it is: wrong)")
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
