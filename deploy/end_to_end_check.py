"""Is the end-to-end graph worth it? Its mAP against the host path, and host ms per frame before and after.

    $ python -m deploy.end_to_end_check map --onnx model.onnx --data data.yaml        # mAP, host vs in-graph NMS
    $ python -m deploy.end_to_end_check time --onnx model640.onnx --data data.yaml    # ms per 1080p frame

``map`` builds the end-to-end graph at ``yolo val``'s thresholds (conf 0.001, IoU 0.7, 300, multi-label)
and evaluates both on ONNX Runtime. ``time`` upscales val images to a 1920x1080 source and times, in
one run and round-robin (so a neighbour's load falls on all alike), three ways of handling one frame:
``before`` (``letterbox`` + ``to_tensor``, host decode + NMS: the code as it was), ``buffers``
(``Preprocessor`` into a kept float buffer, host decode + NMS) and ``end-to-end`` (uint8 canvas in,
decode + NMS inside inference). One thread everywhere: OpenCV, ONNX Runtime.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from base.dataset import list_images, load_data_yaml, load_split
from base.errors import report_errors
from deploy.end_to_end import EndToEndConfig, convert
from deploy.evaluate import coco_map, predict_split
from deploy.postprocess import PostprocessConfig, from_end_to_end, postprocess
from deploy.preprocess import Preprocessor, letterbox, to_tensor
from deploy.runtime.onnxruntime import OnnxRuntimeRunner

SOURCE = (1080, 1920)
LIVE = PostprocessConfig(conf=0.25, iou=0.7, multi_label=False)


def compare_map(onnx: Path, data: Path, threads: int = 1) -> dict:
    """mAP50-95 and mAP50 of ``onnx`` with host decode + NMS and of its end-to-end graph (ONNX Runtime, val),
    and how many images got other detections."""
    split = load_split(load_data_yaml(data), "val")
    cfg = PostprocessConfig()
    with tempfile.TemporaryDirectory() as tmp:
        e2e = convert(onnx, Path(tmp) / "model.e2e.onnx", EndToEndConfig(cfg.conf, cfg.iou, cfg.max_det, True))
        dets = {}
        for name, path in (("host", onnx), ("end-to-end", e2e)):
            with OnnxRuntimeRunner(path, threads=threads) as runner:
                dets[name] = predict_split(runner, split, cfg=cfg)
    differ = sum(not _same(a, b) for a, b in zip(dets["host"], dets["end-to-end"]))
    return {"images": len(split.images), **{k: coco_map(split, d, cfg.max_det) for k, d in dets.items()},
            "images with other detections": differ}  # fmt: skip


def _same(a, b) -> bool:
    return len(a) == len(b) and bool(np.array_equal(a.classes, b.classes) and np.allclose(a.boxes, b.boxes, atol=1e-3)
                                     and np.allclose(a.scores, b.scores, atol=1e-6))  # fmt: skip


def source_frames(data: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` val images of ``data`` stretched to a 1920x1080 source."""
    paths = list_images(load_data_yaml(data).splits["val"])[:count]
    return [cv2.resize(cv2.imread(str(p)), SOURCE[::-1], interpolation=cv2.INTER_LINEAR) for p in paths]


def _ways(raw: OnnxRuntimeRunner, e2e: OnnxRuntimeRunner, imgsz: tuple[int, int]) -> dict[str, tuple]:
    """Each way: (preprocess, infer, postprocess) taking the previous step's result."""
    float_prep = Preprocessor(imgsz)
    uint8_prep = Preprocessor(imgsz, uint8_nhwc=True)

    def before(img):
        boxed, meta = letterbox(img, imgsz)
        return to_tensor([boxed]), [meta]

    def host_post(pred, metas):
        return postprocess(pred[0], metas, LIVE)

    def e2e_post(pred, metas):
        return from_end_to_end(dict(zip(e2e.output_names, pred)), metas, LIVE)

    return {"before": (before, raw.infer, host_post), "buffers": (lambda img: float_prep([img]), raw.infer, host_post),
            "end-to-end": (lambda img: uint8_prep([img]), e2e.infer, e2e_post)}  # fmt: skip


