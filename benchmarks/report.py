"""Benchmark reports: the markdown table with ratios against FP32, mAP differences with bootstrap
intervals, throughput and per-layer tables, JSON, the latency-vs-mAP plot, and two reports side by
side (``bench compare``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from base.fileio import atomic_path, write_json
from benchmarks import layers
from benchmarks.measure import Row
from toolchain.plots import png_figure


def _fp32(rows: list[Row], backend: str) -> Row | None:
    """The baseline of a backend: FP32 with the f32 hint (FP16 for TensorRT, which builds no FP32 row)."""
    return next((r for r in rows if r.backend == backend and r.variant in ("FP32", "FP16")
                 and r.precision in ("f32", "fp16") and not r.skipped), None)  # fmt: skip


def _fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


HEADER = ("model / backend", "p50 ms", "p10-p90", "p99", "min-max", "speed-up", "img/s (batch)", "pipeline FPS",
          "peak RSS MiB", "GPU MiB", "file MiB", "size", "mAP50-95 [95% CI]", "mAP50", "AP small")  # fmt: skip


def _table(header: tuple[str, ...] | list[str]) -> list[str]:
    """A markdown header and a separator with one cell per header cell."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]


def _row_cells(r: Row, base: Row | None) -> list[str]:
    lat, mem, acc, tp = r.latency_ms, r.memory, r.accuracy, r.throughput
    speedup = base.latency_ms["p50"] / lat["p50"] if base else None
    size = mem.get("file_mib") / base.memory["file_mib"] if base and base.memory and mem else None
    interval = acc.get("interval")
    ci = f" [{interval[0]:.4f}, {interval[1]:.4f}]" if interval else ""
    return [r.name, _fmt(lat["p50"]), f"{_fmt(lat.get('p10'))}-{_fmt(lat['p90'])}", _fmt(lat["p99"]),
            f"{_fmt(lat['min'])}-{_fmt(lat['max'])}", f"{_fmt(speedup)}x",
            f"{_fmt(tp.get('images_per_s'), '.1f')} ({tp.get('batch', '-')})", _fmt(r.pipeline.get("fps"), ".1f"),
            _fmt(mem.get("peak_rss_mib"), ".0f"), _fmt(mem.get("gpu_mib"), ".0f"), _fmt(mem.get("file_mib"), ".1f"),
            f"{_fmt(size)}x", _fmt(acc.get("map50_95"), ".4f") + ci, _fmt(acc.get("map50"), ".4f"),
            _fmt(acc.get("ap_small"), ".4f")]  # fmt: skip


def differences(rows: list[Row]) -> list[str]:
    """Every mAP difference with its paired bootstrap interval, and whether it is real or noise."""
    lines = []
    for r in rows:
        for other, d in r.accuracy.get("differences", {}).items():
            verdict = "real" if d["real"] else "within noise"
            lines.append(
                f"| {r.name} | {other} | {d['delta']:+.4f} | [{d['low']:+.4f}, {d['high']:+.4f}] | {verdict} |"
            )
    if not lines:
        return []
    d = next(d for r in rows for d in r.accuracy.get("differences", {}).values())
    return ["", f"mAP50-95 differences, paired bootstrap over the {d['images']} val images ({d['resamples']} "
            f"resamples, {d['confidence']:.0%} interval): a difference is real only when its interval excludes 0.", "",
            *_table(("row", "against", "difference", "interval", "verdict")), *lines]  # fmt: skip


def faults(rows: list[Row]) -> list[str]:
    """INT8 rows whose arithmetic differs from ONNX Runtime's beyond noise: the runtime is wrong here, the
    row is no result (ONNX Runtime computes Q/DQ in float: the reference)."""
    found = []
    for r in rows:
        if r.backend == "onnxruntime" or not r.variant.startswith("INT8"):
            continue
        for other, d in r.accuracy.get("differences", {}).items():
            if other.endswith("/ onnxruntime") and d["real"]:
                found.append(f"{r.name}: mAP50-95 {d['delta']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] against "
                             f"{other}, beyond noise: its INT8 arithmetic is wrong on this machine")  # fmt: skip
    return found


def int8_speed(rows: list[Row]) -> str:
    """One line per CPU backend: whether its fastest INT8 row beats its fastest FP32 row, and which to run."""
    lines = []
    for backend in ("openvino",):
        timed = [r for r in rows if r.backend == backend and r.latency_ms and not r.skipped]
        int8 = [r for r in timed if r.variant.startswith("INT8")]
        fp32 = [r for r in timed if r.variant == "FP32"]
        if not int8 or not fp32:
            continue
        best8 = min(int8, key=lambda r: r.latency_ms["p50"])
        best32 = min(fp32, key=lambda r: r.latency_ms["p50"])
        ratio = best32.latency_ms["p50"] / best8.latency_ms["p50"]
        if ratio > 1.0:
            lines.append(f"INT8 on this CPU: {best8.name} runs {ratio:.2f}x the speed of {best32.name}.")
        else:
            lines.append(f"INT8 on this CPU is no faster than float ({best8.name} at {ratio:.2f}x of {best32.name}): "
                         f"run {best32.model} on {backend} with the {best32.precision} hint.")  # fmt: skip
    return "\n".join(lines)


