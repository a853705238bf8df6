"""The engine benchmark's report: ``report.md`` (one line per row, the mAP differences, the layer report of
the QAT engine beside the PTQ engine), ``report.json`` and ``report.png`` (drawn with OpenCV, which the deploy
images have; matplotlib is not in them)."""

from __future__ import annotations

import importlib.util
import platform
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np

from base.errors import ToolchainError
from base.fileio import atomic_path, write_json
from deploy.bench.measure import NO_ENGINE, extra_reformats
from deploy.bench.rows import EngineRow
from deploy.bench.run import BenchReport
from deploy.cpu import describe as cpu_describe

HEADER = ("row", "runs", "p50 ms (b1)", "p99 ms (b1)", "img/s (b1)", "max batch", "p50 ms (max b)", "p99 ms (max b)",
          "img/s (max b)", "pipeline FPS", "pipeline model FPS", "pipeline infer p50/p99 ms", "GPU MiB",
          "peak RSS MiB", "mAP50-95 [95% CI]", "vs FP32 (paired)")  # fmt: skip
LAYER_HEADER = ("row", "source", "layers", "INT8", "FP16", "FP32", "reformats", "extra reformats (QAT - PTQ)")


def environment() -> dict:
    """This machine: Python, CPU, GPU (nvidia-smi), library versions."""
    env = {"python": platform.python_version(), "machine": platform.machine(), "cpu": cpu_describe(),
           "numpy": np.__version__, "opencv": cv2.__version__}  # fmt: skip
    if shutil.which("nvidia-smi"):
        try:
            done = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                                  capture_output=True, text=True, timeout=20)  # fmt: skip
            env["gpu"] = done.stdout.strip() or None
        except (OSError, subprocess.TimeoutExpired):
            env["gpu"] = None
    for module in ("onnxruntime", "tensorrt"):
        if importlib.util.find_spec(module) is not None:
            env[module] = getattr(__import__(module), "__version__", "?")
    return env


def _f(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _vs_fp32(r: EngineRow) -> str:
    d = r.accuracy.get("differences", {}).get("FP32")
    if not d:
        return "reference" if r.name == "FP32" and r.accuracy else "-"
    verdict = "real" if d["real"] else "within noise"
    return f"{d['delta']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] {verdict}"


def _row_cells(r: EngineRow, runs_on: str) -> list[str]:
    b1, bn, pipe, mem, acc = (r.latency.get("batch1", {}), r.latency.get("batchN", {}), r.pipeline, r.memory,
                              r.accuracy)  # fmt: skip
    infer = pipe.get("inference", {})
    ci = acc.get("interval")
    gpu = _f(mem.get("gpu_mib"), ".0f") if mem.get("gpu_mib") is not None else mem.get("gpu_note", "-")
    maxb = [_f(bn.get("p50")), _f(bn.get("p99")), _f(bn.get("images_per_s"), ".1f")] if bn else \
        ["static batch 1"] * 3  # fmt: skip
    return [r.name, runs_on, _f(b1.get("p50")), _f(b1.get("p99")), _f(b1.get("images_per_s"), ".1f"), str(r.batch),
            *maxb, _f(pipe.get("fps"), ".1f"), _f(pipe.get("model_fps"), ".1f"),
            f"{_f(infer.get('p50_ms'))}/{_f(infer.get('p99_ms'))}", gpu, _f(mem.get("peak_rss_mib"), ".0f"),
            _f(acc.get("map50_95"), ".4f") + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""), _vs_fp32(r)]  # fmt: skip


def _table(header: tuple[str, ...]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]


def layer_lines(rows: list[EngineRow]) -> list[str]:
    """One line per row: layers per precision and reformats from the engine sidecar; the QAT line's extra
    reformats against PTQ (its placement must add none). With ONNX Runtime standing in: the Q/DQ estimate."""
    extra = extra_reformats(rows)
    lines = _table(LAYER_HEADER)
    for r in rows:
        lay = r.layers
        if not lay:
            lines.append(f"| {r.name} | {r.status if not r.ok else '-'} |" + " - |" * (len(LAYER_HEADER) - 2))
        elif lay.get("source") == "engine":
            p = lay.get("precisions", {})
            more = ("-" if extra is None else f"{extra:+d}" + (" (0 extra reformats: holds)" if extra == 0 else
                    " (QAT placement adds reformats)")) if r.name == "INT8 QAT" else "-"  # fmt: skip
            cells = [lay.get("layers", "-"), p.get("INT8", 0), p.get("FP16", 0), p.get("FP32", 0), lay.get("reformats")]
            lines.append(f"| {r.name} | engine sidecar | " + " | ".join(str(c) for c in cells) + f" | {more} |")
        else:
            lines.append(f"| {r.name} | {lay['source']} | {NO_ENGINE} | ~{lay['int8_convs']} of {lay['convs']} convs "
                         f"(estimate) | {NO_ENGINE} | {NO_ENGINE} | {NO_ENGINE} | {NO_ENGINE} |")  # fmt: skip
    return lines


