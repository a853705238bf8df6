"""``make bench``'s engine step: the engine benchmark (``deploy.bench``) of the same run, named in the report."""

from __future__ import annotations

import json
import shutil
from argparse import Namespace

from benchmarks.report import markdown
from benchmarks.run import build_parser, engine_step


def _args(tiny_run, tiny_dataset) -> Namespace:
    return build_parser().parse_args(["--run", str(tiny_run), "--data", str(tiny_dataset), "--runs", "5",
                                      "--warmup", "1", "--frames", "3", "--resamples", "20", "--max-batch", "2"])  # fmt: skip


def test_make_bench_runs_the_engine_benchmark_as_its_tensorrt_rows(tiny_run, tiny_dataset, tmp_path):
    a = _args(tiny_run, tiny_dataset)
    assert a.engines
    note = engine_step(tiny_run, tmp_path / "engines", a)
    assert note.startswith("TensorRT rows: [engines/report.md](engines/report.md), ONNX Runtime (CPU) standing in")
    report = json.loads((tmp_path / "engines" / "report.json").read_text())
    assert [r["name"] for r in report["rows"]] == ["FP32", "FP16", "INT8 PTQ", "INT8 QAT"]
    assert report["config"]["runs"] == 5 and report["config"]["max_batch"] == 2
    assert note in markdown([], {}, "t", [note])


def test_a_run_without_its_fp16_onnx_keeps_the_cpu_rows(tiny_run, tiny_dataset, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    (run / "fp32.fp16.onnx").unlink()
    note = engine_step(run, tmp_path / "engines", _args(run, tiny_dataset))
    assert note.startswith("TensorRT rows: engine benchmark not run: --run ") and "fp32.fp16.onnx not found" in note
    assert build_parser().parse_args(["--run", "r", "--data", "d", "--no-engines"]).engines is False
