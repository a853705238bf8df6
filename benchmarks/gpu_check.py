"""``make gpu-check``: everything the first day on a GPU or Jetson needs, in one command.

On a machine with TensorRT and a CUDA library (pycuda or cuda-python), from the shared baseline:

1. ``pytest -m "trt or gpu"``;
2. the ONNX files: FP32, its FP16 variant, the PTQ QDQ INT8 (toolchain), and the peer's INT8 if given;
3. engines FP32 / FP16 (from the FP16 ONNX) / INT8 from Q/DQ / INT8 calibrated (where this TensorRT still has
   calibrators) / the peer's INT8, through ``deploy.engine.build.engine_from_onnx``;
4. each engine's outputs against ONNX Runtime on the same val images, the ONNX it was built from: max and
   median absolute and relative error per output, the statistics ``polygraphy run --trt --onnxrt`` prints
   (Polygraphy's own comparator when it is installed, the same formulas here otherwise);
5. each engine's mAP through our evaluator, beside its ONNX's on ONNX Runtime;
6. latency (batch 1, our runner; trtexec's GPU compute time when trtexec is on PATH) and memory (GPU and host,
   in a process of its own);
7. the layer report (INT8 / FP16 / FP32 layers, reformats) of our QDQ engine and of the peer's;
8. ``deploy/infer.py`` on a video made from val images, inference on the pipeline's worker thread.

Everything goes to ``benchmarks/results/gpu-check/`` (``report.md``, ``report.json``, logs, engines). A step
that fails is recorded with its error and the others still run. Exit status: 0 when every step passed,
1 when one failed, 0 with one ``gpu-check: skipped: ...`` line where TensorRT or CUDA is missing.

Example:
    $ make gpu-check                      # or: python -m benchmarks.gpu_check --peer peer.int8.onnx
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from base.errors import ToolchainError, report_errors
from base.fileio import write_json
from benchmarks import suite
from benchmarks.gpu_config import Backends, GpuCheckConfig, tensorrt_backends
from benchmarks.gpu_steps import (
    Engine,
    build_engines,
    compare_outputs,
    layer_reports,
    measure_memory,
    plan_engines,
    prepare_onnx,
    run_tests,
    score,
    time_engines,
    video_through_infer,
)
from deploy.bench.backends import missing_requirement

logger = logging.getLogger("gpu-check")


@dataclass
class Report:
    """Every step's outcome (``ok``, ``failed: ...``, ``skipped: ...``) and every engine's numbers."""

    steps: dict[str, str] = field(default_factory=dict)
    engines: list[Engine] = field(default_factory=list)
    details: dict = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [s for s, v in self.steps.items() if v.startswith("failed")]


def step(report: Report, name: str, fn: Callable[[], str | None]) -> None:
    """Run one step; its result (or error) is recorded and the check goes on."""
    logger.info("step %s", name)
    start = time.perf_counter()
    try:
        result = fn() or "ok"
    except (ToolchainError, OSError, RuntimeError, ValueError, subprocess.SubprocessError) as exc:
        result = f"failed: {exc}"
        logger.error("%s: %s", name, exc)
    report.steps[name] = result
    logger.info("step %s: %s (%.1f s)", name, result, time.perf_counter() - start)


def run_gpu_check(cfg: GpuCheckConfig, backends: Backends) -> Report:
    """Every step in order; engines and results under ``cfg.out``."""
    folder = Path(cfg.out)
    folder.mkdir(parents=True, exist_ok=True)
    report, engines, onnx = Report(), [], {}
    report.engines = engines
    if cfg.tests:
        step(report, "tests", lambda: run_tests(backends, folder))
    step(report, "onnx", lambda: onnx.update(prepare_onnx(cfg, backends, folder)))
    if not onnx:
        return report
    engines += plan_engines(onnx)
    step(report, "engines", lambda: build_engines(engines, cfg, backends, folder))
    step(report, "outputs vs ONNX Runtime", lambda: compare_outputs(engines, cfg, backends))
    step(report, "mAP", lambda: score(engines, cfg, backends))
    step(report, "latency", lambda: time_engines(engines, cfg, backends))
    step(report, "memory", lambda: measure_memory(engines, cfg, backends))
    step(report, "layers", lambda: layer_reports(engines))
    step(report, "deploy/infer.py video", lambda: video_through_infer(engines, cfg, backends, folder))
    return report


def _cell(value, spec: str = ".4f") -> str:
    return "-" if value is None or value == {} else format(value, spec) if isinstance(value, float) else str(value)


def markdown(report: Report, cfg: GpuCheckConfig, environment: dict) -> str:
    """The report as Markdown: steps, then one row per engine."""
    lines = [
        f"# gpu-check: {cfg.weights} on {cfg.data}",
        "",
        "Environment: " + ", ".join(f"{k} {v}" for k, v in environment.items() if v is not None),
        "",
        "| step | result |",
        "|---|---|",
    ]
    lines += [f"| {name} | {result} |" for name, result in report.steps.items()]
    lines += [
        "",
        "| engine | status | sidecar precision | max abs | max rel | scores max abs | mAP50-95 | its ONNX "
        "(ORT) | p50 ms | p99 ms | trtexec GPU median ms | GPU MiB | layers |",
        "|" + "---|" * 13,
    ]
    for e in report.engines:
        out, lat = e.outputs.get("all", {}), e.latency_ms
        lines.append("| " + " | ".join([
            e.name, e.status, e.sidecar_precision or "-", _cell(out.get("max_abs"), ".3g"),
            _cell(out.get("max_rel"), ".3g"),
            _cell(e.outputs.get("scores", {}).get("max_abs"), ".3g"), _cell(e.map.get("map50_95")),
            _cell(e.map.get("onnx_map50_95")), _cell(lat.get("p50"), ".2f"), _cell(lat.get("p99"), ".2f"),
            _cell(lat.get("trtexec_gpu_compute", {}).get("median"), ".3f"), _cell(e.memory.get("gpu_mib"), ".0f"),
            _cell(e.layers.get("summary")),
        ]) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


def write_report(report: Report, cfg: GpuCheckConfig, folder: Path) -> str:
    """``report.md`` and ``report.json`` in ``folder``, with this machine's environment; returns the markdown."""
    env = suite.environment()
    text = markdown(report, cfg, env)
    (folder / "report.md").write_text(text)
    write_json(folder / "report.json", {"config": asdict(cfg), "environment": env, "steps": report.steps,
                                        "engines": [asdict(e) for e in report.engines]})  # fmt: skip
    return text


