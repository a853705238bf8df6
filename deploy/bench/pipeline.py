"""The ``deploy/infer.py`` pipeline as a benchmark: a video of val images, run through the pipelined loop.

Example:
    >>> video = make_video("data.yaml", Path("val.avi"), frames=150, size=384)
    >>> pipeline_summary(runner, video).fps
"""

from __future__ import annotations

from pathlib import Path

import cv2

from base.dataset import list_images, load_data_yaml
from deploy.live.outputs import Outputs
from deploy.live.pipeline import PipelineConfig, PipelineSummary, run_pipeline
from deploy.live.sources import open_source
from deploy.preprocess import letterbox
from deploy.runtime.base import Runner


def make_video(data: str | Path, path: Path, frames: int, size: int) -> Path:
    """An MJPG video of val images letterboxed to ``size`` x ``size`` (repeated up to ``frames``)."""
    images = list_images(load_data_yaml(data).splits["val"])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (size, size))
    for i in range(frames):
        writer.write(letterbox(cv2.imread(str(images[i % len(images)])), (size, size))[0])
    writer.release()
    return path


def pipeline_summary(runner: Runner, video: Path) -> PipelineSummary:
    """The pipelined loop (capture, inference, decode + NMS on threads of their own, no outputs, live
    thresholds) over ``video`` at the runner's input size: end-to-end and model-only FPS, time per stage."""
    size = runner.input_shape[2]
    with open_source(str(video)) as source:
        return run_pipeline(source, runner, Outputs([]), PipelineConfig((size, size)))
