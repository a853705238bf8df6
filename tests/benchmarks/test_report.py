from __future__ import annotations

import json

from benchmarks.measure import Row, time_round_robin
from benchmarks.report import compare, markdown, write
from benchmarks.suite import plan_rows


class _Sleepy:
    def __init__(self, ms: float) -> None:
        self.ms, self.calls = ms, 0

    input_shape = (1, 3, 8, 8)

    def infer(self, batch):
        import time

        self.calls += 1
        time.sleep(self.ms / 1000)
        return [batch]


def _row(variant, backend, p50, file_mib, map50_95, precision="f32"):
    r = Row(variant, backend, f"{variant}.onnx", precision)
    r.latency_ms = {"p50": p50, "p90": p50, "p99": p50, "min": p50, "max": p50, "runs": 100, "batch": 1}
    r.throughput = {"batch": 1, "images_per_s": 1000 / p50}
    r.memory = {"peak_rss_mib": 300.0, "model_rss_mib": 50.0, "file_mib": file_mib}
    r.accuracy = {"map50_95": map50_95, "map50": 0.8, "ap_small": 0.5, "per_class": {"a": 0.6, "b": None}}
    r.pipeline = {"fps": 40.0, "model_fps": 41.0, "frames": 10}
    return r


def test_round_robin_interleaves_and_orders_latency():
    fast, slow = _Sleepy(1), _Sleepy(5)
    out = time_round_robin({"fast": fast, "slow": slow}, runs=10, warmup=2)
    assert fast.calls == slow.calls == 12
    assert out["fast"]["p50"] < out["slow"]["p50"] and out["slow"]["min"] >= 5
    assert out["fast"]["runs"] == 10 and out["fast"]["batch"] == 1


def test_rows_that_cannot_run_say_why(tmp_path):
    (tmp_path / "fp32.onnx").write_bytes(b"x")
    rows = {(r.variant, r.backend, r.precision): r for r in plan_rows(tmp_path, peer=None)}
    assert rows[("FP32", "onnxruntime", "f32")].skipped is None
    assert "not found: run 'make qat'" in rows[("INT8 QAT", "onnxruntime", "f32")].skipped
    assert "pass --peer" in rows[("INT8 peer (ultralytics QAT)", "openvino", "f32")].skipped
    assert "TensorRT" in rows[("FP32/FP16/INT8 engines", "tensorrt", "f32")].skipped


def test_markdown_ratios_json_and_compare(tmp_path):
    rows = [_row("FP32", "openvino", 40.0, 12.0, 0.62), _row("INT8 QAT", "openvino", 16.0, 3.3, 0.63)]
    skipped = Row("INT8 peer", "openvino", "")
    skipped.skipped = "no peer ONNX given"
    text = markdown(rows + [skipped], {"cpu": "test"}, "t")
    line = next(ln for ln in text.splitlines() if ln.startswith("| INT8 QAT / openvino"))
    assert "| 2.50x |" in line and "| 0.27x |" in line and "0.6300" in line  # 3.3 / 12 MiB
    assert "not run: no peer ONNX given" in text and "Per-class AP50-95" in text
    write(rows, {"cpu": "test"}, tmp_path / "a", "a")
    write([_row("FP32", "openvino", 30.0, 12.0, 0.61)], {"cpu": "test"}, tmp_path / "b", "b")
    assert json.loads((tmp_path / "a" / "report.json").read_text())["rows"][1]["variant"] == "INT8 QAT"
    assert (tmp_path / "a" / "latency_vs_map.png").stat().st_size > 0
    table = compare(tmp_path / "a" / "report.json", tmp_path / "b" / "report.json")
    assert "| FP32 / openvino (f32) | 40.00 | 30.00 | 0.6200 | 0.6100 |" in table


def test_tensorrt_rows_when_tensorrt_is_present(tmp_path, monkeypatch):
    from benchmarks import suite

    for name in ("fp32.onnx", "ptq.int8.onnx", "qat.int8.onnx"):
        (tmp_path / name).write_bytes(b"x")
    real = suite._available
    monkeypatch.setattr(suite, "_available", lambda m: True if m in ("tensorrt", "pycuda") else real(m))
    rows = [r for r in suite.plan_rows(tmp_path, peer=None) if r.backend == "tensorrt"]
    assert [(r.variant, r.precision, r.skipped is None) for r in rows] == [
        ("FP16", "fp16", True),
        ("INT8 PTQ", "int8", True),
        ("INT8 QAT", "int8", True),
        ("INT8 peer (ultralytics QAT)", "int8", False),
    ]
    fp16, qat = _row("FP16", "tensorrt", 4.0, 6.0, 0.62, "fp16"), _row("INT8 QAT", "tensorrt", 2.0, 3.3, 0.63, "int8")
    line = next(
        ln for ln in markdown([fp16, qat], {}, "t").splitlines() if ln.startswith("| INT8 QAT / tensorrt (int8)")
    )
    assert "| 2.00x |" in line  # against the FP16 engine


def test_gpu_environment_without_nvidia_tools(monkeypatch):
    import shutil

    from benchmarks.suite import gpu_environment

    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert gpu_environment() == {"gpu": None}
