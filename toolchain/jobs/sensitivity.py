"""The ``toolchain sensitivity`` job: PTQ, then the mAP lost per fusion group quantized alone
(``toolchain.quantization.sensitivity``), written as a ranked CSV, a bar chart and, on request, the
mixed-precision quant config that keeps the most sensitive groups float.

Example:
    >>> run_sensitivity(SensitivityConfig(weights="best.pt", data="data.yaml", keep_float=2))
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml

from base.dataset import load_data_yaml, load_split
from base.fileio import atomic_path
from toolchain.config.fields import Device, ExistingPath, ImageSize, NonNegativeInt, PositiveInt, Writable, check_fields
from toolchain.config.files import write_record
from toolchain.config.tree import replace
from toolchain.jobs.prologue import prologue
from toolchain.plots import bar_chart
from toolchain.quantization.calibration import calibrated_model, calibration_batches, resolve_preset
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.sensitivity import GroupSensitivity, layer_sensitivity, mixed_precision_config

WRITTEN = ("sensitivity.yaml", "sensitivity.csv", "sensitivity.png", "quant.mixed.yaml")


@dataclass(frozen=True)
class SensitivityConfig:
    """``toolchain sensitivity``: mAP lost per fusion group quantized alone; a mixed-precision config.

    Attributes:
        weights: The FP32 .pt.
        data: data.yaml: train images calibrate, val images score.
        imgsz: Calibration and evaluation size (null: the size the weights were trained at).
        val_images: Val images each group is scored on (0: all).
        calib_images: Calibration images.
        keep_float: Write <out>/quant.mixed.yaml keeping the k most sensitive groups float (0: none).
        out: Folder of sensitivity.csv, sensitivity.png and sensitivity.yaml (this config).
        device: Where calibration and evaluation run.
        quant: Quantization settings (also the base of the mixed-precision config; a preset is resolved
            to its overrides first, and the groups it keeps float are not ranked).
    """

    weights: ExistingPath
    data: ExistingPath
    imgsz: ImageSize | None = None
    val_images: NonNegativeInt = 64
    calib_images: PositiveInt = 128
    keep_float: NonNegativeInt = 0
    out: Annotated[str, Writable()] = "runs/sensitivity"
    device: Device = "cpu"
    quant: QuantConfig = QuantConfig()

    def __post_init__(self) -> None:
        check_fields(self)


def run_sensitivity(cfg: SensitivityConfig) -> None:
    """Rank the fusion groups, write the CSV, chart and record (and mixed-precision config), print the top 10."""
    outputs = [("--out", Path(cfg.out) / name) for name in WRITTEN]
    model, imgsz = prologue(cfg.weights, cfg.imgsz, cfg.data, outputs, fp32_only=True)
    batches = calibration_batches(cfg.data, imgsz, cfg.calib_images)
    cfg = replace(cfg, imgsz=imgsz, quant=resolve_preset(model, cfg.quant, batches, cfg.device))
    write_record(Path(cfg.out) / "sensitivity.yaml", cfg, "sensitivity")
    student, _ = calibrated_model(model, cfg.quant, batches, cfg.device)
    split = load_split(load_data_yaml(cfg.data), "val", limit=cfg.val_images or None)
    rows = layer_sensitivity(student, split, imgsz, cfg.device)
    csv_path, png_path = write_sensitivity(rows, cfg.out)
    for i, r in enumerate(rows[:10], 1):
        print(f"{i:>3}. -{100 * r.loss:5.2f} points  {', '.join(r.group)}")
    print(f"{csv_path}\n{png_path}")
    if cfg.keep_float:
        print(write_mixed_precision_config(rows, cfg.keep_float, cfg.quant, Path(cfg.out) / "quant.mixed.yaml"))


def write_sensitivity(rows: list[GroupSensitivity], folder: str | Path) -> tuple[Path, Path]:
    """``sensitivity.csv`` (ranked) and ``sensitivity.png`` (bar chart) in ``folder``."""
    folder = Path(folder)
    csv_path, png_path = folder / "sensitivity.csv", folder / "sensitivity.png"
    with atomic_path(csv_path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["rank", "map50_95_loss", "map50_95", "group"])
        for i, r in enumerate(rows, 1):
            writer.writerow([i, f"{r.loss:.5f}", f"{r.map50_95:.5f}", " ".join(r.group)])
    labels = [r.group[0] + (f" +{len(r.group) - 1}" if len(r.group) > 1 else "") for r in rows]
    bar_chart(png_path, labels, [100 * r.loss for r in rows], "mAP50-95 lost (points)",
              "Sensitivity: only this fusion group quantized")  # fmt: skip
    return csv_path, png_path


def write_mixed_precision_config(rows: list[GroupSensitivity], k: int, base: QuantConfig, out: str | Path) -> Path:
    """``mixed_precision_config`` as YAML at ``out``; ``--quant-config`` (``QUANT=`` in make) takes it."""
    raw = mixed_precision_config(rows, k, base)
    with atomic_path(out) as tmp:
        header = f"# Mixed precision: the {k} most sensitive fusion groups stay float (toolchain sensitivity).\n"
        tmp.write_text(header + yaml.safe_dump(raw, sort_keys=False))
    return Path(out)
