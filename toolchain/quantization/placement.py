"""Q/DQ placement for YOLOv8 that TensorRT can fuse.

Rules (each makes a tensor reach its Q nodes with one scale, so the conv that produces it can write
INT8 directly and no reformat layer is needed):

- Every ``Conv2d`` gets an input quantizer (per-tensor) and a weight quantizer (per-channel, axis 0),
  except the Detect head's float tail (the final bare 1x1 convs and the DFL conv) and skipped layers.
- A layer output consumed by several layers (through Concat and nearest Upsample, which keep
  scales) gets one quantizer shared by all of its consumers: Concat inputs share the scale of the
  conv that consumes the Concat, MaxPool and Upsample keep the scale before and after.
- Inside C2f, cv1's two halves, every bottleneck output and cv2's Concat share one quantizer, and a
  bottleneck's residual Add quantizes both of its inputs with it, so TensorRT fuses the Add into
  the conv.

Sharing is one module object, never a copied value, so shared ranges cannot drift apart in QAT.

``placement_of`` reads the placement of a model quantized before (a loaded checkpoint), and ``float_copy``
undoes it on a copy (the FP32 reference of a QAT checkpoint).
"""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass, field

import torch
from torch import nn
from ultralytics.nn.modules.block import Bottleneck

from toolchain.quantization.config import QuantConfig
from toolchain.quantization.modules import QuantConv2d
from toolchain.quantization.quantizer import TensorQuantizer

logger = logging.getLogger(__name__)


class QuantBottleneck(Bottleneck):
    """An ultralytics ``Bottleneck`` whose residual Add is quantized on both inputs with one quantizer."""

    residual_quantizer: TensorQuantizer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        if not self.add:
            return y
        q = self.residual_quantizer
        return q(x) + q(y)


@dataclass
class PlacementReport:
    """What ``quantize_model`` did: quantized and float convs, and the shared-quantizer groups."""

    quantized: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    groups: list[list[str]] = field(default_factory=list)

    def summary(self) -> str:
        shared = sum(1 for g in self.groups if len(g) > 1)
        return (
            f"{len(self.quantized)} of {len(self.quantized) + len(self.skipped)} convs quantized, "
            f"{shared} shared input-quantizer groups"
        )


def _is_head_tail(name: str, head_index: int) -> bool:
    prefix = rf"model\.{head_index}\."
    return bool(re.fullmatch(prefix + r"(cv2|cv3)\.\d+\.2", name) or re.fullmatch(prefix + r"dfl\.conv", name))


def _swap_convs(model: nn.Module, cfg: QuantConfig, report: PlacementReport) -> None:
    head_index = len(model.model) - 1
    matched = {o.pattern: False for o in cfg.overrides}
    for name, module in list(model.named_modules()):
        if type(module) is not nn.Conv2d:
            continue
        for o in cfg.overrides:
            matched[o.pattern] |= bool(re.fullmatch(o.pattern, name))
        layer = cfg.for_layer(name)
        tail = _is_head_tail(name, head_index) and (not cfg.quantize_head_tail or name.endswith("dfl.conv"))
        if layer.skip or tail:
            report.skipped.append(name)
            continue
        qconv = QuantConv2d.from_conv(module, cfg.merged(cfg.input, layer.input), cfg.merged(cfg.weight, layer.weight))
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, qconv)
        report.quantized.append(name)
    for pattern, hit in matched.items():
        if not hit:
            logger.warning("quant config: override pattern %r matches no conv layer", pattern)


def _entry_convs(layer: nn.Module, position: int) -> list[QuantConv2d]:
    """The quantized convs that read input ``position`` of a top-level YOLOv8 layer."""
    kind = type(layer).__name__
    if kind == "Detect":
        heads = [layer.cv2[position][0], layer.cv3[position][0]]
        return [h.conv for h in heads if isinstance(getattr(h, "conv", None), QuantConv2d)]
    first = getattr(layer, "cv1", layer)
    conv = getattr(first, "conv", None)
    return [conv] if isinstance(conv, QuantConv2d) else []


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


TRANSPARENT = ("Concat", "Upsample")


