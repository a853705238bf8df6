"""``python -m deploy.bench``: latency, throughput, pipeline FPS, memory, mAP and layers of the four engines of a
``make qat`` run (TensorRT; ONNX Runtime stands in where it is missing, and the report says so).

Example:
    $ python -m deploy.bench --run runs/qat/qat --data data/synthetic/data.yaml --out benchmarks/results/engines
    $ docker run --rm --runtime nvidia -v "$PWD/runs/qat/qat:/models:ro" -v "$PWD/data:/data:ro" \\
        -v "$PWD/results:/results" yolo-trt-qat:jetson-jp6 bench --run /models --data /data/synthetic/data.yaml \\
        --out /results
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from base.errors import ToolchainError, report_errors
from deploy.bench.backends import BACKENDS
from deploy.bench.report import write
from deploy.bench.run import BenchConfig, run_bench


def build_parser() -> argparse.ArgumentParser:
    """The flags; every default is ``BenchConfig``'s."""
    d = BenchConfig("", "", "")
    p = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="make qat run: fp32.onnx, fp32.fp16.onnx, ptq.int8.onnx, qat.int8.onnx")
    p.add_argument("--data", required=True, help="data.yaml: its val split scores every row")
    p.add_argument("--out", default="benchmarks/results/engines",
                   help="report folder (engines in OUT/engines, reused when their ONNX is unchanged)")
    p.add_argument("--max-batch", type=int, default=d.max_batch, help="engine profile max batch, throughput batch")
    p.add_argument("--runs", type=int, default=d.runs)
    p.add_argument("--warmup", type=int, default=d.warmup)
    p.add_argument("--frames", type=int, default=d.frames, help="video frames through the deploy/infer.py pipeline")
    p.add_argument("--resamples", type=int, default=d.resamples, help="bootstrap resamples of the mAP intervals")
    p.add_argument("--backend", default=d.backend, choices=list(BACKENDS))
    p.add_argument("--cuda", default=d.cuda, choices=["pycuda", "cuda-python"])
    return p


def config_from_args(a: argparse.Namespace) -> BenchConfig:
    return BenchConfig(a.run, a.data, a.out, a.max_batch, a.runs, a.warmup, a.frames, a.resamples, a.backend, a.cuda)


def bench(cfg: BenchConfig) -> int:
    """Run, write the report, print it; exit 1 when a row failed (the report says why)."""
    report = run_bench(cfg)
    print(write(report, Path(cfg.out)))
    print(f"{Path(cfg.out) / 'report.md'} ({report.minutes:.1f} min)")
    failed = [f"{r.name}: {r.status}" for r in report.rows if not r.ok]
    if failed:
        raise ToolchainError(f"{len(failed)} engine row(s) failed: " + "; ".join(failed))
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")  # fmt: skip
    a = build_parser().parse_args(argv)
    return report_errors(lambda: bench(config_from_args(a)))


if __name__ == "__main__":
    sys.exit(main())
