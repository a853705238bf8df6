"""Shared fixtures: tiny synthetic datasets and the paths of ../shared (skipped where absent)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
ROAD_SIGNS = SHARED / "datasets" / "road-signs" / "data.yaml"
SHARED_MODEL = SHARED / "models" / "road-signs-yolov8n-384.pt"


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24/8-image synthetic dataset at 128 px; returns its data.yaml."""
    from toolchain.data.synthetic import SyntheticConfig, generate_dataset

    out = tmp_path_factory.mktemp("synthetic") / "tiny"
    return generate_dataset(out, SyntheticConfig(n_train=24, n_val=8, imgsz=128, min_size=12, max_size=48, workers=1))


@pytest.fixture(scope="session")
def road_signs() -> Path:
    """The real road-signs data.yaml from ../shared, or skip."""
    if not ROAD_SIGNS.is_file():
        pytest.skip(f"{ROAD_SIGNS} absent: ../shared is not beside the repository")
    return ROAD_SIGNS


@pytest.fixture(scope="session")
def shared_model() -> Path:
    """The FP32 road-signs baseline from ../shared, or skip."""
    if not SHARED_MODEL.is_file():
        pytest.skip(f"{SHARED_MODEL} absent: ../shared is not beside the repository")
    return SHARED_MODEL


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained YOLOv8n with the 10 synthetic classes saved as an ultralytics checkpoint (imgsz 64)."""
    torch = pytest.importorskip("torch")
    from toolchain.data.signs import SIGN_CLASSES
    from toolchain.models.yolo import build_model

    torch.manual_seed(0)
    model = build_model("yolov8n.yaml", list(SIGN_CLASSES))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save({"model": model, "train_args": {"imgsz": 64}, "epoch": -1}, path)
    return path


@pytest.fixture()
def make_video():
    """Writes a small MJPG .avi of gradient frames and returns its path."""

    def make(path, frames: int = 12, size: tuple[int, int] = (96, 64)) -> str:
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
        for i in range(frames):
            writer.write(np.full((size[1], size[0], 3), (10 * i) % 256, np.uint8))
        writer.release()
        return str(path)

    return make
