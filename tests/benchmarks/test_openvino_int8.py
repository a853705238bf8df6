"""OpenVINO INT8 against float: the verdict picks the fastest exact INT8 variant; the whole run on a tiny pair."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks.openvino_int8 import main, verdict


def _lat(p50):
    return {"p10": p50, "p50": p50, "p90": p50}


def test_verdict_takes_the_fastest_exact_int8_against_the_fastest_float():
    latency = {"fp32/f32": _lat(16.0), "fp32/bf16": _lat(9.0), "q/f32/none": _lat(5.0), "q/f32/maximum": _lat(6.0)}
    exact = {"q/f32/none": {"exact": False}, "q/f32/maximum": {"exact": True}}
    assert verdict(latency, exact) == {"fp32": "fp32/bf16", "int8": "q/f32/maximum", "ratio": 1.5}
    assert verdict(latency, None)["int8"] == "q/f32/none"  # unchecked: the fastest
    assert verdict(latency, {k: {"exact": False} for k in exact}) == {"fp32": "fp32/bf16", "int8": None, "ratio": None}


def test_a_run_on_a_tiny_pair_writes_every_table(tiny_pair, tmp_path, capsys):
    pytest.importorskip("openvino")
    fp32, int8 = tiny_pair
    argv = ["--fp32", str(fp32), "--int8", str(int8), "--precisions", "f32", "--workarounds", "requantize", "none",
            "--threads", "1", "--runs", "4", "--max-batch", "2", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["latency_ms"]) == {"fp32/f32", "int8/f32/requantize", "int8/f32/none"}
    assert report["throughput"]["int8/f32/none"]["batch2_images_per_s"] > 0 and report["exactness"] is None
    from deploy.cpu import has_vnni

    patched = 1 if has_vnni() else 0  # without VNNI auto runs the convs in float: no int8 Concat to work around
    assert report["layers"]["int8/f32/requantize"]["patched"] == patched and "Per-layer counters" in text
    assert "(goal 1.5x)" in (tmp_path / "report.md").read_text()
    assert main([*argv[:4], "--workarounds", "skip", "--out", str(tmp_path)]) == 1


def test_isa_caps_the_kernels_of_every_row_and_the_layer_counters(tiny_pair, tmp_path):
    """--isa AVX512_CORE: every probe process and the in-process layer profile run without AMX tiles
    or VNNI (their kernel names say so); the report names the cap."""
    pytest.importorskip("openvino")
    fp32, int8 = tiny_pair
    argv = [sys.executable, "-m", "benchmarks.openvino_int8", "--fp32", fp32, "--int8", int8, "--precisions", "f32",
            "--workarounds", "none", "--threads", "1", "--runs", "4", "--max-batch", "2", "--isa", "AVX512_CORE",
            "--out", tmp_path]  # fmt: skip
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["isa"] == "AVX512_CORE" and "(instructions: AVX512_CORE)" in (tmp_path / "report.md").read_text()
    kernels = {k for v in report["layers"].values() for k in v["conv_kernels"]}
    assert kernels and not any("amx" in k.lower() or "vnni" in k.lower() for k in kernels), kernels


def test_isa_refused_once_openvino_is_loaded(tiny_pair, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "openvino", object())
    fp32, int8 = tiny_pair
    code = main(["--fp32", str(fp32), "--int8", str(int8), "--isa", "AVX512_CORE", "--out", str(tmp_path)])
    assert code == 1 and "--isa: OpenVINO was loaded before the cap could be set" in capsys.readouterr().err
