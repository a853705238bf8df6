"""The agreement check: rows alone and in the suite, taking turns; exit 1 when a row differs too much."""

from __future__ import annotations

import json

import pytest

from benchmarks import agreement
from benchmarks.agreement import compare, pair_rows, table
from benchmarks.measure import Schedule


def test_rows_of_a_pair():
    names = [r.name for r in pair_rows("f.onnx", "q.onnx", bf16=True)]
    assert names == ["FP32 / openvino (f32)", "INT8 / openvino (f32)", "FP32 / openvino (bf16)",
                     "INT8 / openvino (bf16)", "FP32 / onnxruntime", "INT8 / onnxruntime"]  # fmt: skip
    assert len(pair_rows("f.onnx", "q.onnx", bf16=False)) == 4


def test_compare_flags_a_row_past_the_tolerance_and_the_table_shows_it():
    alone = {"a": [[10.0, 10.0], [10.2, 10.2]], "b": [[20.0], [20.0]]}
    lines, ok = compare(alone, {"a": [[10.5, 10.6], [10.4, 10.4]], "b": [[23.0], [23.0]]}, tolerance=0.10)
    assert not ok and [x["agree"] for x in lines] == [True, False]
    assert lines[1]["paired_ratio"] == pytest.approx(1.15) and lines[1]["rounds"] == 2
    text = table(lines, {"a": [15.0], "b": [30.0]}, 0.10).splitlines()
    assert text[1].count("---") == text[0].count("|") - 1 == 8
    assert text[2].endswith("| 15.00 | 1.485 | yes |") and text[3].endswith("| NO |")
    assert compare(alone, alone, 0.0)[1]


def test_pairing_by_round_cancels_drift_that_the_p50s_do_not():
    # the machine gets 1.5x slower half way; each round times both ways at the same speed
    alone = {"a": [[10.0] * 5, [10.0] * 5, [15.0] * 5, [15.0] * 5]}
    suite = {"a": [[10.2] * 5, [10.2] * 5, [15.3] * 5, [15.3] * 5]}
    (line,), ok = compare(alone, suite, tolerance=0.10)
    assert ok and line["paired_ratio"] == pytest.approx(1.02)


class _FakeProcess:
    """A row process in this test's process: milliseconds fixed per row, slower in the suite for 'slow'."""

    live: set = set()

    def __init__(self, config, label):
        self.label = label

    def block(self, runs, warmup, batch=1, mode="latency"):
        crowded = len(_FakeProcess.live) > 1 and "INT8 / onnxruntime" in self.label
        return [12.0 if crowded else 10.0] * runs

    def __enter__(self):
        _FakeProcess.live.add(self.label)
        return self

    def __exit__(self, *exc):
        _FakeProcess.live.discard(self.label)


def test_both_ways_take_turns_and_a_slower_suite_row_fails(monkeypatch, tiny_pair, tmp_path, capsys):
    monkeypatch.setattr(agreement, "RowProcess", _FakeProcess)
    rows = pair_rows("f.onnx", "q.onnx", bf16=False)
    alone, suite = agreement.time_both_ways(rows, 2, Schedule(rounds=2, runs=3, warmup=0, settle_s=0))
    assert {len(t) for t in alone.values()} == {len(t) for t in suite.values()} == {2}  # blocks
    assert suite["INT8 / onnxruntime"] == [[12.0] * 3] * 2 and alone["INT8 / onnxruntime"] == [[10.0] * 3] * 2
    monkeypatch.setattr("benchmarks.agreement.cpu_has_bf16", lambda: False)
    fp32, int8 = tiny_pair
    argv = [
        "--fp32",
        str(fp32),
        "--int8",
        str(int8),
        "--runs",
        "4",
        "--rounds",
        "2",
        "--json",
        str(tmp_path / "a.json"),
    ]
    assert agreement.main(argv) == 1
    out = capsys.readouterr().out
    assert "| INT8 / onnxruntime | 10.00 | 12.00 | 1.200 | 1.200 | NO |" in out and "DISAGREE" in out
    assert json.loads((tmp_path / "a.json").read_text())["agree"] is False
    assert agreement.main([*argv, "--tolerance", "0.25"]) == 0
    assert agreement.main(["--fp32", str(tmp_path / "none.onnx"), "--int8", str(int8)]) == 1


@pytest.mark.slow
def test_real_processes_of_a_tiny_pair(tiny_pair, monkeypatch, capsys):
    monkeypatch.setattr("benchmarks.agreement.cpu_has_bf16", lambda: False)
    fp32, int8 = tiny_pair
    code = agreement.main(["--fp32", str(fp32), "--int8", str(int8), "--runs", "6", "--rounds", "2",
                           "--tolerance", "100", "--round-robin"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert out.count("| yes |") == 4 and "former round-robin p50 ms" in out
