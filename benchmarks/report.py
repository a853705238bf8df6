"""Benchmark reports: the markdown table with ratios against FP32, JSON, the latency-vs-mAP plot,
and two reports side by side (``bench compare``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from benchmarks.measure import Row
from deploy.fileio import atomic_path, write_json


def _fp32(rows: list[Row], backend: str) -> Row | None:
    """The baseline of a backend: FP32 with the f32 hint (FP16 for TensorRT, which builds no FP32 row)."""
    return next((r for r in rows if r.backend == backend and r.variant in ("FP32", "FP16")
                 and r.precision in ("f32", "fp16") and not r.skipped), None)  # fmt: skip


def _fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def markdown(rows: list[Row], env: dict, title: str) -> str:
    """The report: environment, one line per row (or why it did not run), ratios against FP32 on the same backend."""
    lines = [f"# Benchmark: {title}", "",
             "Environment: " + ", ".join(f"{k} {v}" for k, v in env.items() if v is not None), "",
             "Latency: batch 1, p50 over round-robin runs of all rows (noise: min-max). Speed-up and size "
             "are against FP32 (f32) on the same backend. mAP on the val split through the same runner.", "",
             "| model / backend | p50 ms | p90 | p99 | min-max | speed-up | img/s | pipeline FPS | peak RSS MiB | "
             "GPU MiB | file MiB | size | mAP50-95 | mAP50 | AP small |",
             "|" + "---|" * 16]  # fmt: skip
    for r in rows:
        if r.skipped:
            lines.append(f"| {r.name} | not run: {r.skipped} |" + " |" * 14)
            continue
        base = _fp32(rows, r.backend)
        lat, mem, acc = r.latency_ms, r.memory, r.accuracy
        speedup = base.latency_ms["p50"] / lat["p50"] if base else None
        size = mem.get("file_mib") / base.memory["file_mib"] if base and base.memory else None
        lines.append(
            f"| {r.name} | {_fmt(lat['p50'])} | {_fmt(lat['p90'])} | {_fmt(lat['p99'])} | "
            f"{_fmt(lat['min'])}-{_fmt(lat['max'])} | {_fmt(speedup)}x | "
            f"{_fmt(r.throughput.get('images_per_s'), '.1f')} | "
            f"{_fmt(r.pipeline.get('fps'), '.1f')} | {_fmt(mem.get('peak_rss_mib'), '.0f')} | "
            f"{_fmt(mem.get('gpu_mib'), '.0f')} | "
            f"{_fmt(mem.get('file_mib'), '.1f')} | {_fmt(size)}x | {_fmt(acc.get('map50_95'), '.4f')} | "
            f"{_fmt(acc.get('map50'), '.4f')} | {_fmt(acc.get('ap_small'), '.4f')} |"
        )
    classes = next((list(r.accuracy["per_class"]) for r in rows if r.accuracy), [])
    if classes:
        lines += ["", "Per-class AP50-95:", "", "| model / backend | " + " | ".join(classes) + " |",
                  "|" + "---|" * (len(classes) + 1)]  # fmt: skip
        for r in rows:
            if r.accuracy:
                cells = [_fmt(r.accuracy["per_class"][c], ".4f") for c in classes]
                lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[Row], path: Path) -> Path:
    """Latency (p50) against mAP50-95, one point per row."""
    from toolchain.plots import png_figure

    with png_figure(path, (8, 5)) as ax:
        for r in rows:
            if r.latency_ms and r.accuracy:
                ax.scatter(r.latency_ms["p50"], r.accuracy["map50_95"])
                ax.annotate(r.name, (r.latency_ms["p50"], r.accuracy["map50_95"]), fontsize=7)
        ax.set_xlabel("latency p50 (ms, batch 1)")
        ax.set_ylabel("mAP50-95")
        ax.set_title("Latency against accuracy")
    return path


def write(rows: list[Row], env: dict, folder: Path, title: str) -> str:
    """``report.md``, ``report.json`` and ``latency_vs_map.png`` in ``folder``; returns the markdown."""
    text = markdown(rows, env, title)
    with atomic_path(folder / "report.md") as tmp:
        tmp.write_text(text)
    write_json(folder / "report.json", {"title": title, "environment": env, "rows": [asdict(r) for r in rows]})
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
