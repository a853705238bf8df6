from __future__ import annotations

import json

from benchmarks.measure import Row
from benchmarks.report import compare, markdown, write
from benchmarks.suite import comparisons, plan_rows


def _row(variant, backend, p50, file_mib, map50_95, precision="f32"):
    r = Row(variant, backend, f"{variant}.onnx", precision)
    r.latency_ms = {"p10": p50 * 0.9, "p50": p50, "p90": p50 * 1.1, "p99": p50, "min": p50, "max": p50, "runs": 100,
                    "batch": 1}  # fmt: skip
    r.throughput = {"batch": 1, "images_per_s": 1000 / p50}
    r.memory = {"peak_rss_mib": 300.0, "model_rss_mib": 50.0, "file_mib": file_mib}
    r.accuracy = {"map50_95": map50_95, "map50": 0.8, "ap_small": 0.5, "per_class": {"a": 0.6, "b": None},
                  "interval": [map50_95 - 0.01, map50_95 + 0.01]}  # fmt: skip
    r.pipeline = {"fps": 40.0, "model_fps": 41.0, "frames": 10}
    return r


def _difference(delta, low, high):
    return {"metric": "map50_95", "delta": delta, "low": low, "high": high, "confidence": 0.95, "resamples": 1000,
            "images": 140, "real": low > 0 or high < 0}  # fmt: skip


