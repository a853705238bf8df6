"""``make bench``: latency, memory and mAP of FP32, PTQ, QAT (and the peer) on every backend here.

The CPU rows (OpenVINO, ONNX Runtime) are the suite's (``benchmarks/suite.py``); the TensorRT rows are the
engine benchmark's (``deploy.bench``: FP32, FP16, INT8 PTQ and INT8 QAT engines; ONNX Runtime standing in
where TensorRT is not), written to ``<name>/engines/`` and named in the report.

Example:
    $ python -m benchmarks.run --run runs/qat/demo --data data/synthetic/data.yaml --name demo
    $ python -m benchmarks.run compare benchmarks/results/a/report.json benchmarks/results/b/report.json
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from base.errors import ToolchainError, report_errors
from benchmarks import report, suite
from deploy.bench import report as engine_report
from deploy.bench.run import BenchConfig, run_bench

logger = logging.getLogger("bench")


def _bench(a: argparse.Namespace) -> None:
    run_dir = Path(a.run)
    if not run_dir.is_dir():
        raise ToolchainError(f"{run_dir}: no QAT run here; run 'make qat' (or 'make demo') first")
    start = time.perf_counter()
    rows = suite.plan_rows(run_dir, a.peer)
    for r in rows:
        logger.info("row %-45s %s", r.name, f"skipped: {r.skipped}" if r.skipped else "runs")
    if all(r.skipped for r in rows):
        reasons = sorted({r.skipped for r in rows if r.skipped})
        raise ToolchainError(f"{run_dir}: nothing to measure, every row was skipped: " + "; ".join(reasons))
    load: dict = {}
    steps = [("latency", lambda: load.update(suite.measure_latency(rows, a.threads, a.runs, a.warmup, a.max_batch))),
             ("per-layer counters", lambda: suite.measure_layers(rows, a.threads)),
             ("memory", lambda: suite.measure_memory(rows, a.threads)),
             ("accuracy", lambda: suite.measure_accuracy(rows, a.data, a.threads, a.resamples)),
             ("pipeline", lambda: suite.measure_pipeline(rows, a.data, a.threads, a.frames))]  # fmt: skip
    folder = Path(a.out) / a.name
    notes: list[str] = []
    if a.engines:
        steps.append(("engines (deploy.bench)", lambda: notes.append(engine_step(run_dir, folder / "engines", a))))
    for i, (name, step) in enumerate(steps, 1):
        logger.info("[%d/%d] %s", i, len(steps), name)
        step()
    env = {**suite.environment(), **{k: round(v, 2) for k, v in load.items()}}
    text = report.write(rows, env, folder, a.name, notes)
    print(text)
    print(f"{folder / 'report.md'} ({(time.perf_counter() - start) / 60:.1f} min)")
    wrong = report.faults(rows)
    if wrong:
        raise ToolchainError(f"{len(wrong)} benchmark row(s) are faults, not results: " + "; ".join(wrong))


def engine_step(run_dir: Path, folder: Path, a: argparse.Namespace) -> str:
    """The engine benchmark of the same run, with the suite's settings; returns the report's line about it (a run
    it cannot take, e.g. one without its FP16 ONNX, is that line, and the CPU rows still stand)."""
    cfg = BenchConfig(str(run_dir), a.data, str(folder), a.max_batch, a.runs, a.warmup, a.frames, a.resamples)
    try:
        engines = run_bench(cfg)
    except ToolchainError as exc:
        logger.error("engine benchmark: %s", exc)
        return f"TensorRT rows: engine benchmark not run: {exc}"
    engine_report.write(engines, folder)
    failed = [f"{r.name} ({r.status})" for r in engines.rows if not r.ok]
    return (f"TensorRT rows: [engines/report.md](engines/report.md), {engines.backend_label}"
            + (f" ({engines.standin})" if engines.standin else "") + (f"; failed: {'; '.join(failed)}" if failed
            else ""))  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """``bench``'s flags (``bench compare A B``: ``build_compare_parser``)."""
    p = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="QAT run folder with fp32.onnx, ptq.int8.onnx, qat.int8.onnx")
    p.add_argument("--data", required=True, help="data.yaml whose val split scores every row")
    p.add_argument("--peer", default=None, help="the peer's INT8 ONNX (ultralytics QAT), if any")
    p.add_argument("--name", default="bench", help="report folder name under --out")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--runs", type=int, default=100, help="timed runs of each row, over 5 rotated blocks")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs at the start of each block")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--frames", type=int, default=150, help="video frames for the pipeline FPS")
    p.add_argument("--max-batch", type=int, default=8, help="throughput batch for dynamic-batch models and engines")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for the mAP intervals")
    p.add_argument("--no-engines", dest="engines", action="store_false",
                   help="leave out the engine benchmark (deploy.bench: TensorRT, or ONNX Runtime standing in)")
    return p


def build_compare_parser() -> argparse.ArgumentParser:
    """``bench compare A B``: two ``report.json`` side by side."""
    p = argparse.ArgumentParser(prog="bench compare")
    p.add_argument("a")
    p.add_argument("b")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    if argv[:1] == ["compare"]:
        c = build_compare_parser().parse_args(argv[1:])
        return report_errors(lambda: print(report.compare(Path(c.a), Path(c.b))))
    return report_errors(_bench, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
