"""The sidecar JSON that travels with every exported model and engine: the contract between halves.

An ONNX also carries its metadata inside (``metadata_props``), in ultralytics' format beside ours, so that
``yolo val``, ``yolo predict`` and ``YOLO("model.onnx")`` read our files, and our readers read an ONNX that
ultralytics exported (which has no sidecar).
"""

from __future__ import annotations

import ast
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from base.errors import ToolchainError
from base.fileio import read_text, write_json

logger = logging.getLogger(__name__)

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
        """Read the sidecar of ``model_path``; for an ONNX without one, the metadata inside it (ours or
        ultralytics').

        Raises:
            ToolchainError: No sidecar and no metadata in the model, or a sidecar unreadable or of another schema.
        """
        path = sidecar_path(model_path)
        if not path.exists():  # a FIFO or a device is refused by read_text, not taken for a missing sidecar
            inside = ModelMetadata.from_onnx(model_path) if str(model_path).endswith(".onnx") else None
            if inside is not None:
                return inside
            raise ToolchainError(
                f"{path}: sidecar not found beside {model_path}; re-export the model with the toolchain"
            )
        try:
            raw = json.loads(read_text(path, "model sidecar"))
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ToolchainError(f"{path}: not a valid model sidecar ({exc})") from exc
        return ModelMetadata(**_checked_fields(raw, path))

    @staticmethod
    def find(model_path: str | Path) -> ModelMetadata | None:
        """Like ``load``, but ``None`` for a model with neither a sidecar nor metadata inside."""
        path = Path(model_path)
        is_onnx = path.suffix == ".onnx" and path.is_file()
        if not sidecar_path(path).exists():
            return ModelMetadata.from_onnx(path) if is_onnx else None
        meta = ModelMetadata.load(path)
        inside = ModelMetadata.from_onnx(path) if is_onnx else None
        if inside is not None and (inside.names, tuple(inside.imgsz)) != (meta.names, tuple(meta.imgsz)):
            logger.warning(
                "%s: its class names or size (%d names, %s) disagree with the metadata inside %s (%d names, %s): "
                "the sidecar wins (the toolchain writes it with the model and every runtime reads it; the "
                "graph's own input shape still decides the size); export the model again to make them agree",
                sidecar_path(path), len(meta.names), list(meta.imgsz), path, len(inside.names), list(inside.imgsz))
        return meta

    @staticmethod
    def from_onnx(onnx_path: str | Path) -> ModelMetadata | None:
        """The metadata an ONNX carries in ``metadata_props``: ours or ultralytics' (``None`` without class names).

        Raises:
            ToolchainError: A ``names`` or ``imgsz`` value that is neither format.
        """
        import onnx

        try:
            model = onnx.load(str(onnx_path), load_external_data=False)
        except Exception as exc:  # protobuf raises its own DecodeError for a file that is not an ONNX
            raise ToolchainError(f"{onnx_path}: not a readable ONNX model ({exc})") from exc
        props = {p.key: p.value for p in model.metadata_props}
        if "names" not in props:
            return None
        producer = props.get("producer") or ("ultralytics" if props.get("author") == "Ultralytics" else "unknown")
        return ModelMetadata(
            names=_parse_names(props["names"], onnx_path),
            imgsz=_parse_imgsz(props.get("imgsz", "640"), onnx_path),
            stride=_parse_stride(props.get("stride", "32"), onnx_path),
            precision=props.get("precision", "fp32"),
            source=str(onnx_path),
            extra={"from": "onnx metadata", "producer": producer,
                   **({"ultralytics_version": props.get("version", "?")} if producer == "ultralytics" else {})},
        )  # fmt: skip

    def onnx_props(self, batch: int = 1) -> dict[str, str]:
        """``metadata_props`` for an ONNX: ultralytics' keys in the format its exporter writes (``names`` a dict
        as text, ``imgsz`` a list, ``stride``, ``task``, ``batch``), which its AutoBackend parses with
        ``int``/``ast.literal_eval``, and ours (``precision``, ``producer``)."""
        return {
            "task": "detect",
            "stride": str(self.stride),
            "batch": str(batch),
            "imgsz": str([int(v) for v in self.imgsz]),
            "names": str(dict(enumerate(self.names))),
            "channels": "3",
            "precision": self.precision,
            "producer": "toolchain",
        }


