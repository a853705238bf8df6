"""What a report says about the machine a CPU runner ran on: the CPU, the kernels' ISA, what OpenVINO's
INT8 self-check found, and the faster model to run where INT8 gains nothing here."""

from __future__ import annotations

from pathlib import Path

from deploy.cpu import describe, effective_isa


def float_sibling(model: Path) -> Path | None:
    """The FP32 ONNX written beside an INT8 one: ``x.int8.onnx`` -> ``x.onnx``; a QAT run's ``fp32.onnx``."""
    model = Path(model)
    candidates = [model.with_name(model.name.replace(".int8.onnx", ".onnx")), model.with_name("fp32.onnx")]
    return next((c for c in candidates if c != model and c.is_file()), None)


def machine_report(runner, model: str | Path) -> dict:
    """``cpu``, ``kernel_isa``, ``int8_note`` (OpenVINO's self-check) and ``advice`` (empty: none)."""
    note = getattr(runner, "int8_note", None)
    out = {"cpu": describe(), "kernel_isa": effective_isa() or "unknown", "int8_note": note() if callable(note) else "",
           "advice": ""}  # fmt: skip
    if getattr(runner, "remedy", None) == "float":
        sibling = float_sibling(Path(model))
        out["advice"] = ("INT8 is no faster than float on this CPU (no VNNI: its convolutions run in float here): run "
                         f"{sibling or 'the FP32 ONNX of this model'} instead")  # fmt: skip
    return out


def machine_lines(report: dict) -> str:
    """The report's lines for a terminal."""
    lines = [f"CPU: {report['cpu']}; kernels: {report['kernel_isa']}", report["int8_note"], report["advice"]]
    return "\n".join(line for line in lines if line)
