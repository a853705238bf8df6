"""An exponential moving average of a model's weights, the copy a trainer validates and saves."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from toolchain.quantization.quantized_model import quantizers


class ModelEMA:
    """Exponential moving average of a model's floating-point parameters and buffers (ramped up early).

    The copy's quantizers are on where the model's are (progressive quantization turns the model's on
    stage by stage; the state dict does not carry it), so the average is validated, and ``best.pt``
    picked, in the mode the epoch trained in.
    """

    def __init__(self, model: nn.Module, decay: float, updates: int = 0) -> None:
        self.ema = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.updates = decay, updates

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average one step towards ``model``'s current weights."""
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / 2000))
        source = model.state_dict()
        for name, value in self.ema.state_dict().items():
            if value.dtype.is_floating_point and name in source:
                value.mul_(d).add_(source[name].detach(), alpha=1 - d)
        for mine, theirs in zip(quantizers(self.ema), quantizers(model), strict=True):
            mine.enabled = theirs.enabled
