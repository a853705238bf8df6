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
    from deploy.cpu import has_vnni

    convs = "conv int8" if has_vnni() else "conv float"  # without VNNI the default remedy runs them in float
    assert ov.layers["groups"][convs]["nodes"] >= 1 and ort.layers == {}


def test_accuracy_gives_every_row_an_interval_and_every_comparison_a_difference(monkeypatch):
    import contextlib

    import numpy as np

    from base.dataset import ImageRecord, Split
    from deploy.evaluate import coco_map
    from deploy.postprocess import Detections

    rng = np.random.default_rng(0)
    recs = [ImageRecord(f"{i}.jpg", 200, 200, np.array([0, 1]), np.array([[10, 10, 60, 50], [90, 90, 180, 170]], np.float32))
            for i in range(20)]  # fmt: skip
    split = Split("val", ["a", "b"], recs)
    noise = {"f.onnx": 1.0, "q.onnx": 8.0}

    def fake_evaluate(runner, split):
        jitter = noise[runner]
        dets = [Detections(r.boxes + rng.normal(0, jitter, r.boxes.shape).astype(np.float32),
                           np.array([0.9, 0.8], np.float32), r.classes) for r in split.images]  # fmt: skip
        return coco_map(split, dets)

    monkeypatch.setattr(suite, "load_data_yaml", lambda data: None)
    monkeypatch.setattr(suite, "load_split", lambda cfg, name: split)
    monkeypatch.setattr(suite, "evaluate", fake_evaluate)
    monkeypatch.setattr(Row, "open", lambda self, threads: contextlib.nullcontext(self.model))
    rows = [Row("FP32", "onnxruntime", "f.onnx"), Row("INT8 QAT", "onnxruntime", "q.onnx"),
            Row("FP32", "openvino", "f.onnx")]  # fmt: skip
    suite.measure_accuracy(rows, "data.yaml", threads=1, resamples=50)
    fp32, qat, ov = rows
    assert fp32.accuracy["interval"][0] <= fp32.accuracy["map50_95"] + 0.05 and fp32.accuracy["images"] == 20
    assert list(qat.accuracy["differences"]) == ["FP32 / onnxruntime"] and "differences" not in fp32.accuracy
    worse = qat.accuracy["differences"]["FP32 / onnxruntime"]
    assert worse["delta"] < 0 and worse["real"] and worse["resamples"] == 50
    assert list(ov.accuracy["differences"]) == ["FP32 / onnxruntime"]
