"""Why rows interfered in the former one-process suite: one row timed alone and beside each other row.

For a target row A and each other row B of an FP32/INT8 pair (``benchmarks.agreement``'s rows), the
p50 of A:
- alone: A in this process, nothing else loaded;
- B idle: B loaded in this process, not running;
- interleaved: A and B one run each in turn, in this process (the former ``make bench``);
- B in own process: the same turns, B in a probe process of its own;
- after B: A's 1st, 2nd and 3rd run, and its 4th-10th, after 10 runs of B (is it B's threads still
  spinning, and for how long?);
- alone again: B unloaded (what drift did meanwhile).
An ONNX Runtime B is also tried with its intra-op threads not spinning after a run
(``session.intra_op.allow_spinning`` = 0).

What it showed (docs/results.md, "Benchmark method"): the first OpenVINO run after a block of ONNX
Runtime runs took 2.4-2.8x its time alone, also with ONNX Runtime in another process; with ONNX
Runtime's spinning off that penalty was gone, and an idle loaded model cost nothing measurable. So
``make bench`` times every row in a process of its own, in blocks after a short pause
(``benchmarks/measure.py``). Run by hand, no make target.

Example:
    $ python -m benchmarks.interference --fp32 fp32.onnx --int8 int8.onnx --threads 2
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from base.errors import ToolchainError, report_errors
from base.fileio import write_json
from benchmarks.agreement import pair_rows
from benchmarks.measure import InProcess, Row, RowProcess
from benchmarks.suite import cpu_has_bf16
from deploy.runtime.onnxruntime import OnnxRuntimeRunner

CASES = ("alone", "B idle", "interleaved", "B in own process", "after B: 1st", "2nd", "3rd", "4th-10th", "alone again")


def interleave(a: InProcess, b, runs: int) -> list[float]:
    """A's milliseconds when A and B take one run each in turn."""
    out = []
    for _ in range(runs):
        b.block(1, 0)
        out += a.block(1, 0)
    return out


def after_block(a: InProcess, b, repeats: int = 8, length: int = 10) -> dict[str, float]:
    """A's median milliseconds by position in a block of ``length`` runs that follows ``length`` runs of B."""
    by_position = np.array([(b.block(length, 0), a.block(length, 0))[1] for _ in range(repeats)])
    med = np.median(by_position, axis=0)
    return {"after B: 1st": med[0], "2nd": med[1], "3rd": med[2], "4th-10th": float(np.median(by_position[:, 3:]))}


def study(a: InProcess, open_b, b_row: Row | None, threads: int | None, runs: int, warmup: int) -> dict[str, float]:
    """p50 of A in every case of the module docstring, with B opened by ``open_b``."""
    p50 = lambda t: float(np.median(t))  # noqa: E731
    out = {"alone": p50(a.block(runs, warmup))}
    with open_b() as b_runner:
        b = InProcess(b_runner)
        b.block(0, warmup)
        out["B idle"] = p50(a.block(runs, warmup))
        out["interleaved"] = p50(interleave(a, b, runs))
        out.update(after_block(a, b))
    if b_row is not None:
        with RowProcess(b_row.probe(threads), b_row.name) as proc:
            proc.block(0, warmup)
            out["B in own process"] = p50(interleave(a, proc, runs))
    out["alone again"] = p50(a.block(runs, warmup))
    return out


def _run(a: argparse.Namespace) -> None:
    for path in (a.fp32, a.int8):
        if not Path(path).is_file():
            raise ToolchainError(f"{path}: model not found")
    rows = {r.name: r for r in pair_rows(a.fp32, a.int8, cpu_has_bf16())}
    if a.target not in rows:
        raise ToolchainError(f"--target '{a.target}': expected one of {list(rows)}")
    results = {}
    with rows[a.target].open(a.threads) as target:
        timer = InProcess(target)
        for name, row in rows.items():
            if name == a.target:
                continue
            results[name] = study(timer, lambda row=row: row.open(a.threads), row, a.threads, a.runs, a.warmup)
            if row.backend == "onnxruntime":
                no_spin = lambda row=row: OnnxRuntimeRunner(row.model, threads=a.threads, spinning=False)  # noqa: E731
                results[f"{name}, not spinning"] = study(timer, no_spin, None, a.threads, a.runs, a.warmup)
    print(f"p50 ms of {a.target} ({a.threads} threads, {a.runs} runs per case) beside each row B:")
    print("| B | " + " | ".join(CASES) + " |\n|" + "---|" * (len(CASES) + 1))
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(f"{r[c]:.2f}" if c in r else "-" for c in CASES) + " |")
    if a.json:
        write_json(a.json, {"target": a.target, "threads": a.threads, "runs": a.runs, "p50_ms": results})


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="interference", description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--fp32", required=True, help="FP32 ONNX")
    p.add_argument("--int8", required=True, help="QDQ ONNX of the same model")
    p.add_argument("--target", default="FP32 / openvino (f32)", help="the row A that is timed")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=40, help="timed runs of A in each case")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--json", type=Path, default=None, help="write the p50s here")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return report_errors(_run, a)


if __name__ == "__main__":
    sys.exit(main())
