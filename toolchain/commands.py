"""The subcommands of ``toolchain``: each an ``add_arguments`` and a ``run`` that calls the library."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from deploy.errors import ToolchainError

logger = logging.getLogger("toolchain")


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="data/synthetic", help="destination folder")
    p.add_argument("--train", type=int, default=2000, help="train images")
    p.add_argument("--val", type=int, default=400, help="val images")
    p.add_argument("--imgsz", type=int, default=640, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-size", type=float, default=10.0, help="smallest sign side in pixels")
    p.add_argument("--max-size", type=float, default=150.0, help="largest sign side in pixels")
    p.add_argument("--workers", type=int, default=0, help="processes (0: one per core)")
    p.add_argument("--force", action="store_true", help="replace an existing folder made with another config")


def _data(a: argparse.Namespace) -> None:
    from toolchain.data.synthetic import SyntheticConfig, generate_dataset

    cfg = SyntheticConfig(a.train, a.val, a.imgsz, a.seed, a.min_size, a.max_size, a.workers)
    print(generate_dataset(a.out, cfg, force=a.force))


def _check_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="data.yaml")
    p.add_argument("--split", nargs="*", default=None, help="splits to check (default: all)")
    p.add_argument("--strict", action="store_true", help="fail on the first bad image or label line")


def _check(a: argparse.Namespace) -> None:
    from deploy.dataset import load_data_yaml, load_split

    spec = load_data_yaml(a.data)
    for split in a.split or list(spec.splits):
        print(load_split(spec, split, strict=a.strict).summary())


def _baseline_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="data/synthetic/data.yaml")
    p.add_argument("--model", default="yolov8n.yaml", help="model yaml, or a .pt to start from")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--project", default="runs")
    p.add_argument("--name", default="baseline")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--optimizer", default="auto")
    p.add_argument("--lr0", type=float, default=0.01)
    p.add_argument("--warmup-epochs", type=float, default=3.0)
    p.add_argument("--close-mosaic", type=int, default=10)
    p.add_argument("--patience", type=int, default=100)
    p.add_argument("--cache", default="", help="cache decoded images: ram, disk, or '' (none)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: every core)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run of this name")
    p.add_argument(
        "--overrides", type=_yaml_mapping, default={}, help="other 'yolo train' args as YAML: '{mosaic: 0.5}'"
    )


def _yaml_mapping(text: str) -> dict:
    import yaml

    value = yaml.safe_load(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a YAML mapping like '{{mosaic: 0.5}}', got {text!r}")
    return value


def _baseline(a: argparse.Namespace) -> None:
    from toolchain.training.baseline import BaselineConfig, train_baseline

    fields = BaselineConfig.__dataclass_fields__
    cfg = BaselineConfig(**{k: v for k, v in vars(a).items() if k in fields})
    print(train_baseline(cfg))


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, help=".pt checkpoint")
    p.add_argument("--out", default=None, help="ONNX path (default: beside the weights)")
    p.add_argument("--imgsz", type=int, default=None, help="input size (default: the training size)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dynamic-batch", action="store_true")
    p.add_argument("--no-simplify", action="store_true")


def _train_imgsz(model) -> int:
    return int(getattr(model, "args", {}).get("imgsz", 640))


def _export(a: argparse.Namespace) -> None:
    from toolchain.export.onnx import ExportConfig, onnx_from_model
    from toolchain.models.yolo import load_model

    model = load_model(a.weights)
    cfg = ExportConfig(a.imgsz or _train_imgsz(model), a.batch, a.opset, a.dynamic_batch, not a.no_simplify)
    print(onnx_from_model(model, a.out or Path(a.weights).with_suffix(".onnx"), cfg, source=a.weights))


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
    imgsz = a.imgsz or _train_imgsz(model)
    out = Path(a.out or Path("runs/ptq") / f"{Path(a.weights).stem}.int8.onnx")
    export = ExportConfig(imgsz, 1, a.opset, a.dynamic_batch)
    if a.fp32:
        onnx_from_model(model, out.with_name(out.name.replace(".int8", "")), export, source=a.weights)
    report = quantize_model(model, cfg)
    calibrate(model, calibration_batches(a.data, imgsz, a.num_images, a.batch), a.device)
    torch.save({"model": model.cpu(), "quant_config": cfg.to_dict(), "imgsz": imgsz}, out.with_suffix(".pt"))
    onnx_from_model(model, out, export, "int8", a.weights, {**cfg.to_dict(), "placement": report.summary()})
    print(out)


def _qat_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, help="FP32 .pt: the starting point and the teacher")
    p.add_argument("--data", required=True)
    p.add_argument("--imgsz", type=int, default=None, help="default: the training size of the weights")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--optimizer", default="SGD")
    p.add_argument("--lr0", type=float, default=0.0002)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=0.0005)
    p.add_argument("--grad-clip", type=float, default=10.0)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--mosaic", type=float, default=0.0)
    p.add_argument("--augment", type=_yaml_mapping, default={})
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--calib-images", type=int, default=256)
    p.add_argument("--quant-config", default="configs/quant.yaml")
    p.add_argument("--freeze-bn-epoch", type=int, default=0)
    p.add_argument("--freeze-quant-epoch", type=int, default=-1)
    p.add_argument("--patience", type=int, default=0)
    p.add_argument("--schedule", type=_yaml_mapping, default={})
    p.add_argument("--loss", type=_yaml_mapping, default={})
    p.add_argument("--progressive", type=_yaml_mapping, default={})
    p.add_argument("--project", default="runs/qat")
    p.add_argument("--name", default="qat")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run of this name")
    p.add_argument("--seed", type=int, default=0)


def _qat(a: argparse.Namespace) -> None:
    from toolchain.models.yolo import load_model
    from toolchain.quantization.config import QuantConfig
    from toolchain.training.losses import LossConfig
    from toolchain.training.pipeline import QATRunConfig, run_qat
    from toolchain.training.qat_trainer import QATConfig
    from toolchain.training.schedulers import ScheduleConfig
    from toolchain.training.trainer import TrainConfig

    imgsz = a.imgsz or _train_imgsz(load_model(a.weights))
    train = TrainConfig(
        data=a.data, imgsz=imgsz, epochs=a.epochs, batch=a.batch, optimizer=a.optimizer, lr0=a.lr0,
        momentum=a.momentum, weight_decay=a.weight_decay, grad_clip=a.grad_clip, ema_decay=a.ema_decay,
        device=a.device, workers=a.workers, mosaic=a.mosaic, augment=a.augment, seed=a.seed,
        out=str(Path(a.project) / a.name), resume=a.resume,
        schedule=_typed(ScheduleConfig, a.schedule, "schedule"), loss=_typed(LossConfig, a.loss, "loss"),
    )  # fmt: skip
    qat = QATConfig(train, a.freeze_bn_epoch, a.freeze_quant_epoch, a.progressive)
    cfg = QATRunConfig(a.weights, qat, QuantConfig.from_yaml(a.quant_config), a.calib_images, a.patience)
    run_qat(cfg)


def _typed(cls, raw: dict, key: str):
    """A config dataclass from a YAML mapping, naming unknown keys."""
    allowed = list(cls.__dataclass_fields__)
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ToolchainError(f"{key}: unknown key(s) {unknown}; allowed: {allowed}")
    return cls(**raw)


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
    imgsz = a.imgsz or _train_imgsz(model)
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
        return TorchRunner(model, imgsz or _train_imgsz(model), a.device), imgsz or _train_imgsz(model)
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
    "data": (_data_args, _data, "generate the synthetic traffic-sign dataset"),
    "check-data": (_check_args, _check, "check a data.yaml's images and labels and print a summary"),
    "baseline": (_baseline_args, _baseline, "train the FP32 baseline with ultralytics"),
    "export": (_export_args, _export, "export a .pt to FP32 ONNX with its sidecar JSON"),
    "ptq": (_ptq_args, _ptq, "calibrate a .pt (PTQ) and export its QDQ ONNX"),
    "qat": (_qat_args, _qat, "quantization-aware training from a .pt: PTQ init, QAT, QDQ ONNX, mAP table"),
    "sensitivity": (_sensitivity_args, _sensitivity, "mAP lost per fusion group quantized alone; mixed precision"),
    "check-qdq": (_check_qdq_args, _check_qdq, "check ONNX files against TensorRT's QDQ rules"),
    "eval": (_eval_args, _eval, "COCO mAP of a .pt or .onnx on a split"),
}
