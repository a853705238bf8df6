"""End-to-end FPS of the live pipeline against model-only FPS, on a 640x640 video made from dataset images.

The video is written first (val images letterboxed to the size, repeated to ``--frames``); then the
pipelined loop that ``deploy/infer.py`` runs (``deploy.bench.pipeline.pipeline_summary``, the measurement
``make bench`` takes of every row) plays it with the chosen backend, and the ratio of end-to-end FPS
to the FPS of the inference stage alone, both measured in that one run, is printed with the time per
stage. The goal it checks: end-to-end at least 85% of model-only. Run by hand, no make target.

Example:
    $ python -m benchmarks.infer_video --model /tmp/b640/rs.int8.onnx --data ../shared/datasets/road-signs/data.yaml
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from base.errors import ToolchainError, report_errors
from deploy.bench.pipeline import make_video, pipeline_summary
from deploy.runtime import create_runner
from deploy.runtime.machine import machine_lines, machine_report

TARGET_RATIO = 0.85


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="infer_video", description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--model", required=True, help=".onnx at the video's size")
    p.add_argument("--data", required=True, help="data.yaml whose val images make the video")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--size", type=int, default=640)
    p.add_argument("--backend", default="openvino")
    p.add_argument("--threads", type=int, default=None)
    return p


def _run(a: argparse.Namespace) -> None:
    if not Path(a.model).is_file():
        raise ToolchainError(f"{a.model}: model not found")
    with tempfile.TemporaryDirectory() as tmp, create_runner(a.model, a.backend, threads=a.threads) as runner:
        video = make_video(a.data, Path(tmp) / "signs.avi", a.frames, a.size)
        summary = pipeline_summary(runner, video)
        machine = machine_report(runner, a.model)
    print(f"{video} via {runner.name}:\n{summary.table()}\n{machine_lines(machine)}")
    ratio = summary.fps / summary.model_fps
    print(f"end-to-end / model-only FPS: {ratio:.1%} (target >= {TARGET_RATIO:.0%})")


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return report_errors(_run, a)


if __name__ == "__main__":
    sys.exit(main())
