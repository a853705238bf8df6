"""Live traffic-sign detection: ``python deploy/infer.py --model model.int8.onnx --source 0``.

Sources: an image, a folder, a video file, a camera index, an RTSP URL or a GStreamer pipeline.
Outputs: ``--show`` (window), ``--save`` (video file or image folder), ``--json`` (JSON lines).
At the end (or on Ctrl-C) it prints frames, FPS end to end and model only, and p50/p99 per stage.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploy.errors import ToolchainError, report_errors  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="infer", description=__doc__.split("\n")[0])
    p.add_argument("--model", "--engine", dest="model", required=True, help=".onnx model (with its .json sidecar)")
    p.add_argument("--source", required=True, help="image, folder, video, camera index, rtsp:// URL or GStreamer")
    p.add_argument("--backend", default="auto", help="auto, openvino or onnxruntime")
    p.add_argument("--precision", default="f32", help="OpenVINO hint for float layers: f32 or bf16")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--cuda", default="pycuda", help="CUDA library for engines: pycuda or cuda-python")
    p.add_argument("--cuda-graph", action="store_true", help="replay the engine as a CUDA graph (cuda-python)")
    p.add_argument("--imgsz", type=int, default=None, help="input size for a model with a dynamic size")
    p.add_argument("--conf", type=float, default=0.25)
    p.add_argument("--iou", type=float, default=0.7)
    p.add_argument("--max-det", type=int, default=300)
    p.add_argument("--classes", type=int, nargs="*", default=None, help="keep only these class ids")
    p.add_argument("--show", action="store_true", help="open a window (q or Esc quits)")
    p.add_argument("--save", default=None, help="annotated video (.mp4/.avi/.mkv) or image folder")
    p.add_argument("--json", default=None, help="detections as JSON lines")
    p.add_argument("--summary", default=None, help="write the run summary (FPS, stage times) as JSON")
    p.add_argument("--queue", type=int, default=4, help="frames waiting between stages")
    return p


def _names(model: Path) -> list[str]:
    from deploy.metadata import ModelMetadata, sidecar_path

    if sidecar_path(model).is_file():
        return ModelMetadata.load(model).names
    logging.getLogger("infer").warning("%s: no sidecar; classes are shown by id", sidecar_path(model))
    return []


def run(args: argparse.Namespace) -> dict:
    """Open the source, the runner and the outputs, run the pipeline, close everything; returns the summary."""
    from deploy.outputs import Outputs
    from deploy.pipeline import PipelineConfig, run_pipeline
    from deploy.postprocess import PostprocessConfig
    from deploy.runtime import create_runner
    from deploy.sources import open_source

    model = Path(args.model)
    if not model.is_file():
        raise ToolchainError(f"{model}: model not found; export one with 'make ptq' or 'make qat'")
    post = PostprocessConfig(args.conf, args.iou, args.max_det, multi_label=False,
                             classes=tuple(args.classes) if args.classes else None)  # fmt: skip
    with open_source(args.source) as source, \
            create_runner(model, args.backend, threads=args.threads, precision=args.precision, cuda=args.cuda,
                          cuda_graph=args.cuda_graph) as runner:  # fmt: skip
        _, _, h, w = runner.input_shape
        imgsz = (h or args.imgsz or 640, w or args.imgsz or 640)
        outputs = Outputs(_names(model), args.show, args.save, args.json)
        try:
            summary = run_pipeline(source, runner, outputs, PipelineConfig(imgsz, post, args.queue))
        finally:
            outputs.close()
    print(f"{source.name} via {runner.name}:\n{summary.table()}")
    if args.summary:
        Path(args.summary).write_text(json.dumps(summary.to_dict(), indent=2))
    return summary.to_dict()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    return report_errors(run, args)


if __name__ == "__main__":
    sys.exit(main())