def _share_between_layers(model: nn.Module, names: dict[int, str], report: PlacementReport) -> None:
    """One input quantizer for all consumers of a layer output, looking through Concat and Upsample."""
    layers = list(model.model)
    uf = _UnionFind()
    readers: dict[int, list[QuantConv2d]] = {}
    for i, layer in enumerate(layers):
        sources = layer.f if isinstance(layer.f, list) else [layer.f]
        sources = [i - 1 if s == -1 else (s if s >= 0 else i + s) for s in sources]
        for position, src in enumerate(sources):
            if type(layer).__name__ in TRANSPARENT:
                uf.union(src, i)
            else:
                readers.setdefault(src, []).extend(_entry_convs(layer, position))
    groups: dict[int, list[QuantConv2d]] = {}
    for src, convs in readers.items():
        groups.setdefault(uf.find(src), []).extend(convs)
    for convs in groups.values():
        _share(convs, names, report)


def _share(convs: list[QuantConv2d], names: dict[int, str], report: PlacementReport) -> None:
    unique = list({id(c): c for c in convs}.values())
    if not unique:
        return
    shared = unique[0].input_quantizer
    for conv in unique[1:]:
        conv.input_quantizer = shared
    report.groups.append([names[id(c)] for c in unique])


def _share_inside_blocks(model: nn.Module, names: dict[int, str], report: PlacementReport) -> None:
    """C2f: cv2's Concat inputs (cv1 halves, bottleneck outputs) and every bottleneck input share one scale."""
    for module in model.modules():
        if type(module).__name__ != "C2f":
            continue
        convs = [module.cv2.conv] + [b.cv1.conv for b in module.m]
        convs = [c for c in convs if isinstance(c, QuantConv2d)]
        if len(convs) != 1 + len(module.m):
            continue  # a skipped conv breaks the group; leave its neighbours their own scales
        _share(convs, names, report)
        for bottleneck in module.m:
            if type(bottleneck) in (Bottleneck, QuantBottleneck):
                bottleneck.__class__ = QuantBottleneck
                bottleneck.residual_quantizer = convs[0].input_quantizer


def quantize_model(model: nn.Module, cfg: QuantConfig) -> PlacementReport:
    """Insert quantizers into an ultralytics YOLOv8 ``DetectionModel`` in place, following the rules above.

    Args:
        model: The FP32 detection model (BatchNorm still separate unless folded before).
        cfg: Quantizer settings and per-layer overrides.

    Returns:
        The quantized and skipped convs and the shared groups.
    """
    report = PlacementReport()
    _swap_convs(model, cfg, report)
    names = {id(m): n for n, m in model.named_modules()}
    _share_inside_blocks(model, names, report)
    _share_between_layers(model, names, report)
    if not report.quantized:
        logger.warning("quant config quantizes no layer: the result is not quantized")
    logger.info("Placement: %s", report.summary())
    return report


def placement_of(model: nn.Module) -> PlacementReport:
    """The placement of an already quantized model (a loaded ptq or qat checkpoint): its quantized and
    float convs, and the quantized convs grouped by the input quantizer they share."""
    report = PlacementReport()
    shared: dict[int, list[str]] = {}
    for name, module in model.named_modules():
        if isinstance(module, QuantConv2d):
            report.quantized.append(name)
            shared.setdefault(id(module.input_quantizer), []).append(name)
        elif type(module) is nn.Conv2d:
            report.skipped.append(name)
    report.groups = list(shared.values())
    return report


def float_copy(model: nn.Module) -> nn.Module:
    """A float copy of a fake-quant model: quantized convs back to ``nn.Conv2d`` with the same weights,
    quantized residual Adds back to plain ones, no quantizer left. ``model`` is not modified.

    Its output is the fake-quant model's with quantization disabled, exactly; as a separate copy it stays
    fixed while the fake-quant model trains (the distillation teacher of a QAT that continues a checkpoint).
    """
    out = copy.deepcopy(model)
    for name, module in list(out.named_modules()):
        if isinstance(module, QuantConv2d):
            parent_name, _, child = name.rpartition(".")
            setattr(out.get_submodule(parent_name), child, module.to_conv())
        elif isinstance(module, QuantBottleneck):
            del module.residual_quantizer
            module.__class__ = Bottleneck
    return out
