"""Subcommands for quantization: ``ptq``, ``sensitivity`` and ``check-qdq``."""

from __future__ import annotations

import argparse
from pathlib import Path

from deploy.errors import ToolchainError
from toolchain.commands.common import train_imgsz


def _ptq_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, help="FP32 .pt checkpoint")
    p.add_argument("--data", required=True, help="data.yaml whose train images calibrate")
    p.add_argument("--imgsz", type=int, default=None, help="calibration and export size (default: the training size)")
    p.add_argument("--num-images", type=int, default=256, help="calibration images")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--quant-config", default="configs/quant.yaml", help="quantization YAML")
    p.add_argument("--out", default=None, help="QDQ ONNX path (default: runs/ptq/<weights>.int8.onnx)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--dynamic-batch", action="store_true")
    p.add_argument("--fp32", action="store_true", help="also export the FP32 ONNX beside it, at the same size")
    p.add_argument("--device", default="cpu")


def _ptq(a: argparse.Namespace) -> None:
    import torch

    from toolchain.export.onnx import ExportConfig, onnx_from_model
    from toolchain.models.yolo import load_model
    from toolchain.quantization.config import QuantConfig
    from toolchain.quantization.placement import quantize_model
    from toolchain.quantization.ptq import calibrate, calibration_batches

    cfg = QuantConfig.from_yaml(a.quant_config)
    model = load_model(a.weights)
    imgsz = a.imgsz or train_imgsz(model)
    out = Path(a.out or Path("runs/ptq") / f"{Path(a.weights).stem}.int8.onnx")
    export = ExportConfig(imgsz, 1, a.opset, a.dynamic_batch)
    if a.fp32:
        onnx_from_model(model, out.with_name(out.name.replace(".int8", "")), export, source=a.weights)
    report = quantize_model(model, cfg)
    calibrate(model, calibration_batches(a.data, imgsz, a.num_images, a.batch), a.device)
    torch.save({"model": model.cpu(), "quant_config": cfg.to_dict(), "imgsz": imgsz}, out.with_suffix(".pt"))
    onnx_from_model(model, out, export, "int8", a.weights, {**cfg.to_dict(), "placement": report.summary()})
    print(out)


def _sensitivity_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, help="FP32 .pt")
    p.add_argument("--data", required=True)
    p.add_argument("--imgsz", type=int, default=None, help="default: the training size of the weights")
    p.add_argument("--val-images", type=int, default=64, help="val images each group is scored on (0: all)")
    p.add_argument("--calib-images", type=int, default=128)
    p.add_argument("--quant-config", default="configs/quant.yaml")
    p.add_argument("--keep-float", type=int, default=0, help="write a config keeping the k most sensitive groups float")
    p.add_argument("--out", default="runs/sensitivity")
    p.add_argument("--device", default="cpu")


def _sensitivity(a: argparse.Namespace) -> None:
    from deploy.dataset import load_data_yaml, load_split
    from toolchain.models.yolo import load_model
    from toolchain.quantization.config import QuantConfig
    from toolchain.quantization.placement import quantize_model
    from toolchain.quantization.ptq import calibrate, calibration_batches
    from toolchain.quantization.sensitivity import layer_sensitivity, write_mixed_precision_config, write_sensitivity

    model = load_model(a.weights)
    imgsz = a.imgsz or train_imgsz(model)
    quantize_model(model, QuantConfig.from_yaml(a.quant_config))
    calibrate(model, calibration_batches(a.data, imgsz, a.calib_images), a.device)
    split = load_split(load_data_yaml(a.data), "val", limit=a.val_images or None)
    rows = layer_sensitivity(model, split, imgsz, a.device)
    csv_path, png_path = write_sensitivity(rows, a.out)
    for i, r in enumerate(rows[:10], 1):
        print(f"{i:>3}. -{100 * r.loss:5.2f} points  {', '.join(r.group)}")
    print(f"{csv_path}\n{png_path}")
    if a.keep_float:
        print(write_mixed_precision_config(rows, a.keep_float, a.quant_config, Path(a.out) / "quant.mixed.yaml"))


def _check_qdq_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("onnx", nargs="+", help="ONNX files")
    p.add_argument("--json", default=None, help="write the reports to this JSON file")


def _check_qdq(a: argparse.Namespace) -> int:
    from deploy.qdq_check import main as check_main

    return check_main(a.onnx + (["--json", a.json] if a.json else []))


def _parity_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="the fake-quant .pt of the ONNX (PTQ's .int8.pt, QAT's best.pt)")
    p.add_argument("--onnx", required=True, help="its QDQ ONNX")
    p.add_argument("--data", required=True, help="data.yaml whose val images are compared")
    p.add_argument("--images", type=int, default=16, help="val images")
    p.add_argument("--max-aligned", type=float, default=1e-3, help="bound on the layer-aligned relative L2")
    p.add_argument("--max-map-gap", type=float, default=0.002, help="bound on the mAP50-95 difference")


def _parity(a: argparse.Namespace) -> int:
    import cv2

    from deploy.dataset import load_data_yaml, load_split
    from deploy.preprocess import preprocess
    from deploy.runtime.onnxruntime import OnnxRuntimeRunner
    from toolchain.export.parity import map_onnx_and_torch, qdq_parity
    from toolchain.models.yolo import load_model
    from toolchain.quantization.ptq import is_quantized

    model = load_model(a.model)
    if not is_quantized(model):
        raise ToolchainError(f"{a.model}: not a fake-quant model; pass the .pt that PTQ or QAT wrote beside the ONNX")
    split = load_split(load_data_yaml(a.data), "val", limit=a.images)
    with OnnxRuntimeRunner(a.onnx) as onnx_runner:
        imgsz = onnx_runner.input_shape[2]
    batches = [preprocess([cv2.imread(str(r.path))], (imgsz, imgsz))[0] for r in split.images]
    report = qdq_parity(model, a.onnx, batches)
    onnx_map, torch_map = map_onnx_and_torch(model, a.onnx, split)
    failures = report.failures(a.max_aligned)
    if abs(onnx_map - torch_map) > a.max_map_gap:
        failures.append(f"mAP50-95 differs by {abs(onnx_map - torch_map):.4f} > {a.max_map_gap}")
    print(f"{a.onnx} against {a.model}, {len(split.images)} val images at {imgsz}:\n{report.summary()}")
    print(f"mAP50-95: ONNX Runtime {onnx_map:.4f}, PyTorch fake-quant {torch_map:.4f}")
    print("\n".join(f"FAIL: {f}" for f in failures) or "parity: OK")
    return 1 if failures else 0


COMMANDS = {
    "ptq": (_ptq_args, _ptq, "calibrate a .pt (PTQ) and export its QDQ ONNX"),
    "sensitivity": (_sensitivity_args, _sensitivity, "mAP lost per fusion group quantized alone; mixed precision"),
    "check-qdq": (_check_qdq_args, _check_qdq, "check ONNX files against TensorRT's QDQ rules"),
    "parity": (_parity_args, _parity, "compare a QDQ ONNX on ONNX Runtime with the fake-quant model it came from"),
}