# Each sidecar field: the JSON types it may hold and what the error says was expected.
_FIELD_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "names": ((list,), "a list of class names"),
    "imgsz": ((list,), "[height, width]"),
    "stride": ((int,), "a positive integer"),
    "precision": ((str,), "a string such as int8"),
    "source": ((str,), "a string"),
    "quantization": ((dict, type(None)), "a mapping or null"),
    "extra": ((dict,), "a mapping"),
    "version": ((int,), f"the schema version {SCHEMA_VERSION}"),
}


def _checked_fields(raw: object, path: Path) -> dict:
    """The sidecar's fields, each of the type ``ModelMetadata`` declares.

    Raises:
        ToolchainError: Naming the sidecar, the field, what it holds and what was expected.
    """
    if not isinstance(raw, dict):
        raise ToolchainError(f"{path}: not a valid model sidecar (a JSON {type(raw).__name__}, expected an object)")
    unknown = sorted(set(raw) - set(_FIELD_TYPES))
    missing = [k for k in ("names", "imgsz") if k not in raw]
    if unknown or missing:
        what = f"unknown field(s) {unknown}" if unknown else f"missing field(s) {missing}"
        raise ToolchainError(f"{path}: not a valid model sidecar ({what}); fields: {', '.join(_FIELD_TYPES)}")
    for key, value in raw.items():
        types, expected = _FIELD_TYPES[key]
        if not isinstance(value, types) or isinstance(value, bool) and bool not in types:
            raise ToolchainError(f"{path}: sidecar field '{key}' is {value!r:.60}; expected {expected}")
    if raw.get("version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise ToolchainError(f"{path}: sidecar schema {raw['version']}, this toolchain reads {SCHEMA_VERSION}")
    sizes = raw["imgsz"]
    if len(sizes) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes):
        raise ToolchainError(f"{path}: sidecar field 'imgsz' is {sizes!r:.60}; expected [height, width]")
    if not all(isinstance(n, str) for n in raw["names"]) or raw.get("stride", 1) <= 0:
        bad = "names" if not all(isinstance(n, str) for n in raw["names"]) else "stride"
        raise ToolchainError(f"{path}: sidecar field '{bad}' is {raw[bad]!r:.60}; expected {_FIELD_TYPES[bad][1]}")
    return {**raw, "imgsz": tuple(sizes)}


def _literal(value: str):
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def _parse_names(value: str, where: str | Path) -> list[str]:
    """``{0: 'stop', 1: 'yield'}`` (ultralytics), ``['stop', 'yield']`` or ``stop,yield`` (older toolchain exports)."""
    parsed = _literal(value) if value.strip()[:1] in "{[" else value.split(",")
    if isinstance(parsed, dict) and all(isinstance(k, int) for k in parsed):
        if sorted(parsed) != list(range(len(parsed))):
            raise ToolchainError(
                f"{where}: metadata names has class ids {sorted(parsed)}; expected 0..{len(parsed) - 1}"
            )
        return [str(parsed[k]) for k in range(len(parsed))]
    if isinstance(parsed, list):
        return [str(n).strip() for n in parsed]
    raise ToolchainError(f"{where}: metadata names {value[:60]!r} is neither {{id: name}} nor a list of names")


def _parse_imgsz(value: str, where: str | Path) -> tuple[int, int]:
    """``[384, 384]`` (ultralytics), ``384,384`` (older toolchain exports) or ``384``."""
    parsed = _literal(value)
    sizes = [parsed] if isinstance(parsed, int) else list(parsed) if isinstance(parsed, (list, tuple)) else []
    if len(sizes) not in (1, 2) or not all(isinstance(v, int) and v > 0 for v in sizes):
        raise ToolchainError(f"{where}: metadata imgsz {value!r} is not a size: expected [height, width]")
    return (sizes[0], sizes[-1])


def _parse_stride(value: str, where: str | Path) -> int:
    if not value.strip().isdigit() or int(value) <= 0:
        raise ToolchainError(f"{where}: metadata stride {value!r} is not a positive integer")
    return int(value)


def sidecar_path(model_path: str | Path) -> Path:
    """``model.onnx`` -> ``model.onnx.json``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + ".json")
