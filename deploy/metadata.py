"""The sidecar JSON that travels with every exported model and engine: the contract between halves."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from deploy.errors import ToolchainError
from deploy.fileio import write_json

SCHEMA_VERSION = 1


@dataclass
class ModelMetadata:
    """What a runtime needs to know about a model file besides its graph.

    Attributes:
        names: Class names, index = class id.
        imgsz: Input ``(height, width)``.
        stride: Largest stride of the network.
        precision: ``fp32``, ``fp16``, ``int8``...
        source: The checkpoint it was made from.
        quantization: The resolved quantization config, for quantized models.
        extra: Anything else (TensorRT version, GPU, profile...).
    """

    names: list[str]
    imgsz: tuple[int, int]
    stride: int = 32
    precision: str = "fp32"
    source: str = ""
    quantization: dict | None = None
    extra: dict = field(default_factory=dict)
    version: int = SCHEMA_VERSION

    def save(self, model_path: str | Path) -> Path:
        """Write the sidecar of ``model_path`` (``<file>.json``) and return its path."""
        return write_json(sidecar_path(model_path), asdict(self))

    @staticmethod
    def load(model_path: str | Path) -> ModelMetadata:
        """Read the sidecar of ``model_path``.

        Raises:
            ToolchainError: The sidecar is missing, unreadable or of another schema.
        """
        path = sidecar_path(model_path)
        if not path.is_file():
            raise ToolchainError(
                f"{path}: sidecar not found beside {model_path}; re-export the model with the toolchain"
            )
        try:
            raw = json.loads(path.read_text())
            raw["imgsz"] = tuple(raw["imgsz"])
            meta = ModelMetadata(**raw)
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ToolchainError(f"{path}: not a valid model sidecar ({exc})") from exc
        if meta.version != SCHEMA_VERSION:
            raise ToolchainError(f"{path}: sidecar schema {meta.version}, this toolchain reads {SCHEMA_VERSION}")
        return meta


def sidecar_path(model_path: str | Path) -> Path:
    """``model.onnx`` -> ``model.onnx.json``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + ".json")
