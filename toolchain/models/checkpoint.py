"""Our checkpoints (``last.pt``, ``best.pt``, ``ptq.pt``, ``.int8.pt``): tensors and plain data only, read with
``torch.load(weights_only=True)`` and the model rebuilt from code, so loading one cannot run any code.

A checkpoint is a dict ``{"format", "format_version", "model", "train_args", "config", ...}`` whose model
(and any other model in it, such as QAT's ``ema``) is a *model record*:

- ``yaml``: the ultralytics architecture dict (``model.yaml``), rebuilt with ``DetectionModel``;
- ``names``: the class names;
- ``state_dict``: every tensor;
- ``quantization``: for a fake-quant model, its layout as plain data: the convs that are ``QuantConv2d``,
  the bottlenecks whose residual Add is quantized, and each quantizer's settings, enabled flag and every
  module path that shares it (sharing is one object, so it is restored as one object).

Checkpoints written before this format pickled the modules themselves; they are refused with the
command that writes them again.

Example:
    >>> save_checkpoint("runs/ptq/best.int8.pt", student, imgsz=384, config=record(cfg))
    >>> model = load_checkpoint("runs/ptq/best.int8.pt")["model"]
"""

from __future__ import annotations

import copy
import logging
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from base.errors import ToolchainError
from base.fileio import atomic_path
from toolchain.config.fields import FieldError
from toolchain.config.tree import from_dict, to_dict
from toolchain.models.names import class_names
from toolchain.quantization.config import QuantizerConfig
from toolchain.quantization.modules import QuantConv2d
from toolchain.quantization.quantizer import TensorQuantizer

logger = logging.getLogger(__name__)
FORMAT, FORMAT_VERSION = "yolo-trt-qat checkpoint", 1
MODEL_RECORD = "yolo-trt-qat model"


