"""What ``make gpu-check`` checks and with what: its config, and the backends that build, open and time engines
(TensorRT on a GPU; tests put ONNX Runtime in its place)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from base.errors import ToolchainError
from deploy.engine.build import engine_from_onnx
from deploy.engine.trt import TrtFeatures, import_tensorrt
from deploy.runtime.base import Runner
from deploy.runtime.onnxruntime import OnnxRuntimeRunner
from deploy.runtime.tensorrt import TensorRTRunner

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@dataclass(frozen=True)
class GpuCheckConfig:
    """What ``make gpu-check`` checks, and where it writes.

    Attributes:
        weights: The FP32 baseline checkpoint the ONNX files are made from.
        data: data.yaml: train images calibrate, val images compare and score.
        out: Results folder (ONNX files are reused from it when present).
        imgsz: Export and engine input size.
        peer: The peer's INT8 QDQ ONNX (ultralytics' QAT), or None.
        ptq_images: Calibration images of the PTQ QDQ ONNX (toolchain).
        calib_batches: Batches fed to TensorRT's INT8 calibrator (the calibrated engine).
        compare_images: Val images whose outputs are compared with ONNX Runtime.
        runs: Timed batch-1 runs per engine (after ``runs // 10`` warm-up runs).
        frames: Frames of the video run through ``deploy/infer.py``.
        cuda: CUDA library of the runner: ``pycuda`` or ``cuda-python``.
        tests: Run ``pytest -m "trt or gpu"`` first.
    """

    weights: str = str(SHARED / "models" / "road-signs-yolov8n-384.pt")
    data: str = str(SHARED / "datasets" / "road-signs" / "data.yaml")
    out: str = "benchmarks/results/gpu-check"
    imgsz: int = 384
    peer: str | None = None
    ptq_images: int = 256
    calib_batches: int = 32
    compare_images: int = 16
    runs: int = 200
    frames: int = 300
    cuda: str = "pycuda"
    tests: bool = True

    def __post_init__(self) -> None:
        for name in ("imgsz", "ptq_images", "calib_batches", "compare_images", "runs", "frames"):
            if getattr(self, name) < 1:
                raise ToolchainError(f"gpu-check: {name} must be at least 1, got {getattr(self, name)}")
        if self.cuda not in ("pycuda", "cuda-python"):
            raise ToolchainError(f"gpu-check: cuda must be pycuda or cuda-python, got '{self.cuda}'")


@dataclass
class Backends:
    """How engines are built, opened and timed: TensorRT by default; tests put ONNX Runtime in its place."""

    build: Callable  # (onnx, EngineConfig, out) -> engine path
    open_engine: Callable[[Path], Runner]
    open_onnx: Callable[[Path], Runner]
    calibrators: bool  # this TensorRT still has INT8 calibrators (up to 10.x)
    engine_backend: str = "tensorrt"  # deploy/infer.py --backend for an engine
    engine_suffix: str = ".engine"
    run: Callable = subprocess.run
    trtexec: str | None = None


def tensorrt_backends(cuda: str) -> Backends:
    """The real thing: deploy.engine's builder and TensorRTRunner, ONNX Runtime on the CPU as the reference."""
    return Backends(build=engine_from_onnx, open_engine=lambda p: TensorRTRunner(p, cuda),
                    open_onnx=lambda p: OnnxRuntimeRunner(p), calibrators=TrtFeatures.of(import_tensorrt()).calibrators,
                    trtexec=shutil.which("trtexec"))  # fmt: skip
