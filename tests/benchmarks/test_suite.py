"""The suite's latency step on real processes: batch-1 latency, batch throughput, the THROUGHPUT hint, counters."""

from __future__ import annotations

import pytest

from benchmarks import suite
from benchmarks.measure import Row


def test_latency_throughput_and_counters_of_a_tiny_pair(tiny_pair):
    pytest.importorskip("openvino")
    fp32, int8 = tiny_pair
    rows = [Row("FP32", "onnxruntime", str(fp32)), Row("INT8 QAT", "openvino", str(int8)),
            Row("INT8 PTQ", "openvino", "", skipped="not found")]  # fmt: skip
    suite.measure_latency(rows, threads=1, runs=10, warmup=1, max_batch=2)
    ort, ov, skipped = rows
    assert ort.latency_ms["runs"] == 10 and ort.latency_ms["p10"] <= ort.latency_ms["p50"] <= ort.latency_ms["p90"]
    assert ort.throughput["batch"] == 2 and ort.throughput["images_per_s"] > 0
    assert "throughput_hint" not in ort.throughput
    hint = ov.throughput["throughput_hint"]
    assert (
        hint["requests"] >= hint["streams"] >= 1 and hint["batch1_images_per_s"] > 0 and hint["batch2_images_per_s"] > 0
    )
    assert skipped.latency_ms == {} and skipped.throughput == {}
    suite.measure_layers(rows, threads=1)
    assert ov.layers["groups"]["conv int8"]["nodes"] >= 1 and ort.layers == {}
