"""Layer report of a built engine, from TensorRT's engine inspector (JSON, detailed verbosity).

It counts layers by the precision they compute in and counts reformat layers: when Q/DQ placement
lets TensorRT fuse, almost every convolution is INT8 and reformats are few.

The inspector's JSON changed with the versions: 8.x and 10.x give each layer tensor one
``"Format/Datatype"`` text ("Thirty-two wide channel vectorized row major Int8 format"); 11.x gives
``"Format"`` and ``"DataType"`` ("Int8") apart and lists ``"I/O Tensors"`` instead of ``"Bindings"``.
With dynamic shapes and no execution context the format is "N/A due to dynamic shapes".
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

UNKNOWN = "unknown"


@dataclass
class LayerReport:
    """Layers per precision, reformat layers, and the names of the reformats."""

    layers: int = 0
    precisions: Counter = field(default_factory=Counter)
    reformats: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = ", ".join(f"{p} {n}" for p, n in sorted(self.precisions.items()))
        return f"{self.layers} layers: {parts}; {len(self.reformats)} reformat layers"

    def to_dict(self) -> dict:
        return {"layers": self.layers, "precisions": dict(self.precisions), "reformats": len(self.reformats)}


def _precision(text: str) -> str:
    """The precision named in a DataType ("Int8", "Half") or a Format/Datatype description."""
    t = text.lower()
    if not t or t.startswith("n/a"):
        return UNKNOWN
    if "int8" in t:
        return "INT8"
    if "fp16" in t or "half" in t:
        return "FP16"
    if "bf16" in t or "bfloat16" in t:
        return "BF16"
    if "fp8" in t:
        return "FP8"
    if "int32" in t or "int64" in t or "bool" in t:
        return "INT"
    return "FP32"


def tensor_precision(tensor: dict) -> str:
    """A layer tensor's precision: 11.x ``DataType``, else 8.x/10.x ``Format/Datatype``."""
    if "DataType" in tensor:
        return _precision(str(tensor["DataType"]))
    return _precision(str(tensor.get("Format/Datatype", "")))


def layer_report(info: str | dict) -> LayerReport:
    """Parse ``IEngineInspector.get_engine_information(LayerInformationFormat.JSON)`` of any version.

    A layer's precision is that of its first output; layers whose type or name says reformat are
    counted apart.
    """
    data = json.loads(info) if isinstance(info, str) else info
    report = LayerReport()
    for layer in data.get("Layers", []):
        report.layers += 1
        if isinstance(layer, str):  # built without DETAILED profiling verbosity: names only
            report.precisions[UNKNOWN] += 1
            continue
        name, kind = str(layer.get("Name", "")), str(layer.get("LayerType", ""))
        if kind == "Reformat" or "reformat" in name.lower():
            report.reformats.append(name)
            continue
        outputs = layer.get("Outputs") or [{}]
        report.precisions[tensor_precision(outputs[0])] += 1
    return report
