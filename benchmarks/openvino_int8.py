"""FP32 against INT8 (QDQ ONNX) on OpenVINO, side by side in one process, runs interleaved A B A B.

Each variant (model x precision hint) is timed at batch 1 with the given threads; the table gives
medians with min-max, the ratios against FP32, and how many convolutions OpenVINO runs in u8.
With ``--data`` the INT8 model is also evaluated through ONNX Runtime and OpenVINO on the val split.

Example:
    $ python -m benchmarks.openvino_int8 --fp32 runs/ptq/best.onnx --int8 runs/ptq/best.int8.onnx
"""

from __future__ import annotations

import argparse
import logging
import platform
import time
from pathlib import Path

import numpy as np

from benchmarks.suite import cpu_name
from deploy.fileio import write_json
from deploy.runtime.openvino import OpenVINORunner


def _ov_version() -> str:
    import openvino

    return openvino.__version__.split("-")[0]


def time_interleaved(runners: dict[str, OpenVINORunner], runs: int, warmup: int) -> dict[str, np.ndarray]:
    """Milliseconds per inference of each runner, one run of each in turn, ``runs`` rounds."""
    shape = next(iter(runners.values())).input_shape
    batch = np.random.default_rng(0).random((1, *shape[1:]), dtype=np.float32)
    for runner in runners.values():
        for _ in range(warmup):
            runner.infer(batch)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(runs):
        for name, runner in runners.items():
            start = time.perf_counter()
            runner.infer(batch)
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: np.array(t) for name, t in times.items()}


def evaluate_backends(int8: Path, data: str) -> dict[str, float]:
    """mAP50-95 of the INT8 model through ONNX Runtime (reference) and OpenVINO (f32 hint)."""
    from deploy.dataset import load_data_yaml, load_split
    from deploy.evaluate import evaluate
    from deploy.runtime import create_runner

    split = load_split(load_data_yaml(data), "val")
    out = {}
    for backend in ("onnxruntime", "openvino"):
        with create_runner(int8, backend) as runner:
            out[backend] = evaluate(runner, split).map50_95
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fp32", type=Path, required=True, help="FP32 ONNX")
    parser.add_argument("--int8", type=Path, required=True, help="QDQ ONNX of the same model and size")
    parser.add_argument("--precisions", nargs="+", default=["f32", "bf16"], help="OpenVINO precision hints")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=50, help="timed runs of each variant (at least 30)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--data", default=None, help="data.yaml: also compare INT8 mAP on ONNX Runtime and OpenVINO")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/openvino_int8/report.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    runners = {}
    for precision in args.precisions:
        for label, path in (("fp32", args.fp32), ("int8", args.int8)):
            runners[f"{label}/{precision}"] = OpenVINORunner(path, precision=precision, threads=args.threads)
    shape = runners[f"fp32/{args.precisions[0]}"].input_shape
    print(
        f"OpenVINO on {platform.processor() or platform.machine()}, input {shape}, batch 1, "
        f"{args.threads} threads, {args.runs} interleaved runs each"
    )
    times = time_interleaved(runners, args.runs, args.warmup)
    base = float(np.median(times[f"fp32/{args.precisions[0]}"]))
    rows = {}
    for name, t in times.items():
        median = float(np.median(t))
        convs = dict(runners[name].conv_precisions())
        rows[name] = {"median_ms": median, "min_ms": float(t.min()), "max_ms": float(t.max()),
                      "speedup_vs_fp32_f32": base / median, "convs": convs}  # fmt: skip
        print(
            f"  {name:<10} median {median:7.2f} ms  (min {t.min():6.2f}, max {t.max():6.2f})  "
            f"x{base / median:4.2f} vs fp32/{args.precisions[0]}  convs {convs}"
        )
    for precision in args.precisions:
        ratio = np.median(times[f"fp32/{precision}"]) / np.median(times[f"int8/{precision}"])
        print(f"INT8 vs FP32, both with the {precision} hint: {ratio:.2f}x faster")
    if "bf16" in args.precisions:
        ratio = np.median(times["fp32/bf16"]) / min(np.median(times[f"int8/{p}"]) for p in args.precisions)
        print(f"INT8 (best hint) vs FP32 on bf16, the fastest float here: {ratio:.2f}x faster")
    report = {"cpu": cpu_name(), "openvino": _ov_version(), "input": list(shape), "threads": args.threads,
              "runs": args.runs, "rows": rows}  # fmt: skip
    if args.data:
        maps = evaluate_backends(args.int8, args.data)
        print(
            f"INT8 mAP50-95: ONNX Runtime {maps['onnxruntime']:.4f}, OpenVINO {maps['openvino']:.4f}, "
            f"difference {abs(maps['onnxruntime'] - maps['openvino']):.4f}"
        )
        report["map50_95"] = maps
    for runner in runners.values():
        runner.close()
    print(f"report: {write_json(args.json, report)}")


if __name__ == "__main__":
    main()
