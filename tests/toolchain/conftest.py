from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained YOLOv8n with 10 classes saved as an ultralytics checkpoint (imgsz 64)."""
    from toolchain.data.signs import SIGN_CLASSES
    from toolchain.models.yolo import build_model

    torch.manual_seed(0)
    model = build_model("yolov8n.yaml", list(SIGN_CLASSES))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save({"model": model, "train_args": {"imgsz": 64}, "epoch": -1}, path)
    return path
