"""``make bench``: latency, memory and mAP of FP32, PTQ, QAT (and the peer) on every backend here.

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

logger = logging.getLogger("bench")


def _bench(a: argparse.Namespace) -> None:
    run_dir = Path(a.run)
    if not run_dir.is_dir():
        raise ToolchainError(f"{run_dir}: no QAT run here; run 'make qat' (or 'make demo') first")
    start = time.perf_counter()
    rows = suite.plan_rows(run_dir, a.peer)
    suite.prepare_engines(rows, Path(a.out) / a.name, a.max_batch)
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
    for i, (name, step) in enumerate(steps, 1):
        logger.info("[%d/%d] %s", i, len(steps), name)
        step()
    folder = Path(a.out) / a.name
    text = report.write(rows, {**suite.environment(), **{k: round(v, 2) for k, v in load.items()}}, folder, a.name)
    print(text)
    print(f"{folder / 'report.md'} ({(time.perf_counter() - start) / 60:.1f} min)")
    wrong = report.faults(rows)
    if wrong:
        raise ToolchainError(f"{len(wrong)} benchmark row(s) are faults, not results: " + "; ".join(wrong))


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