def _timed(fn: Callable, *args) -> tuple[object, float]:
    t0 = time.perf_counter()
    out = fn(*args)
    return out, (time.perf_counter() - t0) * 1e3


def time_host(onnx: Path, data: Path, frames: int = 20, repeats: int = 3) -> dict[str, dict[str, float]]:
    """Median ms per 1080p frame of preprocess, inference and postprocess for each way (see the module doc).

    ``onnx`` is a YOLOv8 detect ONNX at its own input size (640 for the figures in docs/results.md).
    """
    cv2.setNumThreads(1)
    images = source_frames(data, frames)
    with tempfile.TemporaryDirectory() as tmp:
        e2e_path = convert(onnx, Path(tmp) / "model.e2e.onnx", EndToEndConfig(LIVE.conf, LIVE.iou, LIVE.max_det))
        with OnnxRuntimeRunner(onnx, threads=1) as raw, OnnxRuntimeRunner(e2e_path, threads=1) as e2e:
            ways = _ways(raw, e2e, raw.image_size)
            times: dict[str, dict[str, list[float]]] = {w: {"pre": [], "infer": [], "post": []} for w in ways}
            for i in range(repeats + 1):  # the first round warms up
                for img in images:
                    for way, (pre, infer, post) in ways.items():
                        (batch, metas), t_pre = _timed(pre, img)
                        pred, t_infer = _timed(infer, batch)
                        _, t_post = _timed(post, pred, metas)
                        if i:
                            for key, t in (("pre", t_pre), ("infer", t_infer), ("post", t_post)):
                                times[way][key].append(t)
    out = {}
    for way, t in times.items():
        med = {k: statistics.median(v) for k, v in t.items()}
        out[way] = {**med, "host": statistics.median(a + b for a, b in zip(t["pre"], t["post"]))}
    return out


def time_table(times: dict[str, dict[str, float]]) -> str:
    """The figures of ``time_host`` as a Markdown table."""
    lines = ["| way | preprocess ms | inference ms | postprocess ms | host (pre + post) ms |", "|---|---|---|---|---|"]
    for way, t in times.items():
        lines.append(f"| {way} | {t['pre']:.2f} | {t['infer']:.1f} | {t['post']:.2f} | {t['host']:.2f} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m deploy.end_to_end_check", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    for name, text in (("map", "mAP of host decode + NMS against the end-to-end graph"),
                       ("time", "host ms per 1080p frame before and after")):  # fmt: skip
        s = sub.add_parser(name, help=text)
        s.add_argument("--onnx", type=Path, required=True, help="a YOLOv8 detect ONNX (its own input size is used)")
        s.add_argument("--data", type=Path, required=True, help="data.yaml (its val split)")
    sub.choices["time"].add_argument("--frames", type=int, default=20)
    sub.choices["time"].add_argument("--repeats", type=int, default=3)
    return p


def _run(args: argparse.Namespace) -> None:
    if args.what == "map":
        r = compare_map(args.onnx, args.data)
        host, e2e = r["host"], r["end-to-end"]
        print(f"{r['images']} images: host mAP50-95 {host.map50_95:.4f} mAP50 {host.map50:.4f}; end-to-end "
              f"{e2e.map50_95:.4f} / {e2e.map50:.4f}; difference {e2e.map50_95 - host.map50_95:+.4f}; "
              f"images with other detections: {r['images with other detections']}")  # fmt: skip
    else:
        print(f"{args.onnx} from a {SOURCE[1]}x{SOURCE[0]} source, one thread, median of {args.frames} frames x "
              f"{args.repeats}:\n{time_table(time_host(args.onnx, args.data, args.frames, args.repeats))}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Parse the flags and run; a mistake is one ``error:`` line."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return report_errors(_run, args)


if __name__ == "__main__":
    sys.exit(main())
