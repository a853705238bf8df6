"""The ``eval`` subcommand: COCO mAP of a .pt (PyTorch), .onnx or engine on a split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from base.dataset import load_data_yaml, load_split
from base.errors import ToolchainError, UsageError
from base.fileio import check_distinct_paths, write_json
from base.metadata import ModelMetadata, sidecar_path
from deploy.evaluate import evaluate
from deploy.postprocess import PostprocessConfig
from deploy.runtime import BACKENDS, create_runner
from deploy.runtime.machine import machine_lines, machine_report
from deploy.runtime.openvino_int8 import REMEDIES
from toolchain.config.fields import Device, ExistingPath, ImageSize, PositiveInt, Writable, check_fields
from toolchain.config.files import record
from toolchain.config.flags import Command
from toolchain.config.tree import replace
from toolchain.models.names import check_classes, class_names
from toolchain.models.torch_runner import TorchRunner
from toolchain.models.yolo import load_model_at


@dataclass(frozen=True)
class EvalConfig:
    """``toolchain eval``: COCO mAP of a model on a split.

    Attributes:
        weights: A .pt (run by PyTorch), or an .onnx or TensorRT engine (run by backend).
        data: The data.yaml.
        split: The split evaluated.
        imgsz: Input size (null: the model's own; a .pt takes any size, a static ONNX only its own).
        backend: Runtime of an .onnx or engine.
        precision: OpenVINO's precision hint for float layers.
        int8_remedy: OpenVINO, an INT8 model on a CPU whose INT8 self-check fails (no VNNI): auto
            (float convolutions: ONNX Runtime's arithmetic), float (the same), weights7 (7-bit weights, INT8
            kernels, faster, one more bit of rounding) or none (as it is, wrong).
        allow_invalid_qdq: Evaluate a QDQ ONNX whose scales are not finite and positive (refused by default).
        threads: CPU threads of ONNX Runtime or OpenVINO (null: theirs).
        batch: Images per inference.
        device: Torch device of a .pt.
        json: Write the metrics (and this config) to this JSON file.
        postprocess: Decode and NMS thresholds (yolo val's by default).
    """

    weights: ExistingPath
    data: ExistingPath
    split: str = "val"
    imgsz: ImageSize | None = None
    backend: Literal[BACKENDS] = "onnxruntime"  # type: ignore[valid-type]
    precision: Literal["f32", "bf16"] = "f32"
    int8_remedy: Literal[REMEDIES] = "auto"  # type: ignore[valid-type]
    allow_invalid_qdq: bool = False
    threads: PositiveInt | None = None
    batch: PositiveInt = 1
    device: Device = "cpu"
    json: Annotated[str, Writable((".json",))] | None = None
    postprocess: PostprocessConfig = PostprocessConfig()

    def __post_init__(self) -> None:
        check_fields(self)


def _runner(cfg: EvalConfig):
    """A Runner for the weights (its classes checked against the data), and the one size it runs at."""
    if Path(cfg.weights).suffix == ".pt":
        model, imgsz = load_model_at(cfg.weights, cfg.imgsz)
        check_classes(class_names(model), cfg.data, cfg.weights)
        return TorchRunner(model, imgsz, cfg.device), imgsz
    meta = ModelMetadata.find(cfg.weights)
    if meta is not None:
        check_classes(meta.names, cfg.data, cfg.weights)
    else:  # an ONNX without names anywhere is evaluated under the data's names: their count must fit
        _check_class_count(cfg.weights, cfg.data)
    runner = create_runner(cfg.weights, cfg.backend, threads=cfg.threads, precision=cfg.precision,
                           int8_remedy=cfg.int8_remedy, allow_invalid_qdq=cfg.allow_invalid_qdq)  # fmt: skip
    size = runner.image_size[0]  # (height, width) in either layout (an end-to-end graph is NHWC)
    if cfg.imgsz is not None and isinstance(size, int) and cfg.imgsz != size:
        runner.close()
        raise UsageError(f"--imgsz {cfg.imgsz}: {cfg.weights} takes {size}x{size} images only; "
                         f"drop --imgsz, or export the model again at {cfg.imgsz}")  # fmt: skip
    return runner, cfg.imgsz or size


def _check_class_count(onnx_path: str, data: str) -> None:
    """An ONNX without class names: its static ``[B, 4 + nc, N]`` output must have the data's class count."""
    if Path(onnx_path).suffix != ".onnx":
        return
    import onnx

    try:
        dims = onnx.load(onnx_path, load_external_data=False).graph.output[0].type.tensor_type.shape.dim
    except Exception:  # unreadable: the runner says so in its own words
        return
    if len(dims) == 3 and dims[1].HasField("dim_value"):
        nc, spec = dims[1].dim_value - 4, load_data_yaml(data)
        if nc != spec.nc:
            raise ToolchainError(f"{onnx_path}: the model outputs {nc} classes, but {data} names {spec.nc} "
                                 f"{spec.names}; use the data the model was trained on")  # fmt: skip


def _eval(cfg: EvalConfig) -> None:
    inputs = {"--weights": cfg.weights, "--data": cfg.data}
    if Path(cfg.weights).suffix != ".pt":
        inputs[f"sidecar of {cfg.weights}"] = sidecar_path(cfg.weights)
    check_distinct_paths({"--json": cfg.json}, inputs)
    runner, imgsz = _runner(cfg)
    split = load_split(load_data_yaml(cfg.data), cfg.split)
    cfg = replace(cfg, imgsz=imgsz)
    with runner:
        result = evaluate(runner, split, imgsz, cfg.postprocess, cfg.batch)
        machine = machine_report(runner, cfg.weights)
    print(f"{cfg.weights} on {cfg.data} [{cfg.split}] at {imgsz} px via {runner.name}:\n{result.table()}")
    print(machine_lines(machine))
    if cfg.json:
        write_json(cfg.json, {"weights": cfg.weights, "data": cfg.data, "imgsz": imgsz, **result.to_dict(),
                              "machine": machine, "config": record(cfg)})  # fmt: skip


COMMANDS = [
    Command("eval", EvalConfig, _eval, "COCO mAP of a .pt, .onnx or engine on a split",
            {"--conf": "postprocess.conf", "--iou": "postprocess.iou", "--max-det": "postprocess.max_det"}),
]  # fmt: skip