def _tables(text: str) -> list[list[str]]:
    """Each markdown table of ``text`` as its lines."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def test_every_table_has_as_many_separator_cells_as_header_cells():
    rows = [_row("FP32", "openvino", 40.0, 12.0, 0.62), _row("INT8 QAT", "openvino", 16.0, 3.3, 0.63)]
    rows[1].throughput["throughput_hint"] = {"streams": 2, "requests": 2, "batch1_images_per_s": 120.0,
                                             "batch8_images_per_s": 150.0}  # fmt: skip
    rows[1].accuracy["differences"] = {"FP32 / openvino (f32)": _difference(0.01, -0.002, 0.02)}
    skipped = Row("INT8 peer", "openvino", "")
    skipped.skipped = "no peer ONNX given"
    tables = _tables(markdown(rows + [skipped], {"cpu": "test"}, "t"))
    assert len(tables) == 4  # main, differences, throughput, per-class
    for table in tables:
        header, separator = table[0], table[1]
        assert separator.count("---") == header.count("|") - 1
        assert all(line.count("|") == header.count("|") for line in table)


def test_differences_say_real_or_within_noise_and_throughput_has_its_table():
    rows = [_row("FP32", "openvino", 40.0, 12.0, 0.62), _row("INT8 QAT", "openvino", 16.0, 3.3, 0.63)]
    rows[1].accuracy["differences"] = {"FP32 / openvino (f32)": _difference(0.01, -0.002, 0.02),
                                       "INT8 PTQ / openvino (f32)": _difference(0.02, 0.005, 0.03)}  # fmt: skip
    rows[1].throughput["throughput_hint"] = {"streams": 2, "requests": 4, "batch1_images_per_s": 120.0,
                                             "batch8_images_per_s": 150.5}  # fmt: skip
    text = markdown(rows, {}, "t")
    assert "| INT8 QAT / openvino (f32) | FP32 / openvino (f32) | +0.0100 | [-0.0020, +0.0200] | within noise |" in text
    assert "| INT8 QAT / openvino (f32) | INT8 PTQ / openvino (f32) | +0.0200 | [+0.0050, +0.0300] | real |" in text
    assert "over the 140 val images (1000 resamples, 95% interval)" in text
    assert "| INT8 QAT / openvino (f32) | 2 x 4 | 120.0 | 150.5 |" in text
    assert "0.6300 [0.6200, 0.6400]" in text and "| 14.40-17.60 |" in text


def test_comparisons_pair_each_row_with_its_baselines():
    names = lambda pairs: sorted((a.name, b.name) for a, b in pairs)  # noqa: E731
    rows = [Row("FP32", "openvino", "f.onnx"), Row("INT8 PTQ", "openvino", "p.onnx"),
            Row("INT8 QAT", "openvino", "q.onnx"), Row("FP32", "openvino", "f.onnx", "bf16"),
            Row("FP32", "onnxruntime", "f.onnx"), Row("INT8 QAT", "onnxruntime", "q.onnx"),
            Row("FP16", "tensorrt", "f.fp16.engine", "fp16")]  # fmt: skip
    rows.append(Row("INT8 peer", "onnxruntime", "", skipped="no peer"))
    assert names(comparisons(rows)) == sorted([
        ("INT8 PTQ / openvino (f32)", "FP32 / openvino (f32)"), ("INT8 QAT / openvino (f32)", "FP32 / openvino (f32)"),
        ("INT8 QAT / openvino (f32)", "INT8 PTQ / openvino (f32)"), ("FP32 / openvino (bf16)", "FP32 / openvino (f32)"),
        ("FP32 / openvino (f32)", "FP32 / onnxruntime"), ("FP32 / openvino (bf16)", "FP32 / onnxruntime"),
        ("INT8 QAT / openvino (f32)", "INT8 QAT / onnxruntime"), ("INT8 QAT / onnxruntime", "FP32 / onnxruntime"),
        ("FP16 / tensorrt (fp16)", "FP32 / onnxruntime"),
    ])  # fmt: skip


def test_rows_that_cannot_run_say_why(tmp_path):
    (tmp_path / "fp32.onnx").write_bytes(b"x")
    rows = {(r.variant, r.backend, r.precision): r for r in plan_rows(tmp_path, peer=None)}
    assert rows[("FP32", "onnxruntime", "f32")].skipped is None
    assert "not found: run 'make qat'" in rows[("INT8 QAT", "onnxruntime", "f32")].skipped
    assert "pass --peer" in rows[("INT8 peer (ultralytics QAT)", "openvino", "f32")].skipped
    assert {backend for _, backend, _ in rows} == {"openvino", "onnxruntime"}  # TensorRT: deploy.bench's rows


def test_markdown_ratios_json_and_compare(tmp_path):
    rows = [_row("FP32", "openvino", 40.0, 12.0, 0.62), _row("INT8 QAT", "openvino", 16.0, 3.3, 0.63)]
    skipped = Row("INT8 peer", "openvino", "")
    skipped.skipped = "no peer ONNX given"
    text = markdown(rows + [skipped], {"cpu": "test"}, "t")
    line = next(ln for ln in text.splitlines() if ln.startswith("| INT8 QAT / openvino"))
    assert "| 2.50x |" in line and "| 0.27x |" in line and "0.6300" in line  # 3.3 / 12 MiB
    assert "| 62.5 (1) |" in line  # img/s (batch)
    assert "not run: no peer ONNX given" in text and "Per-class AP50-95" in text
    write(rows, {"cpu": "test"}, tmp_path / "a", "a")
    write([_row("FP32", "openvino", 30.0, 12.0, 0.61)], {"cpu": "test"}, tmp_path / "b", "b")
    assert json.loads((tmp_path / "a" / "report.json").read_text())["rows"][1]["variant"] == "INT8 QAT"
    assert (tmp_path / "a" / "latency_vs_map.png").stat().st_size > 0
    table = compare(tmp_path / "a" / "report.json", tmp_path / "b" / "report.json")
    assert "| FP32 / openvino (f32) | 40.00 | 30.00 | 0.6200 | 0.6100 |" in table


def test_the_suite_leaves_tensorrt_to_the_engine_benchmark(tmp_path, monkeypatch):
    from benchmarks import suite

    for name in ("fp32.onnx", "ptq.int8.onnx", "qat.int8.onnx"):
        (tmp_path / name).write_bytes(b"x")
    real = suite._available
    monkeypatch.setattr(suite, "_available", lambda m: True if m in ("tensorrt", "pycuda") else real(m))
    assert not [r for r in suite.plan_rows(tmp_path, peer=None) if r.backend == "tensorrt"]
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


def test_an_int8_row_off_onnxruntime_beyond_noise_is_a_fault_and_fails_the_bench():
    """OpenVINO's INT8 on a CPU without VNNI scored 0.41 where ONNX Runtime gave 0.62: not a result."""
    from benchmarks.report import faults

    wrong, right = _row("INT8 PTQ", "openvino", 19.0, 3.3, 0.41), _row("INT8 QAT", "openvino", 15.0, 3.3, 0.62)
    float_ov = _row("FP32", "openvino", 20.0, 12.0, 0.60, "bf16")  # bf16 arithmetic differs: not an INT8 fault
    wrong.accuracy["differences"] = {"INT8 PTQ / onnxruntime": _difference(-0.21, -0.27, -0.17)}
    right.accuracy["differences"] = {"INT8 QAT / onnxruntime": _difference(0.0001, -0.006, 0.005),
                                     "INT8 PTQ / openvino (f32)": _difference(0.21, 0.17, 0.27)}  # fmt: skip
    float_ov.accuracy["differences"] = {"FP32 / onnxruntime": _difference(-0.02, -0.03, -0.01)}
    rows = [_row("FP32", "openvino", 27.0, 12.0, 0.62), wrong, right, float_ov]
    found = faults(rows)
    assert len(found) == 1 and found[0].startswith("INT8 PTQ / openvino (f32): mAP50-95 -0.2100")
    text = markdown(rows, {"cpu": "test"}, "t")
    assert "**FAULTS**" in text and found[0] in text


def test_the_report_says_whether_int8_beats_float_and_names_the_faster_model():
    from benchmarks.report import int8_speed

    slow = [_row("FP32", "openvino", 10.0, 12.0, 0.62), _row("INT8 QAT", "openvino", 10.5, 3.3, 0.62)]
    line = int8_speed(slow)
    assert line.startswith("INT8 on this CPU is no faster than float") and "run FP32.onnx on openvino" in line
    fast = [_row("FP32", "openvino", 27.0, 12.0, 0.62), _row("INT8 QAT", "openvino", 15.0, 3.3, 0.62)]
    assert "runs 1.80x the speed of FP32 / openvino (f32)" in int8_speed(fast)
    assert int8_speed([_row("FP32", "onnxruntime", 27.0, 12.0, 0.62)]) == ""
