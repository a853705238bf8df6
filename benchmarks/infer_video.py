"""End-to-end FPS of ``deploy/infer.py`` against model-only FPS, on a 640x640 video made from dataset images.

The video is written first (val images letterboxed to the size, repeated to ``--frames``); then the
pipelined loop runs it with the chosen backend, and the ratio of end-to-end FPS to the FPS of the
inference stage alone, both measured in that one run, is printed with the time per stage.

Example:
    $ python -m benchmarks.infer_video --model /tmp/b640/rs.int8.onnx --data ../shared/datasets/road-signs/data.yaml
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from benchmarks.suite import make_video
from deploy.infer import build_parser, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help=".onnx at the video's size")
    parser.add_argument("--data", required=True, help="data.yaml whose val images make the video")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--backend", default="openvino")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(args.data, Path(tmp) / "signs.avi", args.frames, args.size)
        argv = ["--model", args.model, "--source", str(video), "--backend", args.backend]
        summary = run(build_parser().parse_args(argv + (["--threads", str(args.threads)] if args.threads else [])))
    ratio = summary["fps"] / summary["model_fps"]
    print(f"end-to-end / model-only FPS: {ratio:.1%} (target >= 85%)")


if __name__ == "__main__":
    main()
