"""Layer report of a built engine, from TensorRT's engine inspector (JSON, detailed verbosity).

It counts layers by the precision they compute in and counts reformat layers: when Q/DQ placement
lets TensorRT fuse, almost every convolution is INT8 and reformats are few.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field


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
    t = text.lower()
    if "int8" in t:
        return "INT8"
    if "fp16" in t or "half" in t:
        return "FP16"
    if "fp8" in t:
        return "FP8"
    if "int32" in t or "int64" in t or "bool" in t:
        return "INT"
    return "FP32"


def layer_report(info: str | dict) -> LayerReport:
    """Parse ``IEngineInspector.get_engine_information(LayerInformationFormat.JSON)``.

    A layer's precision is that of its first output (``Format/Datatype``); layers whose type or
    name says reformat are counted apart.
    """
    data = json.loads(info) if isinstance(info, str) else info
    report = LayerReport()
    for layer in data.get("Layers", []):
        if isinstance(layer, str):  # inspector without DETAILED verbosity: names only
            report.layers += 1
            report.precisions["unknown"] += 1
            continue
        report.layers += 1
        name, kind = str(layer.get("Name", "")), str(layer.get("LayerType", ""))
        if kind == "Reformat" or "reformat" in name.lower():
            report.reformats.append(name)
            continue
        outputs = layer.get("Outputs") or [{}]
        report.precisions[_precision(str(outputs[0].get("Format/Datatype", "")))] += 1
    return report
