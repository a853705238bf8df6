"""Build or load ultralytics YOLOv8 detection models, offline.

ultralytics is imported here with ``YOLO_OFFLINE=1`` so it never reaches for the network. Our own
checkpoints are written and read by ``toolchain.models.checkpoint`` (tensors and plain data); class names
and their check against a dataset are ``toolchain.models.names``.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

import torch

from base.errors import ToolchainError
from toolchain.models.checkpoint import first_line, read_checkpoint

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
    """Load a ``.pt`` as an FP32 detection model in eval mode (the EMA weights when present).

    Our checkpoints (``toolchain.models.checkpoint``) are tensors and plain data, read with
    ``weights_only=True`` and rebuilt from code. Any other ``.pt`` (a user's ultralytics checkpoint) is a
    pickle, that is a program: after a printed warning it is read by ultralytics' restricted loader, which
    rebuilds only ultralytics' and PyTorch's model classes and refuses anything else (``os.system``...).

    Raises:
        ToolchainError: The file is missing, not a ``.pt``, unreadable, refers to code outside a YOLO model,
            or is not a detection model: one line naming the file.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "weights not found"
        raise ToolchainError(f"{path}: {what}; train one with 'make baseline' or pass WEIGHTS=path/to/model.pt")
    if path.suffix != ".pt":
        raise ToolchainError(f"{path}: expected a PyTorch checkpoint (.pt), got '{path.suffix}'")
    ours = read_checkpoint(path)
    if ours is None:
        return _load_ultralytics(path)
    model = ours.get("ema") or ours["model"]
    model.args = dict(ours.get("train_args") or {})
    return model


def _load_ultralytics(path: Path) -> torch.nn.Module:
    """A user's ultralytics checkpoint through ultralytics' restricted (``weights_only``) loader."""
    from ultralytics.cfg import DEFAULT_CFG_DICT
    from ultralytics.nn.tasks import DetectionModel, torch_safe_load

    print(f"warning: {path}: a .pt is a program: load only files you trust "
          "(not a checkpoint of this toolchain; read by ultralytics' restricted loader)", file=sys.stderr)  # fmt: skip
    try:
        checkpoint, _ = torch_safe_load(str(path), safe_only=True)
    except Exception as exc:  # pickle, zip and ultralytics' own errors, each several lines long
        raise ToolchainError(f"{path}: not loaded: {_refusal(exc, path)}") from None
    model = checkpoint.get("ema") or checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if model is None:
        keys = sorted(checkpoint)[:5] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ToolchainError(f"{path}: holds no model (no 'model' or 'ema'; it has {keys}); expected a YOLO checkpoint")
    if type(model) is not DetectionModel:
        raise ToolchainError(f"{path}: expected a YOLO detection model, got {type(model).__name__}")
    model = model.float().eval()
    model.args = {**DEFAULT_CFG_DICT, **(checkpoint.get("train_args") or {})}
    model.task = "detect"
    return model


def _refusal(exc: BaseException, path: Path) -> str:
    """One line for what ultralytics' loader refused: the global a pickle wanted, else its first line."""
    cause = f"{exc.__cause__ or ''}"
    wanted = re.search(r"GLOBAL ([\w.]+)", cause)
    if wanted:
        return f"it refers to {wanted.group(1)}, which is not part of a YOLO model (a .pt is a program)"
    lines = [line for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    first = lines[0].replace("ERROR ❌️", "").replace(str(path), "").strip(" :")
    detail = f" ({first_line(exc.__cause__)})" if exc.__cause__ is not None and "(" not in first else ""
    return first + detail


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


def model_stride(model: torch.nn.Module) -> int:
    """Largest stride of the detection head (32 for YOLOv8)."""
    return int(model.stride.max())


def set_export_mode(model: torch.nn.Module, export: bool = True) -> torch.nn.Module:
    """Make the Detect head return only the decoded ``[B, 4 + nc, N]`` tensor (the deploy contract)."""
    head = model.model[-1]
    head.export = export
    head.format = "onnx" if export else None
    return model
