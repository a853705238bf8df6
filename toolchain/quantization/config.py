"""Typed quantization configs: per-quantizer settings and per-layer overrides, checked.

A partial section keeps the defaults of the field it changes: ``input: {percentile: 99.9}`` keeps
``QuantConfig.input``'s ``histogram_percentile`` calibrator (see ``toolchain.config.tree``).

Example:
    >>> cfg = QuantConfig.from_dict({"input": {"percentile": 99.9}})
    >>> cfg.input.calibrator, cfg.for_layer("model.0.conv").skip
    ('histogram_percentile', False)
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from toolchain.config.fields import Decay, FieldError, NonNegativeInt, Pattern, PositiveInt, Range, check_fields
from toolchain.config.files import read_config_file
from toolchain.config.tree import build, from_dict, to_dict

Calibrator = Literal["max", "moving_average_max", "histogram_percentile", "mse", "entropy"]
CALIBRATORS = typing.get_args(Calibrator)
PER_TENSOR_ONLY = ("histogram_percentile", "mse", "entropy")
MIN_MAX = ("max", "moving_average_max")
Target = Literal["tensorrt", "generic"]
Preset = Literal["default", "sensitive"]


@dataclass(frozen=True)
class QuantizerConfig:
    """One quantizer.

    Attributes:
        num_bits: 4 to 8 (below 8 for simulation only: ONNX Q/DQ export needs 8).
        axis: Channel axis for per-channel ranges, null for per-tensor.
        symmetric: Zero point 0 and range [-2**(b-1), 2**(b-1)-1] (TensorRT's only form), else
            unsigned with a zero point.
        calibrator: How the range is chosen from the calibration data.
        percentile: Percentile of histogram_percentile.
        num_bins: Histogram bins of the histogram calibrators (histogram_percentile, mse, entropy).
        momentum: Decay of moving_average_max.
        learn_amax: Learn the range during QAT (LSQ).
    """

    num_bits: Annotated[int, Range(ge=4, le=8)] = 8
    axis: int | None = None
    symmetric: bool = True
    calibrator: Calibrator = "max"
    percentile: Annotated[float, Range(gt=0, le=100)] = 99.99
    num_bins: PositiveInt = 2048
    momentum: Decay = 0.9
    learn_amax: bool = False

    def __post_init__(self) -> None:
        check_fields(self)
        calibrator, symmetric = self.calibrator, self.symmetric
        if calibrator in PER_TENSOR_ONLY and self.axis is not None:
            raise FieldError("calibrator", f"'{calibrator}' is per-tensor only; with axis use {list(MIN_MAX)}")
        if not symmetric and calibrator not in MIN_MAX:
            raise FieldError("symmetric", f"asymmetric ranges come from {list(MIN_MAX)}, not '{calibrator}'")


@dataclass(frozen=True)
class LayerOverride:
    """Settings for the layers whose module name matches ``pattern`` (a regex, full match).

    Attributes:
        pattern: Regex on module names, e.g. model\\.0\\.conv or model\\.22\\..*
        skip: Keep these layers float.
        input: Input quantizer keys to change for these layers (merged over the config's input).
        weight: Weight quantizer keys to change for these layers (merged over the config's weight).
    """

    pattern: Pattern
    skip: bool = False
    input: dict = field(default_factory=dict)
    weight: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_fields(self)


def _tensorrt_form(key: str, symmetric: object, num_bits: object) -> None:
    if symmetric is False:
        raise FieldError(f"{key}.symmetric", "TensorRT takes only symmetric int8 (zero point 0); "
                         "set symmetric: true or target: generic")  # fmt: skip
    if num_bits != 8:
        raise FieldError(f"{key}.num_bits", f"{num_bits} bits, but TensorRT takes int8 only; set 8 or target: generic")


@dataclass(frozen=True)
class QuantConfig:
    """The whole model's quantization. BatchNorm is folded into the quantized convs at export.

    Attributes:
        weight: Weight quantizers (per-channel symmetric max on axis 0).
        input: Activation quantizers (per-tensor symmetric histogram percentile).
        overrides: Per-layer settings, a list of {pattern, skip, input, weight}; the last match wins.
        target: tensorrt (symmetric int8 only) or generic (also asymmetric uint8, and 4-7 bits in simulation).
        quantize_head_tail: Also quantize the Detect head's final 1x1 convs (float by default).
        preset: default (the settings as given) or sensitive: also keep float the first conv and the
            sensitive_keep fusion groups whose quantization alone hurts the head's output most on the
            calibration images (lowest SQNR). Resolved to skip overrides where calibration happens, so
            the written config says which were kept (``toolchain.quantization.presets``).
        sensitive_keep: Fusion groups the sensitive preset keeps float besides the first conv.
    """

    weight: QuantizerConfig = QuantizerConfig(axis=0, calibrator="max")
    input: QuantizerConfig = QuantizerConfig(calibrator="histogram_percentile")
    overrides: tuple[LayerOverride, ...] = ()
    target: Target = "tensorrt"
    quantize_head_tail: bool = False
    preset: Preset = "default"
    sensitive_keep: NonNegativeInt = 2

    @staticmethod
    def precheck(raw: dict) -> None:
        """For TensorRT, say that an asymmetric or non-8-bit setting is the problem before the
        quantizers' own checks speak of calibrators."""
        if raw.get("target", "tensorrt") != "tensorrt":
            return
        sections = [(k, raw.get(k)) for k in ("input", "weight")]
        overrides = raw.get("overrides")
        for i, o in enumerate(overrides if isinstance(overrides, (list, tuple)) else []):
            sections += [(f"overrides[{i}].{k}", o.get(k)) for k in ("input", "weight") if isinstance(o, dict)]
        for key, s in sections:
            if isinstance(s, dict):
                _tensorrt_form(key, s.get("symmetric", True), s.get("num_bits", 8))

    def __post_init__(self) -> None:
        check_fields(self)
        for key, q in self.quantizers():
            if self.target == "tensorrt":
                _tensorrt_form(key, q.symmetric, q.num_bits)

    def quantizers(self) -> list[tuple[str, QuantizerConfig]]:
        """Every quantizer setting the config can produce, by key: input, weight, and each override's merged."""
        values = self.__dict__
        out = [("input", values["input"]), ("weight", values["weight"])]
        for i, o in enumerate(values["overrides"]):
            for kind in ("input", "weight"):
                key = f"overrides[{i}].{kind}"
                out.append((key, self._merged(values[kind], o.__dict__[kind], key)))
        return out

    def check_exportable(self) -> None:
        """ONNX QuantizeLinear/DequantizeLinear need 8 bits: a command that exports checks this first."""
        for key, q in self.quantizers():
            if q.num_bits != 8:
                raise FieldError(f"{key}.num_bits", f"{q.num_bits} bits, but ONNX Q/DQ export needs 8")

    @staticmethod
    def _merged(base: QuantizerConfig, changes: dict, key: str) -> QuantizerConfig:
        return build(QuantizerConfig, {**to_dict(base), **changes}, key)

    @staticmethod
    def merged(base: QuantizerConfig, changes: dict) -> QuantizerConfig:
        """``base`` with an override's changes."""
        return QuantConfig._merged(base, changes, "override") if changes else base

    def for_layer(self, name: str) -> LayerOverride:
        """The effective override of a module (an empty one when nothing matches)."""
        match = LayerOverride(pattern=re.escape(name))
        for o in self.overrides:
            if re.fullmatch(o.pattern, name):
                match = LayerOverride(
                    o.pattern, o.skip or match.skip, {**match.input, **o.input}, {**match.weight, **o.weight}
                )
        return match

    def to_dict(self) -> dict:
        """Plain form, for sidecars and checkpoints."""
        return to_dict(self)

    @staticmethod
    def from_dict(raw: dict, where: str = "quant config") -> QuantConfig:
        """Build from a (partial) mapping over the defaults; every key and value is checked.

        Raises:
            FieldError: Names ``where`` and the key.
        """
        try:
            return from_dict(QuantConfig, raw)
        except FieldError as exc:
            raise FieldError(f"{where}: {exc.key}" if exc.key else where, exc.message) from None

    @staticmethod
    def from_yaml(path: str | Path) -> QuantConfig:
        """Load a quant YAML (``configs/quant.yaml``, sensitivity's ``quant.mixed.yaml``)."""
        return QuantConfig.from_dict(read_config_file(path), str(path))