def throughput(rows: list[Row]) -> list[str]:
    """OpenVINO with the THROUGHPUT hint: images/s with every request in flight, batch 1 and the largest batch."""
    hinted = [r for r in rows if r.throughput.get("throughput_hint")]
    if not hinted:
        return []
    batches = sorted({int(k[5:].split("_")[0]) for r in hinted for k in r.throughput["throughput_hint"]
                      if k.startswith("batch")})  # fmt: skip
    lines = ["", "Throughput, OpenVINO THROUGHPUT hint (streams run in parallel, every request in flight; "
             "for many cameras on one box):", "",
             *_table(("model / backend", "streams x requests", *(f"img/s at batch {b}" for b in batches)))]  # fmt: skip
    for r in hinted:
        h = r.throughput["throughput_hint"]
        cells = [_fmt(h.get(f"batch{b}_images_per_s"), ".1f") for b in batches]
        lines.append(f"| {r.name} | {h['streams']} x {h['requests']} | " + " | ".join(cells) + " |")
    return lines


def markdown(rows: list[Row], env: dict, title: str, notes: list[str] | tuple[str, ...] = ()) -> str:
    """The report: environment, one line per row (or why it did not run), ``notes`` (the engine benchmark's
    line), ratios against FP32 on the same backend, mAP differences with bootstrap intervals, throughput,
    per-layer counters, per-class AP."""
    lines = [f"# Benchmark: {title}", "",
             "Environment: " + ", ".join(f"{k} {v}" for k, v in env.items() if v is not None), "",
             "Latency: batch 1, each row in its own process, rows taking turns in blocks (warm-up runs, then "
             "timed runs; the order rotates each round). Spread: p10-p90 and min-max. Speed-up and size are "
             "against FP32 (f32) on the same backend. mAP on the val split through the same runner, with its "
             "95% bootstrap interval over images.", "", *_table(HEADER)]  # fmt: skip
    for r in rows:
        if r.skipped:
            lines.append(f"| {r.name} | not run: {r.skipped} |" + " |" * (len(HEADER) - 2))
        else:
            lines.append("| " + " | ".join(_row_cells(r, _fp32(rows, r.backend))) + " |")
    lines += ["", *notes] if notes else []
    speed, wrong = int8_speed(rows), faults(rows)
    if speed:
        lines += ["", speed]
    if wrong:
        lines += ["", "**FAULTS** (not results: INT8 arithmetic that differs from ONNX Runtime's beyond noise):", "",
                  *(f"- {f}" for f in wrong)]  # fmt: skip
    lines += differences(rows) + throughput(rows)
    profiled = {r.name: r.layers for r in rows if r.layers}
    if profiled:
        lines += ["", "OpenVINO per-layer counters (PERF_COUNT), ms per batch-1 inference (nodes); SiLU and "
                  "requantization fused into a convolution count as that convolution:", "",
                  *layers.markdown(profiled)]  # fmt: skip
    classes = next((list(r.accuracy["per_class"]) for r in rows if r.accuracy), [])
    if classes:
        lines += ["", "Per-class AP50-95:", "", *_table(("model / backend", *classes))]
        for r in rows:
            if r.accuracy:
                cells = [_fmt(r.accuracy["per_class"][c], ".4f") for c in classes]
                lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[Row], path: Path) -> Path:
    """Latency (p50, bar p10-p90) against mAP50-95 (bar: 95% bootstrap interval), one point per row."""
    with png_figure(path, (8, 5)) as ax:
        for r in rows:
            if r.latency_ms and r.accuracy:
                lat, acc = r.latency_ms, r.accuracy
                x, y = lat["p50"], acc["map50_95"]
                low, high = acc.get("interval") or (y, y)
                ax.errorbar(x, y, xerr=[[x - lat.get("p10", x)], [lat["p90"] - x]],
                            yerr=[[max(0.0, y - low)], [max(0.0, high - y)]], fmt="o", capsize=3)  # fmt: skip
                ax.annotate(r.name, (x, y), fontsize=7)
        ax.set_xlabel("latency p50 (ms, batch 1; bar: p10-p90)")
        ax.set_ylabel("mAP50-95 (bar: 95% bootstrap interval over images)")
        ax.set_title("Latency against accuracy")
    return path


def write(rows: list[Row], env: dict, folder: Path, title: str, notes: list[str] | tuple[str, ...] = ()) -> str:
    """``report.md``, ``report.json`` and ``latency_vs_map.png`` in ``folder``; returns the markdown."""
    text = markdown(rows, env, title, notes)
    with atomic_path(folder / "report.md") as tmp:
        tmp.write_text(text)
    write_json(folder / "report.json", {"title": title, "environment": env, "rows": [asdict(r) for r in rows],
                                        "notes": list(notes)})  # fmt: skip
    plot(rows, folder / "latency_vs_map.png")
    return text


def compare(a: Path, b: Path) -> str:
    """Two ``report.json`` side by side: p50 latency and mAP50-95 of the rows they share."""
    ra, rb = (json.loads(Path(p).read_text()) for p in (a, b))
    key = lambda r: (r["variant"], r["backend"], r["precision"])  # noqa: E731
    rows_b = {key(r): r for r in rb["rows"]}
    lines = [f"| row | p50 ms {ra['title']} | p50 ms {rb['title']} | mAP50-95 {ra['title']} | mAP50-95 {rb['title']} |",
             "|---|---|---|---|---|"]  # fmt: skip
    for r in ra["rows"]:
        o = rows_b.get(key(r))
        if o is None:
            continue
        lat = lambda x: _fmt(x["latency_ms"].get("p50")) if x["latency_ms"] else "-"  # noqa: E731
        acc = lambda x: _fmt(x["accuracy"].get("map50_95"), ".4f") if x["accuracy"] else "-"  # noqa: E731
        name = f"{r['variant']} / {r['backend']} ({r['precision']})"
        lines.append(f"| {name} | {lat(r)} | {lat(o)} | {acc(r)} | {acc(o)} |")
    return "\n".join(lines)
