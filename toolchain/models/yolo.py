"""Build or load ultralytics YOLOv8 detection models, offline.

ultralytics is imported here with ``YOLO_OFFLINE=1`` so it never reaches for the network.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from deploy.errors import ToolchainError

logger = logging.getLogger(__name__)
os.environ.setdefault("YOLO_OFFLINE", "1")


def build_model(
    cfg: str | Path = "yolov8n.yaml", names: list[str] | None = None, verbose: bool = False
) -> torch.nn.Module:
    """A freshly initialised ``DetectionModel`` from a model YAML (ultralytics' own or a path).

    Args:
        cfg: Model YAML; the scale letter in the name (``yolov8n``, ``yolov8s``) picks the size.
        names: Class names; their count sets the head's number of classes.
        verbose: Print the layer table.
    """
    from ultralytics.nn.tasks import DetectionModel

    names = names or [f"class{i}" for i in range(80)]
    model = DetectionModel(str(cfg), nc=len(names), verbose=verbose)
    model.names = dict(enumerate(names))
    return model


def load_model(path: str | Path) -> torch.nn.Module:
    """Load an ultralytics ``.pt`` checkpoint (EMA weights when present) as an FP32 model in eval mode.

    It is a pickle: load only checkpoints you trust.

    Raises:
        ToolchainError: The file is missing or is not an ultralytics detection checkpoint.
    """
    from ultralytics.nn.tasks import DetectionModel, load_checkpoint

    path = Path(path)
    if not path.is_file():
        raise ToolchainError(
            f"{path}: weights not found; train one with 'make baseline' or pass WEIGHTS=path/to/model.pt"
        )
    try:
        model, _ = load_checkpoint(str(path), device="cpu")
    except Exception as exc:  # pickle, zip and ultralytics' own errors
        raise ToolchainError(f"{path}: not a loadable ultralytics checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(model, DetectionModel):
        raise ToolchainError(f"{path}: expected a YOLO detection model, got {type(model).__name__}")
    return model


def trained_imgsz(model: torch.nn.Module) -> int:
    """The image size a loaded checkpoint was trained at: its ``train_args`` (ultralytics' and ours), else 640."""
    args = getattr(model, "args", None) or {}
    size = args.get("imgsz", 640) if isinstance(args, dict) else getattr(args, "imgsz", 640)
    return int(size[0] if isinstance(size, (list, tuple)) else size)


def load_model_at(path: str | Path, imgsz: int | None = None) -> tuple[torch.nn.Module, int]:
    """``load_model`` and the one image size everything after it uses: ``imgsz`` when given, else the
    size the checkpoint was trained at (PyTorch models take any size)."""
    model = load_model(path)
    return model, imgsz or trained_imgsz(model)


def save_checkpoint(path: str | Path, model: torch.nn.Module, imgsz: int, config: dict | None = None, **extra) -> Path:
    """Save a model as a checkpoint ``load_model`` reads back at its size, with the resolved config; atomic.

    Args:
        path: The ``.pt`` to write.
        model: The model (pickled whole, as ultralytics does).
        imgsz: Its image size (``train_args.imgsz``, where ``trained_imgsz`` reads it).
        config: The resolved config of the run that made it (``toolchain.config.files.record``).
        extra: Anything else (epoch, optimizer state...).
    """
    from deploy.fileio import atomic_path

    with atomic_path(path) as tmp:
        torch.save({"model": model, "train_args": {"imgsz": imgsz}, "config": config, **extra}, tmp)
    return Path(path)


def class_names(model: torch.nn.Module) -> list[str]:
    """The model's class names, index = class id."""
    names = model.names
    return [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)


def check_classes(names: list[str], data: str | Path, model: str | Path) -> None:
    """Refuse a model whose classes are not the data's (count and names, in order): its mAP would be
    near 0 under wrong names, with exit 0.

    Raises:
        ToolchainError: Naming both files, both class lists and the fix.
    """
    from deploy.dataset import load_data_yaml

    spec = load_data_yaml(data)
    if list(names) != spec.names:
        raise ToolchainError(
            f"{model}: the model has {len(names)} classes {list(names)}, but {data} has {spec.nc} {spec.names}; "
            "use the data the model was trained on, or train a baseline on this data first"
        )


def model_stride(model: torch.nn.Module) -> int:
    """Largest stride of the detection head (32 for YOLOv8)."""
    return int(model.stride.max())


def set_export_mode(model: torch.nn.Module, export: bool = True) -> torch.nn.Module:
    """Make the Detect head return only the decoded ``[B, 4 + nc, N]`` tensor (the deploy contract)."""
    head = model.model[-1]
    head.export = export
    head.format = "onnx" if export else None
    return model
