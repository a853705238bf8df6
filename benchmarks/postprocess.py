"""Time decode + NMS of real 640x640 head outputs (8400 candidates) at live and evaluation thresholds.

Each threshold's median is checked against its target (``TARGETS_MS``: 2 ms live, 10 ms for
evaluation) and printed with OK or OVER TARGET. Run by hand, no make target.

Example:
    $ python -m benchmarks.postprocess --weights ../shared/models/road-signs-yolov8n-384.pt \
          --data ../shared/datasets/road-signs/data.yaml
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from base.dataset import list_images, load_data_yaml
from base.errors import report_errors
from deploy.bench.timing import time_calls
from deploy.postprocess import PostprocessConfig, postprocess
from deploy.preprocess import preprocess
from deploy.runtime.onnxruntime import OnnxRuntimeRunner

TARGETS_MS = {0.25: 2.0, 0.001: 10.0}


def _onnx_at(weights: Path, imgsz: int, workdir: Path) -> Path:
    if weights.suffix == ".onnx":
        return weights
    # torch and ultralytics load only when a .pt must be exported first
    from toolchain.export.onnx import ExportConfig
    from toolchain.jobs.onnx_files import export_onnx
    from toolchain.models.yolo import load_model

    return export_onnx(load_model(weights), workdir / "model.onnx", ExportConfig(imgsz=imgsz))


def head_outputs(weights: Path, data: Path, imgsz: int, images: int) -> list[tuple[np.ndarray, list]]:
    """Raw head outputs ``[1, 4 + nc, N]`` of the first ``images`` val images, with their letterbox metas."""
    spec = load_data_yaml(data)
    paths = list_images(spec.splits["val"])[:images]
    with tempfile.TemporaryDirectory() as tmp, OnnxRuntimeRunner(_onnx_at(weights, imgsz, Path(tmp))) as runner:
        out = []
        for path in paths:
            batch, metas = preprocess([cv2.imread(str(path))], (imgsz, imgsz))
            out.append((runner.infer(batch)[0], metas))
    return out


def time_postprocess(outputs: list, cfg: PostprocessConfig, repeats: int) -> tuple[np.ndarray, float]:
    """Per-call times in ms over every output, ``repeats`` times each, and the mean detections kept."""
    times, kept = [], []
    for pred, metas in outputs:
        times += time_calls(lambda pred=pred, metas=metas: postprocess(pred, metas, cfg), repeats)
        kept.append(len(postprocess(pred, metas, cfg)[0]))  # the same detections as every timed call
    return np.array(times), float(np.mean(kept))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="postprocess", description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--weights", type=Path, required=True, help=".pt (exported at --imgsz) or .onnx")
    p.add_argument("--data", type=Path, required=True, help="data.yaml whose val images are fed")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--images", type=int, default=20)
    p.add_argument("--repeats", type=int, default=20)
    return p


def _run(args: argparse.Namespace) -> None:
    outputs = head_outputs(args.weights, args.data, args.imgsz, args.images)
    print(
        f"decode + NMS of {outputs[0][0].shape[-1]} candidates ({args.imgsz}x{args.imgsz}), "
        f"{len(outputs)} images x {args.repeats} runs, OpenCV threads: {cv2.getNumThreads()}"
    )
    for conf, multi_label in ((0.25, False), (0.001, True)):
        cfg = PostprocessConfig(conf=conf, multi_label=multi_label)
        times, kept = time_postprocess(outputs, cfg, args.repeats)
        target = TARGETS_MS[conf]
        verdict = "OK" if np.median(times) <= target else "OVER TARGET"
        print(
            f"conf {conf:<6} multi_label={multi_label!s:<5} median {np.median(times):.3f} ms  p90 "
            f"{np.percentile(times, 90):.3f} ms  max {times.max():.3f} ms  kept {kept:.0f}/image  "
            f"target <= {target} ms: {verdict}"
        )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return report_errors(_run, args)


if __name__ == "__main__":
    sys.exit(main())
