"""The ``toolchain analyze`` job: the quantization report of a model, FP32 against INT8, in ``report.md`` and
``report.json`` with PNG plots: the convs quantized and those left float, the ONNX file sizes and the
estimated INT8 TensorRT weight bytes, the per-layer SQNR on val images, the worst layers and their weight
and input activation ranges.

The INT8 model of an FP32 ``.pt`` is its PTQ (calibrated on train images as ``toolchain ptq`` does); a
quantized checkpoint (QAT's ``weights/best.pt``, ptq's ``.int8.pt``) is used as it is. Either way the float
reference is the same model with fake quantization off.

Example:
    >>> run_analyze(AnalyzeConfig(weights="runs/qat/q/weights/best.pt", data="d.yaml", out="runs/qat/q/analysis"))
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import onnx
import torch
from torch import nn
from tqdm import tqdm

from base.errors import ToolchainError
from base.fileio import atomic_path, write_json
from toolchain.config.fields import Device, ExistingPath, FieldError, ImageSize, PositiveInt, Writable, check_fields
from toolchain.config.files import record
from toolchain.config.tree import replace
from toolchain.export.onnx import ExportConfig, quantized_convs
from toolchain.jobs.analyze_report import markdown
from toolchain.jobs.onnx_files import export_onnx
from toolchain.jobs.prologue import prologue
from toolchain.plots import bar_chart, range_histograms
from toolchain.quantization.calibration import calibrated_model, calibration_batches
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.modules import QuantConv2d
from toolchain.quantization.placement import float_copy
from toolchain.quantization.quantized_model import is_quantized, quantization_disabled
from toolchain.quantization.quantizer import TensorQuantizer
from toolchain.training.callbacks import sqnr_per_layer

logger = logging.getLogger(__name__)
WRITTEN = ("report.md", "report.json", "sqnr.png", "fp32.onnx", "fp32.onnx.json", "int8.onnx", "int8.onnx.json")
SAMPLES = 200_000  # input activation values kept per layer for its histogram
TENSORRT_ESTIMATE = (
    "conv weights with BatchNorm folded (one bias per output channel): a quantized conv 1 byte per weight and 4 per "
    "bias and per weight scale, a float conv 4 per weight and bias (FP32; an engine with FP16 allowed halves them); "
    "activations, workspace and the engine's own data not counted"
)


@dataclass(frozen=True)
class AnalyzeConfig:
    """``toolchain analyze``: the quantization report of a .pt, FP32 against INT8.

    Attributes:
        weights: An FP32 .pt (its INT8 model: PTQ here), or a quantized checkpoint (QAT's weights/best.pt,
            ptq's .int8.pt), used as it is.
        data: data.yaml: val images measure, train images calibrate an FP32 .pt; its classes must be the model's.
        out: Folder of report.md, report.json, the plots and fp32.onnx / int8.onnx.
        imgsz: Image size (null: the size the weights were trained at).
        images: Val images the SQNR and activation ranges are measured on.
        batch: Images per forward pass (SQNR is averaged over the batches).
        calib_images: Train images calibrating an FP32 .pt (a quantized checkpoint keeps its ranges).
        worst: Layers in the worst-layers table, each with its range plot.
        device: Where calibration and measurement run.
        quant: Quantization of an FP32 .pt (a quantized checkpoint keeps its own).
        export: ONNX export of fp32.onnx and int8.onnx.
    """

    weights: ExistingPath
    data: ExistingPath
    out: Annotated[str, Writable()] = "runs/analyze"
    imgsz: ImageSize | None = None
    images: PositiveInt = 16
    batch: PositiveInt = 4
    calib_images: PositiveInt = 256
    worst: PositiveInt = 10
    device: Device = "cpu"
    quant: QuantConfig = QuantConfig()
    export: ExportConfig = ExportConfig()

    def __post_init__(self) -> None:
        check_fields(self)
        try:
            self.quant.check_exportable()
        except FieldError as exc:
            raise exc.within("quant") from None


@dataclass(frozen=True)
class LayerReport:
    """One quantized conv, INT8 against its float reference.

    Attributes:
        name: Module path.
        sqnr_db: SQNR of its output (dB), the whole INT8 model against the whole float one.
        weight_absmax: Largest per-channel weight |max|.
        weight_spread: Largest over median per-channel weight |max| (an outlier channel shows).
        input_low, input_high: The input quantizer's range.
        input_min, input_max: The float input values seen.
        input_clipped: Share of the float input values outside the quantizer's range.
    """

    name: str
    sqnr_db: float
    weight_absmax: float
    weight_spread: float
    input_low: float
    input_high: float
    input_min: float
    input_max: float
    input_clipped: float


def is_int8(conv: nn.Module) -> bool:
    """Whether a conv computes in INT8: a ``QuantConv2d`` whose weight quantizer is on and calibrated."""
    return isinstance(conv, QuantConv2d) and conv.weight_quantizer.enabled and conv.weight_quantizer.is_calibrated


def conv_layers(model: nn.Module) -> tuple[list[str], list[str]]:
    """The names of the INT8 convs and of the float ones, in model order."""
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    return [n for n, m in convs if is_int8(m)], [n for n, m in convs if not is_int8(m)]


def tensorrt_weight_bytes(model: nn.Module) -> dict[str, int]:
    """Estimated weight bytes of an FP32 and of the INT8 TensorRT engine (see ``TENSORRT_ESTIMATE``)."""
    fp32 = int8 = 0
    for conv in (m for m in model.modules() if isinstance(m, nn.Conv2d)):
        weights, biases = conv.weight.numel(), conv.out_channels
        fp32 += 4 * (weights + biases)
        scales = conv.weight_quantizer.current_amax().numel() if is_int8(conv) else 0
        int8 += weights + 4 * (biases + scales) if is_int8(conv) else 4 * (weights + biases)
    return {"fp32_bytes": fp32, "int8_bytes": int8}


def int8_model(model: nn.Module, cfg: AnalyzeConfig, imgsz: int) -> tuple[nn.Module, nn.Module, str]:
    """The INT8 model, its float reference for export, and how the INT8 model was made.

    Raises:
        ToolchainError: A quantized checkpoint without a calibrated quantizer.
    """
    if is_quantized(model):
        if not conv_layers(model)[0]:
            raise ToolchainError(f"{cfg.weights}: holds quantized convs but none with a calibrated weight quantizer; "
                                 "analyze the FP32 .pt it came from (calibrated here)")  # fmt: skip
        logger.info("%s is quantized: its own quantizers are analyzed (quant and calib_images unused)", cfg.weights)
        return model.to(cfg.device).eval(), float_copy(model), "the checkpoint's own quantizers (QAT or PTQ)"
    batches = calibration_batches(cfg.data, imgsz, cfg.calib_images, cfg.batch)
    student, _ = calibrated_model(model, cfg.quant, batches, cfg.device)
    images = sum(len(b) for b in batches)
    return student.eval(), model, f"PTQ, calibrated here on {images} train images"


class _InputRecorder:
    """Forward pre-hooks on quantized convs: the range of their float inputs, the share outside the input
    quantizer's range, and a sample of the values."""

    def __init__(self, model: nn.Module, names: list[str], per_batch: int) -> None:
        self.convs = {n: model.get_submodule(n) for n in names}
        self.per_batch, self.generator = per_batch, torch.Generator().manual_seed(0)
        self.stats = {n: {"min": np.inf, "max": -np.inf, "outside": 0, "count": 0, "samples": []} for n in names}

    def hook(self, name: str):
        low, high = input_range(self.convs[name].input_quantizer)

        def record(module: nn.Module, inputs: tuple) -> None:
            x, s = inputs[0].detach().float().flatten().cpu(), self.stats[name]
            s["min"], s["max"] = min(s["min"], x.min().item()), max(s["max"], x.max().item())
            s["outside"] += int(((x < low) | (x > high)).sum())
            s["count"] += x.numel()
            keep = torch.randperm(x.numel(), generator=self.generator)[: self.per_batch]
            s["samples"].append(x[keep].numpy())

        return record

    def run(self, model: nn.Module, batch: torch.Tensor) -> None:
        hooks = [c.register_forward_pre_hook(self.hook(n)) for n, c in self.convs.items()]
        try:
            with torch.no_grad(), quantization_disabled(model):
                model(batch)
        finally:
            for h in hooks:
                h.remove()


def input_range(q: TensorQuantizer) -> tuple[float, float]:
    """The range a per-tensor input quantizer keeps (unbounded when it is off)."""
    if not (q.enabled and q.is_calibrated):
        return -np.inf, np.inf
    amax = float(q.current_amax().detach().max())
    return (float(q.amin.min()), amax) if q.amin is not None else (-amax, amax)


def measure_layers(model: nn.Module, batches: list[np.ndarray], device: str) -> tuple[list[LayerReport], dict]:
    """Per quantized conv, in model order: SQNR (``training.callbacks.sqnr_per_layer`` per batch, averaged
    weighted by batch size), weight and input ranges; and each layer's sample of float input values."""
    names = conv_layers(model)[0]
    recorder = _InputRecorder(model, names, max(1, SAMPLES // len(batches)))
    sqnr: dict[str, list[float]] = {n: [] for n in names}
    for array in tqdm(batches, desc="SQNR", unit="batch"):
        batch = torch.from_numpy(array).to(device)
        for name, db in sqnr_per_layer(model, batch).items():
            if name in sqnr:
                sqnr[name].append(db)
        recorder.run(model, batch)
    sizes = [len(b) for b in batches]
    layers = [_layer_report(n, model.get_submodule(n), float(np.average(sqnr[n], weights=sizes)), recorder.stats[n])
              for n in names]  # fmt: skip
    return layers, {n: np.concatenate(recorder.stats[n]["samples"]) for n in names}


def _layer_report(name: str, conv: QuantConv2d, sqnr_db: float, s: dict) -> LayerReport:
    absmax = weight_ranges(conv)[0]
    low, high = input_range(conv.input_quantizer)
    return LayerReport(name, sqnr_db, float(absmax.max()), float(absmax.max() / max(np.median(absmax), 1e-12)),
                       low, high, s["min"], s["max"], s["outside"] / max(1, s["count"]))  # fmt: skip


def weight_ranges(conv: QuantConv2d) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel: the weight's |max| and the weight quantizer's range (one range, repeated, if per-tensor)."""
    absmax = conv.weight.detach().abs().flatten(1).amax(1).cpu().numpy()
    amax = conv.weight_quantizer.current_amax().detach().flatten().cpu().numpy()
    return absmax, np.broadcast_to(amax, absmax.shape) if amax.size == 1 else amax


def run_analyze(cfg: AnalyzeConfig) -> dict:
    """INT8 model, both ONNX files, the measurements, then ``report.md``, ``report.json`` and the plots in
    ``out``; prints the report's path. Returns what ``report.json`` holds."""
    out = Path(cfg.out)
    written = {f"--out {name}": out / name for name in WRITTEN}
    model, imgsz = prologue(cfg.weights, cfg.imgsz, cfg.data, written)
    cfg = replace(cfg, imgsz=imgsz, export=replace(cfg.export, imgsz=imgsz))
    start, config = time.perf_counter(), record(cfg)
    int8, reference, made = int8_model(model, cfg, imgsz)
    quantized, floats = conv_layers(int8)
    export_onnx(reference, out / "fp32.onnx", cfg.export, "fp32", cfg.weights, config=config)
    meta = {"analyze": made, "placement": f"{len(quantized)} of {len(quantized) + len(floats)} convs quantized"}
    export_onnx(int8, out / "int8.onnx", cfg.export, "int8", cfg.weights, meta, config)
    batches = calibration_batches(cfg.data, imgsz, cfg.images, cfg.batch, split="val")
    logger.info("Measuring %d quantized convs on %d val images", len(quantized), sum(len(b) for b in batches))
    layers, samples = measure_layers(int8, batches, cfg.device)
    worst = sorted(layers, key=lambda r: r.sqnr_db)[: cfg.worst]
    plots = write_plots(int8, layers, worst, samples, out)
    onnx_quantized, onnx_total = quantized_convs(onnx.load(str(out / "int8.onnx"), load_external_data=False))
    report = {
        "weights": cfg.weights, "data": cfg.data, "imgsz": imgsz, "int8_model": made,
        "images": sum(len(b) for b in batches), "batch": cfg.batch,
        "convs": {"total": len(quantized) + len(floats), "quantized": len(quantized), "float": len(floats),
                  "float_layers": floats, "onnx_quantized": onnx_quantized, "onnx_total": onnx_total},
        "sizes": {"fp32_onnx": _file(out / "fp32.onnx"), "int8_onnx": _file(out / "int8.onnx"),
                  "tensorrt_weights_estimate": {**tensorrt_weight_bytes(int8), "method": TENSORRT_ESTIMATE}},
        "layers": [asdict(r) for r in layers], "worst": [asdict(r) for r in worst], "plots": plots,
        "seconds": time.perf_counter() - start, "config": config,
    }  # fmt: skip
    write_json(out / "report.json", report)
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(markdown(report))
    logger.info("Finished the analysis in %.1f s", report["seconds"])
    print(out / "report.md")
    return report


def _file(path: Path) -> dict:
    return {"path": str(path), "bytes": path.stat().st_size}


def write_plots(
    model: nn.Module, layers: list[LayerReport], worst: list[LayerReport], samples: dict, out: Path
) -> dict:
    """``sqnr.png`` (every quantized conv) and ``worst<rank>-<layer>.png`` (ranges) in ``out``; their names."""
    for stale in out.glob("worst[0-9][0-9]-*.png"):  # a former run's worst layers, maybe others
        stale.unlink()
    bar_chart(out / "sqnr.png", [r.name for r in layers], [r.sqnr_db for r in layers], "SQNR (dB)",
              "INT8 against FP32, per quantized conv (higher is better)")  # fmt: skip
    names = {}
    for rank, r in enumerate(worst, 1):
        path = out / f"worst{rank:02d}-{r.name}.png"
        absmax, amax = weight_ranges(model.get_submodule(r.name))
        range_histograms(path, f"#{rank} {r.name}: SQNR {r.sqnr_db:.1f} dB", absmax, amax, samples[r.name],
                         (r.input_low, r.input_high))  # fmt: skip
        names[r.name] = path.name
    return {"sqnr": "sqnr.png", "worst": names}