def markdown(report: BenchReport, env: dict) -> str:
    """The whole report as Markdown."""
    cfg, standin = report.config, report.standin
    runs_on = "TensorRT engine" if standin is None else "ONNX Runtime (stand-in)"
    lines = [f"# Engine benchmark: {cfg.run} on {cfg.data}", "",
             f"Backend: **{report.backend_label}**" + (f": {standin}. Every row below is its ONNX run as it is on "
             "this CPU, not a TensorRT engine; GPU memory and the layer report need TensorRT." if standin else "."),
             "", "Environment: " + ", ".join(f"{k} {v}" for k, v in env.items() if v is not None), "",
             f"Each row alone, one after another: {cfg.runs} timed runs at batch 1 after {cfg.warmup} warm-up runs, "
             f"{max(5, cfg.runs // 10)} at the max batch (img/s from p50). Pipeline: deploy/infer.py's threaded loop "
             f"over {cfg.frames} val frames, one frame at a time. Memory: a fresh process loading the model and "
             f"running it 20 times. mAP50-95 on the val split with its 95% bootstrap interval; against FP32: paired "
             f"bootstrap ({cfg.resamples} resamples, the same images for both), real only when the interval "
             "excludes 0.", "", *_table(HEADER)]  # fmt: skip
    for r in report.rows:
        if r.ok and r.latency:
            lines.append("| " + " | ".join(_row_cells(r, runs_on)) + " |")
        else:
            lines.append(f"| {r.name} | not run: {r.status} |" + " |" * (len(HEADER) - 2))
    qat = next((r for r in report.rows if r.name == "INT8 QAT"), None)
    d = (qat.accuracy.get("differences", {}).get("INT8 PTQ") if qat else None) or None
    if d:
        lines += ["", f"INT8 QAT against INT8 PTQ: {d['delta']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] "
                  f"{'real' if d['real'] else 'within noise'}."]  # fmt: skip
    lines += ["", "Layer report (engine sidecar, `deploy.engine.build`'s inspector): the QAT engine beside the PTQ "
              "engine; QAT's Q/DQ placement must add 0 reformat layers." if standin is None else
              f"Layer report: {NO_ENGINE} ({runs_on}); INT8 convs estimated from the ONNX's Q/DQ nodes.", "",
              *layer_lines(report.rows), "", f"{report.minutes:.1f} min."]  # fmt: skip
    return "\n".join(lines) + "\n"


def _bar(img: np.ndarray, x0: int, y0: int, w: int, h: int, values: list, labels: list[str], title: str,
         spans: list | None = None) -> None:  # fmt: skip
    """Horizontal bars of ``values`` (and a span per bar: an interval line) in a box at (x0, y0)."""
    cv2.putText(img, title, (x0, y0 - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), (160, 160, 160), 1)
    top = max([v for v in values if v is not None] + [s[1] for s in (spans or []) if s] + [1e-9])
    step = h // max(1, len(values))
    for i, (v, label) in enumerate(zip(values, labels)):
        y = y0 + i * step + step // 4
        cv2.putText(img, label, (x0 - 110, y + step // 3), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        if v is None:
            continue
        cv2.rectangle(img, (x0 + 1, y), (x0 + 1 + int((w - 60) * v / top), y + step // 2), (180, 120, 40), -1)
        cv2.putText(img, f"{v:.3g}", (x0 + 4 + int((w - 60) * v / top), y + step // 3), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
        if spans and spans[i]:
            lo, hi = (x0 + 1 + int((w - 60) * s / top) for s in spans[i])
            cv2.line(img, (lo, y + step // 4), (hi, y + step // 4), (0, 0, 200), 2)


def plot(report: BenchReport, path: Path) -> Path:
    """Latency p50 at batch 1 (red: to p99) and mAP50-95 (red: 95% interval), one bar per row."""
    img = np.full((420, 900, 3), 255, np.uint8)
    rows = [r for r in report.rows if r.latency]
    labels = [r.name for r in rows]
    lat = [r.latency["batch1"]["p50"] for r in rows]
    _bar(img, 130, 60, 320, 300, lat, labels, "latency p50 ms, batch 1 (red: p50-p99)",
         [(r.latency["batch1"]["p50"], r.latency["batch1"]["p99"]) for r in rows])  # fmt: skip
    maps = [r.accuracy.get("map50_95") for r in rows]
    _bar(img, 570, 60, 320, 300, maps, labels, "mAP50-95 (red: 95% bootstrap)",
         [tuple(r.accuracy["interval"]) if r.accuracy.get("interval") else None for r in rows])  # fmt: skip
    cv2.putText(img, report.backend_label, (10, 400), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 160), 1, cv2.LINE_AA)
    with atomic_path(path, keep_suffix=True) as tmp:
        if not cv2.imwrite(str(tmp), img):
            raise ToolchainError(f"{path}: OpenCV could not write the PNG")
    return path


def write(report: BenchReport, folder: Path) -> str:
    """``report.md``, ``report.json`` and ``report.png`` in ``folder``; returns the markdown."""
    env = environment()
    text = markdown(report, env)
    with atomic_path(folder / "report.md") as tmp:
        tmp.write_text(text)
    write_json(folder / "report.json", {**report.to_dict(), "environment": env,
                                        "extra_reformats": extra_reformats(report.rows)})  # fmt: skip
    plot(report, folder / "report.png")
    return text
