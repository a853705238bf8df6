"""The engine benchmark end to end on a tiny run: ONNX Runtime standing in on this CPU, and the TensorRT path on
the fake TensorRT (engines built, run, reused, their layer reports compared)."""

from __future__ import annotations

import json
import shutil

import cv2
import pytest

from deploy.bench.backends import tensorrt_backend
from deploy.bench.cli import main
from deploy.bench.report import markdown
from deploy.bench.run import BenchConfig, run_bench

ROWS = ["FP32", "FP16", "INT8 PTQ", "INT8 QAT"]
FAST = ["--runs", "6", "--warmup", "1", "--frames", "4", "--resamples", "20", "--max-batch", "4"]


def test_standin_report_has_four_rows_memory_intervals_and_layer_columns(tiny_run, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--run", str(tiny_run), "--data", str(tiny_dataset), "--out", str(out), *FAST]) == 0
    text = (out / "report.md").read_text()
    assert "ONNX Runtime (CPU) standing in for TensorRT**: TensorRT is not installed" in text
    assert "| extra reformats (QAT - PTQ) |" in text and "n/a: no TensorRT engine" in text
    report = json.loads((out / "report.json").read_text())
    assert [r["name"] for r in report["rows"]] == ROWS and report["standin"]
    for r in report["rows"]:
        assert text.count(f"\n| {r['name']} | ONNX Runtime (stand-in) |") == 1
        assert r["status"] == "ok" and r["model"] == r["onnx"] and r["batch"] == 4
        assert r["latency"]["batch1"]["runs"] == 6 and r["latency"]["batchN"]["batch"] == 4
        assert r["memory"]["peak_rss_mib"] > 0 and r["memory"]["gpu_mib"] is None
        assert r["memory"]["gpu_note"].startswith("n/a") and r["pipeline"]["frames"] == 4
        low, high = r["accuracy"]["interval"]
        assert low <= r["accuracy"]["map50_95"] <= high or low == high
        assert r["layers"]["source"] == "estimate from the ONNX's Q/DQ"
    by = {r["name"]: r for r in report["rows"]}
    assert "differences" not in by["FP32"]["accuracy"]
    assert all(set(by[n]["accuracy"]["differences"]) >= {"FP32"} for n in ROWS[1:])
    assert set(by["INT8 QAT"]["accuracy"]["differences"]) == {"FP32", "INT8 PTQ"}
    assert by["INT8 QAT"]["layers"]["int8_convs"] == 1 and by["FP32"]["layers"]["int8_convs"] == 0
    assert cv2.imread(str(out / "report.png")).shape == (420, 900, 3)
    assert str(out / "report.md") in capsys.readouterr().out


@pytest.mark.parametrize("gone", ["qat.int8.onnx", "fp32.fp16.onnx"])
def test_a_missing_run_file_is_one_line(tiny_run, tiny_dataset, tmp_path, capsys, gone):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    (run / gone).unlink()
    assert main(["--run", str(run), "--data", str(tiny_dataset), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{gone} not found" in err and str(run) in err
    assert ("fp16_onnx_from_onnx" in err) == (gone == "fp32.fp16.onnx")
    assert not (tmp_path / "out").exists()


def test_engine_rows_on_the_fake_tensorrt_are_built_measured_and_reused(tiny_run, tiny_dataset, tmp_path):
    from tests.fakes.env import fake_gpu

    run = shutil.copytree(tiny_run, tmp_path / "run")
    cfg = BenchConfig(str(run), str(tiny_dataset), str(tmp_path / "out"), max_batch=4, runs=4, warmup=1, frames=3,
                      resamples=20)  # fmt: skip
    memory = {"peak_rss_mib": 100.0, "model_rss_mib": 10.0, "gpu_mib": 3.0, "file_mib": 0.1}
    with fake_gpu("10.3"):
        backend = tensorrt_backend()
        backend.memory = lambda model, label: dict(memory)  # the fake GPU reports no free memory
        first = run_bench(cfg, backend)
        assert [(r.name, r.status, r.reused) for r in first.rows] == [(n, "ok", False) for n in ROWS]
        assert all(r.model.endswith(".engine") and r.layers["source"] == "engine" for r in first.rows)
        assert first.rows[3].layers["precisions"].get("INT8") and first.rows[1].layers["precisions"].get("FP16")
        text = markdown(first, {})
        assert "Backend: **TensorRT**." in text and "| INT8 QAT | engine sidecar |" in text
        assert "+0 (0 extra reformats: holds)" in text and "| 3 |" in text
        assert first.rows[0].latency["batchN"]["batch"] == 4 and first.rows[0].pipeline["frames"] == 3
        (run / "qat.int8.onnx").write_bytes((run / "ptq.int8.onnx").read_bytes())  # the QAT ONNX changed
        second = run_bench(cfg, backend)
    assert [r.reused for r in second.rows] == [True, True, True, False]
