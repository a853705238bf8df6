"""Typed quantization configs: per-quantizer settings, per-layer overrides, YAML loading with checks.

Example:
    >>> cfg = QuantConfig.from_yaml("configs/quant.yaml")
    >>> cfg.for_layer("model.0.conv").skip
    False
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from deploy.errors import ToolchainError

CALIBRATORS = ("max", "moving_average_max", "histogram_percentile", "mse", "entropy")
TARGETS = ("tensorrt", "generic")
FOLD_BN = ("before_qat", "export")
CONFIG_VERSION = 1


def _check_keys(raw: dict, cls: type, where: str) -> None:
    allowed = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ToolchainError(f"{where}: unknown key(s) {unknown}; allowed: {allowed}")


def _check_tensorrt(name: str, symmetric: bool, num_bits: int) -> None:
    if not symmetric:
        raise ToolchainError(
            f"quant config: {name} is asymmetric, but TensorRT takes only symmetric int8 "
            f"(zero point 0); set symmetric: true or target: generic"
        )
    if num_bits != 8:
        raise ToolchainError(f"quant config: {name} has {num_bits} bits; TensorRT takes int8 only")


@dataclass(frozen=True)
class QuantizerConfig:
    """One quantizer.

    Attributes:
        num_bits: 4 to 8 (below 8 for simulation only: ONNX Q/DQ export needs 8).
        axis: Channel axis for per-channel ranges, ``None`` for per-tensor.
        symmetric: Zero point 0 and range [-2**(b-1), 2**(b-1)-1] (TensorRT's only form), else
            unsigned with a zero point.
        calibrator: One of ``CALIBRATORS``.
        percentile: Percentile of ``histogram_percentile``.
        num_bins: Histogram bins of the histogram calibrators.
        momentum: Decay of ``moving_average_max``.
        learn_amax: Learn the range during QAT (LSQ).
    """

    num_bits: int = 8
    axis: int | None = None
    symmetric: bool = True
    calibrator: str = "max"
    percentile: float = 99.99
    num_bins: int = 2048
    momentum: float = 0.9
    learn_amax: bool = False

    def __post_init__(self) -> None:
        if not 4 <= self.num_bits <= 8:
            raise ToolchainError(f"quantizer: num_bits must be 4..8, got {self.num_bits}")
        if self.calibrator not in CALIBRATORS:
            raise ToolchainError(f"quantizer: unknown calibrator '{self.calibrator}'; allowed: {list(CALIBRATORS)}")
        if not 0 < self.percentile <= 100:
            raise ToolchainError(f"quantizer: percentile must be in (0, 100], got {self.percentile}")
        if self.calibrator in ("histogram_percentile", "mse", "entropy") and self.axis is not None:
            raise ToolchainError(f"quantizer: calibrator '{self.calibrator}' is per-tensor only; use max for axis")
        if not self.symmetric and self.calibrator not in ("max", "moving_average_max"):
            raise ToolchainError(
                f"quantizer: asymmetric ranges come from min/max calibrators (max, moving_average_max), "
                f"not '{self.calibrator}'"
            )

    @staticmethod
    def from_dict(raw: dict, where: str) -> QuantizerConfig:
        _check_keys(raw, QuantizerConfig, where)
        return QuantizerConfig(**raw)


@dataclass(frozen=True)
class LayerOverride:
    """Settings for the layers whose module name matches ``pattern`` (a regex, full match).

    Attributes:
        pattern: Regex on module names, e.g. ``model\\.0\\.conv`` or ``model\\.22\\..*``.
        skip: Keep these layers float.
        input: Replacement input quantizer settings (merged over the defaults).
        weight: Replacement weight quantizer settings (merged over the defaults).
    """

    pattern: str
    skip: bool = False
    input: dict = field(default_factory=dict)
    weight: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ToolchainError(f"override pattern {self.pattern!r} is not a valid regex ({exc})") from exc


@dataclass(frozen=True)
class QuantConfig:
    """The whole model's quantization.

    Attributes:
        weight: Default weight quantizer (per-channel symmetric max on axis 0).
        input: Default activation quantizer (per-tensor symmetric histogram percentile).
        overrides: Per-layer settings, the last matching one wins.
        target: ``tensorrt`` (symmetric int8 only) or ``generic``.
        fold_bn: Fold BatchNorm into the conv ``before_qat`` or at ``export``.
        quantize_head_tail: Also quantize the Detect head's final 1x1 convs (float by default).
        version: Schema version written beside every output.
    """

    weight: QuantizerConfig = QuantizerConfig(axis=0, calibrator="max")
    input: QuantizerConfig = QuantizerConfig(calibrator="histogram_percentile")
    overrides: tuple[LayerOverride, ...] = ()
    target: str = "tensorrt"
    fold_bn: str = "export"
    quantize_head_tail: bool = False
    version: int = CONFIG_VERSION

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ToolchainError(f"quant config: target must be one of {list(TARGETS)}, got '{self.target}'")
        if self.fold_bn not in FOLD_BN:
            raise ToolchainError(f"quant config: fold_bn must be one of {list(FOLD_BN)}, got '{self.fold_bn}'")
        if self.target == "tensorrt":
            for name, q in [("input", self.input), ("weight", self.weight)] + self._override_quantizers():
                _check_tensorrt(name, q.symmetric, q.num_bits)

    def _override_quantizers(self) -> list[tuple[str, QuantizerConfig]]:
        out = []
        for o in self.overrides:
            out.append((f"override {o.pattern!r} input", self.merged(self.input, o.input)))
            out.append((f"override {o.pattern!r} weight", self.merged(self.weight, o.weight)))
        return out

    @staticmethod
    def merged(base: QuantizerConfig, changes: dict) -> QuantizerConfig:
        _check_keys(changes, QuantizerConfig, "override")
        return dataclasses.replace(base, **changes)

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
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(raw: dict, where: str = "quant config") -> QuantConfig:
        """Build from a mapping; every key is checked."""
        _check_keys(raw, QuantConfig, where)
        raw = dict(raw)
        if raw.get("target", "tensorrt") == "tensorrt":  # before the quantizers' own checks: say why first
            sections = [("input", raw.get("input") or {}), ("weight", raw.get("weight") or {})]
            sections += [(f"override {o.get('pattern')!r} {k}", o.get(k) or {}) for o in raw.get("overrides") or []
                         for k in ("input", "weight")]  # fmt: skip
            for name, section in sections:
                _check_tensorrt(name, section.get("symmetric", True), section.get("num_bits", 8))
        if "weight" in raw:
            raw["weight"] = QuantizerConfig.from_dict({"axis": 0, **raw["weight"]}, f"{where}: weight")
        if "input" in raw:
            raw["input"] = QuantizerConfig.from_dict(raw["input"], f"{where}: input")
        overrides = []
        for i, o in enumerate(raw.get("overrides") or []):
            _check_keys(o, LayerOverride, f"{where}: overrides[{i}]")
            overrides.append(LayerOverride(**o))
        raw["overrides"] = tuple(overrides)
        return QuantConfig(**raw)

    @staticmethod
    def from_yaml(path: str | Path) -> QuantConfig:
        """Load ``configs/quant.yaml``-style files."""
        path = Path(path)
        if not path.is_file():
            raise ToolchainError(f"{path}: quantization config not found")
        raw = yaml.safe_load(path.read_text()) or {}
        if not isinstance(raw, dict):
            raise ToolchainError(f"{path}: expected a mapping")
        return QuantConfig.from_dict(raw, str(path))
