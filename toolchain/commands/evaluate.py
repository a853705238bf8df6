"""Subcommands for models out: ``export`` (FP32 ONNX) and ``eval`` (COCO mAP)."""

from __future__ import annotations

import argparse
from pathlib import Path

from deploy.errors import ToolchainError
from toolchain.commands.common import train_imgsz


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, help=".pt checkpoint")
    p.add_argument("--out", default=None, help="ONNX path (default: beside the weights)")
    p.add_argument("--imgsz", type=int, default=None, help="input size (default: the training size)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dynamic-batch", action="store_true")
    p.add_argument("--no-simplify", action="store_true")


def _export(a: argparse.Namespace) -> None:
    from toolchain.export.onnx import ExportConfig, onnx_from_model
    from toolchain.models.yolo import load_model

    model = load_model(a.weights)
    cfg = ExportConfig(a.imgsz or train_imgsz(model), a.batch, a.opset, a.dynamic_batch, not a.no_simplify)
    print(onnx_from_model(model, a.out or Path(a.weights).with_suffix(".onnx"), cfg, source=a.weights))


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, help=".pt (PyTorch) or .onnx (ONNX Runtime or OpenVINO)")
    p.add_argument("--backend", default="onnxruntime", help="for .onnx: onnxruntime or openvino")
    p.add_argument("--precision", default="f32", help="OpenVINO precision hint for float layers: f32, bf16")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data", required=True, help="data.yaml")
    p.add_argument("--split", default="val")
    p.add_argument("--imgsz", type=int, default=None, help="input size (default: the model's)")
    p.add_argument("--conf", type=float, default=0.001)
    p.add_argument("--iou", type=float, default=0.7)
    p.add_argument("--max-det", type=int, default=300)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--device", default="cpu", help="for .pt weights")
    p.add_argument("--json", default=None, help="write the metrics to this JSON file")


def _runner_for(weights: str, imgsz: int | None, a: argparse.Namespace):
    """A Runner for a ``.pt`` or ``.onnx`` file, and the square input size to use."""
    path = Path(weights)
    if path.suffix == ".pt":
        from toolchain.models.torch_runner import TorchRunner
        from toolchain.models.yolo import load_model

        model = load_model(path)
        return TorchRunner(model, imgsz or train_imgsz(model), a.device), imgsz or train_imgsz(model)
    from deploy.runtime import create_runner

    options = {"threads": a.threads, **({"precision": a.precision} if a.backend == "openvino" else {})}
    runner = create_runner(path, a.backend, **options)
    return runner, imgsz or runner.input_shape[2]


def _eval(a: argparse.Namespace) -> None:
    from deploy.dataset import load_data_yaml, load_split
    from deploy.evaluate import evaluate
    from deploy.fileio import write_json
    from deploy.postprocess import PostprocessConfig

    if not Path(a.weights).is_file():
        raise ToolchainError(f"{a.weights}: weights not found; train with 'make baseline' or pass WEIGHTS=path")
    split = load_split(load_data_yaml(a.data), a.split)
    runner, imgsz = _runner_for(a.weights, a.imgsz, a)
    with runner:
        result = evaluate(runner, split, imgsz, PostprocessConfig(a.conf, a.iou, a.max_det), a.batch)
    print(f"{a.weights} on {a.data} [{a.split}] at {imgsz} px via {runner.name}:\n{result.table()}")
    if a.json:
        write_json(a.json, {"weights": a.weights, "data": a.data, "imgsz": imgsz, **result.to_dict()})


COMMANDS = {
    "export": (_export_args, _export, "export a .pt to FP32 ONNX with its sidecar JSON"),
    "eval": (_eval_args, _eval, "COCO mAP of a .pt or .onnx on a split"),
}
