"""A ``deploy.runtime.Runner`` over a PyTorch model, so ``.pt`` files go through the same evaluator."""

from __future__ import annotations

import numpy as np
import torch

from deploy.runtime.base import Runner


class TorchRunner(Runner):
    """Run a YOLOv8 ``nn.Module`` in eval mode on CPU or GPU.

    Args:
        model: A detection model; its head's decoded output is returned.
        imgsz: Square input size (PyTorch models take any size).
        device: Torch device.
    """

    name = "pytorch"

    def __init__(self, model: torch.nn.Module, imgsz: int, device: str = "cpu") -> None:
        self.model = model.eval().to(device)
        self.imgsz = imgsz
        self.device = device

    @property
    def input_shape(self) -> tuple[int | None, int, int, int]:
        return (None, 3, self.imgsz, self.imgsz)

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode():
            out = self.model(torch.from_numpy(batch).to(self.device))
        out = out[0] if isinstance(out, (tuple, list)) else out
        return [out.float().cpu().numpy()]

    def close(self) -> None:
        self.model = None