def build_parser() -> argparse.ArgumentParser:
    d = GpuCheckConfig()
    p = argparse.ArgumentParser(prog="gpu-check", description=__doc__.split("\n")[0])
    p.add_argument("--weights", default=d.weights, help="FP32 baseline .pt (default: ../shared's road-signs baseline)")
    p.add_argument("--data", default=d.data, help="data.yaml (default: ../shared's road-signs)")
    p.add_argument("--out", default=d.out)
    p.add_argument("--imgsz", type=int, default=d.imgsz)
    p.add_argument("--peer", default=d.peer, help="the peer's INT8 QDQ ONNX (ultralytics QAT)")
    p.add_argument("--ptq-images", type=int, default=d.ptq_images)
    p.add_argument("--calib-batches", type=int, default=d.calib_batches)
    p.add_argument("--compare-images", type=int, default=d.compare_images)
    p.add_argument("--runs", type=int, default=d.runs)
    p.add_argument("--frames", type=int, default=d.frames)
    p.add_argument("--cuda", default=d.cuda, choices=["pycuda", "cuda-python"])
    p.add_argument("--no-tests", action="store_true", help="skip pytest -m 'trt or gpu'")
    return p


def config_from_args(a: argparse.Namespace) -> GpuCheckConfig:
    return GpuCheckConfig(a.weights, a.data, a.out, a.imgsz, a.peer, a.ptq_images, a.calib_batches,
                          a.compare_images, a.runs, a.frames, a.cuda, not a.no_tests)  # fmt: skip


def main(argv: list[str] | None = None, backends: Backends | None = None) -> int:
    """CLI: the check, or one skip line (exit 0) where TensorRT or CUDA is missing."""
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")  # fmt: skip
    missing = None if backends else missing_requirement()
    if missing:
        print(f"gpu-check: skipped: {missing}")
        return 0

    def check() -> int:
        cfg = config_from_args(a)
        report = run_gpu_check(cfg, backends or tensorrt_backends(cfg.cuda))
        print(write_report(report, cfg, Path(cfg.out)))
        print(
            f"{Path(cfg.out) / 'report.md'}: " + (f"FAILED: {report.failed}" if report.failed else "all steps passed")
        )
        return 1 if report.failed else 0

    return report_errors(check)


if __name__ == "__main__":
    sys.exit(main())
