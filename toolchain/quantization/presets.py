"""Quant presets (``quant.preset``), resolved to plain skip overrides where calibration happens, so the config
written beside the outputs says what was kept float and a rerun with it places the same quantizers.

- ``default``: the settings as given, nothing added.
- ``sensitive``: also keep float the first conv (it reads the raw image: three input channels, little INT8
  speed to gain, and its error reaches every layer) and the ``quant.sensitive_keep`` fusion groups with the
  lowest SQNR of the head's outputs when each is quantized alone (``sensitivity.group_sqnr``) on the first
  ``RANKING_IMAGES`` calibration images. Whole fusion groups stay float, so no tensor gets Q nodes of two
  kinds and TensorRT's fusions hold (check-qdq passes).

``toolchain.quantization.calibration.resolve_preset`` calibrates and ranks; this module only builds configs.

Example:
    >>> base = preset_base(QuantConfig(preset="sensitive"))
    >>> base.preset, base.overrides[-1].pattern
    ('default', 'model\\\\.0\\\\.conv')
"""

from __future__ import annotations

import logging
import re
import statistics

import numpy as np

from base.errors import ToolchainError
from toolchain.config.tree import replace
from toolchain.quantization.config import LayerOverride, QuantConfig
from toolchain.quantization.sensitivity import GroupSQNR

logger = logging.getLogger(__name__)
FIRST_CONV = "model.0.conv"
RANKING_IMAGES = 32


def skip_overrides(names: list[str]) -> tuple[LayerOverride, ...]:
    """One override keeping each named conv float (its name as a literal pattern)."""
    return tuple(LayerOverride(pattern=re.escape(name), skip=True) for name in names)


def preset_base(quant: QuantConfig) -> QuantConfig:
    """The sensitive preset's config before its ranking: ``quant`` with the first conv kept float, preset
    ``default`` (what is left to resolve is said by overrides only)."""
    return replace(quant, preset="default", overrides=(*quant.overrides, *skip_overrides([FIRST_CONV])))


def ranking_batches(batches: list[np.ndarray], images: int = RANKING_IMAGES) -> list[np.ndarray]:
    """The first calibration batches that hold at least ``images`` images (all when they hold fewer)."""
    out, seen = [], 0
    for batch in batches:
        if seen >= images:
            break
        out.append(batch)
        seen += len(batch)
    return out


def sensitive_config(base: QuantConfig, ranked: list[GroupSQNR], keep: int) -> QuantConfig:
    """``base`` (``preset_base``) with the ``keep`` lowest-SQNR groups of ``ranked`` (lowest first) kept float;
    each kept group is logged with its SQNR.

    Raises:
        ToolchainError: ``keep`` leaves no group quantized.
    """
    if keep >= len(ranked):
        raise ToolchainError(
            f"quant.sensitive_keep: {keep}, but the model has only {len(ranked)} quantized fusion groups besides "
            f"{FIRST_CONV}, and an INT8 model needs one; keep fewer (at most {len(ranked) - 1})"
        )
    kept = ranked[:keep]
    median = statistics.median(r.sqnr for r in ranked)
    logger.info("quant.preset sensitive: %s stays float (the first conv: it reads the raw image)", FIRST_CONV)
    for r in kept:
        logger.info("quant.preset sensitive: %s stays float (head SQNR %.1f dB with only it quantized; median "
                    "of the %d groups %.1f dB)", ", ".join(r.group), r.sqnr, len(ranked), median)  # fmt: skip
    return replace(base, overrides=(*base.overrides, *skip_overrides([n for r in kept for n in r.group])))