def _plain(value: Any, key: str) -> Any:
    """``value`` as what ``torch.load(weights_only=True)`` reads: tensors, containers and Python scalars."""
    if isinstance(value, nn.Module):
        return model_record(value)
    if isinstance(value, np.generic):  # before float: numpy's float64 is a float, and pickles as numpy
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool, torch.Tensor, torch.Size)):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, dict):
        return {k: _plain(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_plain(v, f"{key}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    raise AssertionError(f"checkpoint field {key}: {type(value).__name__} is not plain data")


def _unwrapped(model: nn.Module) -> nn.Module:
    """The model inside a ``DistributedDataParallel`` / ``DataParallel`` wrapper."""
    return model.module if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else model


def _quantization_layout(model: nn.Module) -> dict | None:
    # placement subclasses ultralytics' Bottleneck: ultralytics loads on first use, not with this module
    from toolchain.quantization.placement import QuantBottleneck

    groups: dict[int, dict] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        if isinstance(module, TensorQuantizer):
            group = {"paths": [], "config": to_dict(module.cfg), "enabled": module.enabled}
            groups.setdefault(id(module), group)["paths"].append(name)
    if not groups:
        return None
    return {
        "convs": [n for n, m in model.named_modules() if isinstance(m, QuantConv2d)],
        "residual_adds": [n for n, m in model.named_modules() if isinstance(m, QuantBottleneck)],
        "quantizers": list(groups.values()),
    }


def model_record(model: nn.Module) -> dict:
    """A model as plain data and tensors (see the module docstring); ``model_from_record`` rebuilds it."""
    model = _unwrapped(model)
    return {
        "kind": MODEL_RECORD,
        "yaml": _plain(copy.deepcopy(model.yaml), "yaml"),
        "names": class_names(model),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "quantization": _quantization_layout(model),
    }


def save_checkpoint(path: str | Path, model: nn.Module, imgsz: int, config: dict | None = None, **extra) -> Path:
    """Write a checkpoint that ``load_checkpoint`` (and ``load_model``) read back at its size; atomic.

    Args:
        path: The ``.pt`` to write.
        model: The model (float or fake-quant), saved as a model record.
        imgsz: Its image size (``train_args.imgsz``, where ``trained_imgsz`` reads it).
        config: The resolved config of the run that made it (``toolchain.config.files.record``).
        extra: Anything else (epoch, optimizer state, another model such as the EMA...), as plain data.
    """
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": model_record(model),
            "train_args": {"imgsz": int(imgsz)}, "config": _plain(config, "config"), **_plain(extra, "")}  # fmt: skip
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
    return Path(path)


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` of an exception from a library (several lines long at times)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def foreign_globals(path: Path) -> list[str]:
    """The Python classes and functions a ``.pt`` would have to import when unpickled (none for ours),
    read from its pickle without running it.

    Raises:
        ToolchainError: Not a ``torch.save`` archive (truncated, another kind of file): one line.
    """
    unreadable = f"{path}: not a readable PyTorch checkpoint"
    if not zipfile.is_zipfile(path):
        raise ToolchainError(f"{unreadable} (not a torch.save zip archive: truncated, or another kind of file)")
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception as exc:  # zip and pickle errors of a damaged or foreign archive
        raise ToolchainError(f"{unreadable} ({first_line(exc)}); write it again") from None


def read_checkpoint(path: str | Path) -> dict | None:
    """Our checkpoint at ``path`` with its models rebuilt, or ``None`` when it is not one of ours (a
    user's ultralytics ``.pt``, which holds pickled classes).

    Nothing in the file is executed: it is read with ``weights_only=True``.

    Raises:
        ToolchainError: Unreadable, written by an older or newer version of this toolchain, or its model does
            not rebuild: one line naming the file.
    """
    path = Path(path)
    found = foreign_globals(path)
    if any(name.startswith("toolchain.") for name in found):
        raise ToolchainError(
            f"{path}: a checkpoint in the old pickled format of this toolchain (it would run code to load); "
            "run the command that wrote it (ptq, qat) again to write it as tensors and plain data"
        )
    if found:
        return None
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged archive, or a pickle that weights_only refuses
        raise ToolchainError(f"{path}: not a readable PyTorch checkpoint ({first_line(exc)})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        return None
    if raw.get("format_version") != FORMAT_VERSION:
        raise ToolchainError(
            f"{path}: checkpoint format version {raw.get('format_version')!r}; this toolchain reads version "
            f"{FORMAT_VERSION}"
        )
    return {k: model_from_record(v, f"{path}: '{k}'") if _is_record(v) else v for k, v in raw.items()}


def load_checkpoint(path: str | Path) -> dict:
    """Our checkpoint at ``path`` (``read_checkpoint``); anything else is refused, never unpickled.

    Raises:
        ToolchainError: Missing, unreadable, or not written by this toolchain: one line naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ToolchainError(f"{path}: checkpoint not found")
    found = read_checkpoint(path)
    if found is None:
        raise ToolchainError(f"{path}: not a checkpoint written by this toolchain; not loaded (a .pt is a program)")
    return found


def _is_record(value: Any) -> bool:
    return isinstance(value, dict) and value.get("kind") == MODEL_RECORD


def _field(record: dict, key: str, kind: type, where: str) -> Any:
    value = record.get(key)
    if not isinstance(value, kind):
        raise ToolchainError(f"{where}: model field '{key}' is {type(value).__name__}, expected {kind.__name__}")
    return value


def model_from_record(record: dict, where: str) -> nn.Module:
    """Rebuild a model from its record: architecture from code, quantizer layout, then the tensors (strict).

    Args:
        record: A ``model_record``.
        where: The file and key, for messages.

    Raises:
        ToolchainError: The record is malformed, or its tensors do not fit its architecture.
    """
    from ultralytics.nn.tasks import DetectionModel

    arch, names = _field(record, "yaml", dict, where), _field(record, "names", list, where)
    state = _field(record, "state_dict", dict, where)
    try:
        with torch.random.fork_rng():  # initial weights are overwritten: leave the caller's random state alone
            model = DetectionModel(copy.deepcopy(arch), nc=len(names), verbose=False)
    except Exception as exc:  # ultralytics' parser on an architecture it does not know
        raise ToolchainError(f"{where}: its architecture does not build ({first_line(exc)})") from None
    model.names = dict(enumerate(str(n) for n in names))
    layout = record.get("quantization")
    if layout is not None:
        _restore_quantization(model, _plain_layout(layout, where), state, where)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of another shape
        raise ToolchainError(f"{where}: its tensors do not fit its architecture ({first_line(exc)})") from None
    if result.missing_keys or result.unexpected_keys:
        raise ToolchainError(
            f"{where}: its tensors do not fit its architecture ({len(result.missing_keys)} missing, e.g. "
            f"{result.missing_keys[:2]}; {len(result.unexpected_keys)} unexpected, e.g. {result.unexpected_keys[:2]})"
        )
    return model.float().eval()


def _plain_layout(layout: Any, where: str) -> dict:
    lists = ("convs", "residual_adds", "quantizers")
    ok = isinstance(layout, dict) and all(isinstance(layout.get(k), list) for k in lists)
    ok = ok and all(
        isinstance(q, dict) and isinstance(q.get("paths"), list) and q["paths"] and isinstance(q.get("config"), dict)
        for q in layout["quantizers"]
    )
    if not ok:
        raise ToolchainError(f"{where}: model field 'quantization' is not a quantizer layout")
    return layout


def _module_at(model: nn.Module, path: str, kind: type, where: str) -> nn.Module:
    try:
        module = model.get_submodule(path)
    except AttributeError:
        module = None
    if not isinstance(module, kind):
        raise ToolchainError(f"{where}: the quantizer layout names {path}, which is not a {kind.__name__} here")
    return module


def _set_module(model: nn.Module, path: str, module: nn.Module, where: str) -> None:
    parent, _, child = path.rpartition(".")
    setattr(_module_at(model, parent, nn.Module, where), child, module)


def _restore_quantization(model: nn.Module, layout: dict, state: dict, where: str) -> None:
    """Swap in the quantized modules the layout names, with one quantizer object per shared group, each
    with range tensors of the saved shapes (``load_state_dict`` then fills them)."""
    from ultralytics.nn.modules.block import Bottleneck

    # placement subclasses ultralytics' Bottleneck: ultralytics loads on first use, not with this module
    from toolchain.quantization.placement import QuantBottleneck

    at: dict[str, TensorQuantizer] = {}
    for group in layout["quantizers"]:
        try:
            quantizer = TensorQuantizer(from_dict(QuantizerConfig, group["config"]))
        except FieldError as exc:
            raise ToolchainError(f"{where}: quantizer {group['paths'][0]}: {exc}") from None
        quantizer.enabled = bool(group.get("enabled", True))
        first = group["paths"][0]
        for buffer in ("amax", "amin"):
            if f"{first}.{buffer}" in state:
                setattr(quantizer, buffer, torch.empty_like(state[f"{first}.{buffer}"]))
        if f"{first}.learned_amax" in state:
            quantizer.learned_amax = nn.Parameter(torch.empty_like(state[f"{first}.learned_amax"]))
        at.update(dict.fromkeys(map(str, group["paths"]), quantizer))
    for path in layout["convs"]:
        conv = _module_at(model, path, nn.Conv2d, where)
        inputs, weights = at.get(f"{path}.input_quantizer"), at.get(f"{path}.weight_quantizer")
        if inputs is None or weights is None:
            raise ToolchainError(f"{where}: the quantizer layout gives {path} no input or weight quantizer")
        _set_module(model, path, QuantConv2d.from_conv(conv, inputs.cfg, weights.cfg), where)
    for path in layout["residual_adds"]:
        _module_at(model, path, Bottleneck, where).__class__ = QuantBottleneck
    for path, quantizer in at.items():
        _set_module(model, path, quantizer, where)
