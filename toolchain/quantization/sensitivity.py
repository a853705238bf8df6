"""Sensitivity analysis: the mAP lost when only one fusion group is quantized, ranked; and the
mixed-precision config that keeps the k most sensitive groups float (``toolchain.jobs.sensitivity`` writes
them). A cheaper ranking, needing no labels, is ``group_sqnr``: the SQNR of the detection head's outputs
with only one group quantized, on a few calibration batches (the ``sensitive`` quant preset uses it).

A fusion group is the set of convs that read one shared input quantizer (a C2f's concat and its
bottlenecks, the readers of a concat in the neck...), so keeping a group float never leaves a tensor
with Q nodes of two kinds, and no TensorRT fusion is broken.

Example:
    >>> rows = layer_sensitivity(ptq_model, split, imgsz=384)
    >>> mixed_precision_config(rows, k=2, base=QuantConfig())["overrides"][-1]
    {'pattern': 'model\\.2\\.cv2\\.conv', 'skip': True}
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from base.dataset import Split
from deploy.evaluate import evaluate
from toolchain.config.files import SCHEMA_VERSION
from toolchain.models.torch_runner import TorchRunner
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.modules import QuantConv2d
from toolchain.quantization.quantized_model import quantization_disabled, quantizers

logger = logging.getLogger(__name__)


@dataclass
class GroupSensitivity:
    """mAP50-95 with only this group quantized, and the loss against float."""

    group: list[str]
    map50_95: float
    loss: float


@dataclass
class GroupSQNR:
    """SQNR (dB) of the detection head's raw outputs with only this group quantized, against float."""

    group: list[str]
    sqnr: float


def fusion_groups(model: nn.Module) -> list[list[str]]:
    """Quantized convs grouped by the input quantizer object they share, in model order."""
    groups: dict[int, list[str]] = {}
    for name, module in model.named_modules():
        if isinstance(module, QuantConv2d):
            groups.setdefault(id(module.input_quantizer), []).append(name)
    return list(groups.values())


def _enable_only(model: nn.Module, group: list[str]) -> None:
    for q in quantizers(model):
        q.enabled = False
    for name in group:
        conv = model.get_submodule(name)
        conv.input_quantizer.enabled = conv.weight_quantizer.enabled = True


def layer_sensitivity(model: nn.Module, split: Split, imgsz: int, device: str = "cpu") -> list[GroupSensitivity]:
    """Evaluate the calibrated model once per fusion group with only that group quantized; most sensitive first."""
    with quantization_disabled(model), TorchRunner(model, imgsz, device) as runner:
        reference = evaluate(runner, split, imgsz).map50_95
    logger.info("Float mAP50-95 on %d images: %.4f", len(split.images), reference)
    states = [(q, q.enabled) for q in quantizers(model)]
    rows = []
    try:
        for group in tqdm(fusion_groups(model), desc="sensitivity", unit="group"):
            _enable_only(model, group)
            with TorchRunner(model, imgsz, device) as runner:
                score = evaluate(runner, split, imgsz).map50_95
            rows.append(GroupSensitivity(group, score, reference - score))
    finally:
        for q, state in states:
            q.enabled = state
    return sorted(rows, key=lambda r: r.loss, reverse=True)


def _head_outputs(out: object) -> torch.Tensor:
    """The Detect head's raw outputs in eval mode: box distributions and class logits, one tensor (the
    decoded output mixes pixel coordinates with probabilities, so the boxes would drown the classes)."""
    raw = out[1] if isinstance(out, (tuple, list)) else out
    if isinstance(raw, dict):
        return torch.cat([raw["boxes"], raw["scores"]], 1)
    return out[0] if isinstance(out, (tuple, list)) else out


@torch.no_grad()
def group_sqnr(model: nn.Module, batches: list[np.ndarray], device: str = "cpu") -> list[GroupSQNR]:
    """Run the batches once per fusion group of the calibrated ``model`` with only that group quantized:
    the head's SQNR against float, per group, lowest (most sensitive) first. ``model``'s quantizers are
    left as they were.

    Args:
        model: A calibrated fake-quant model (``calibrated_model``).
        batches: NCHW float32 batches (a few calibration batches: one forward per group and batch).
        device: Where it runs.
    """
    model.eval().to(device)
    inputs = [torch.from_numpy(b).to(device) for b in batches]
    with quantization_disabled(model):
        reference = [_head_outputs(model(x)) for x in inputs]
    signal = sum(float(r.double().pow(2).sum()) for r in reference)
    states = [(q, q.enabled) for q in quantizers(model)]
    rows = []
    try:
        for group in tqdm(fusion_groups(model), desc="group SQNR", unit="group"):
            _enable_only(model, group)
            noise = sum(float((_head_outputs(model(x)) - r).double().pow(2).sum()) for x, r in zip(inputs, reference))
            rows.append(GroupSQNR(group, 10 * math.log10(max(signal, 1e-20) / max(noise, 1e-20))))
    finally:
        for q, state in states:
            q.enabled = state
    return sorted(rows, key=lambda r: r.sqnr)


def mixed_precision_config(rows: list[GroupSensitivity], k: int, base: QuantConfig) -> dict:
    """The ``base`` quant config as a config file's data, its overrides extended to keep the ``k`` most
    sensitive groups float (``toolchain.jobs.sensitivity`` writes it for ``--quant-config``)."""
    raw = {"version": SCHEMA_VERSION, **base.to_dict()}
    raw["overrides"] += [{"pattern": re.escape(name), "skip": True} for r in rows[:k] for name in r.group]
    return raw
