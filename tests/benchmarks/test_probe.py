"""The probe child program: the serve loop, memory, and its command line."""

from __future__ import annotations

import io
import json
import time

import pytest

from benchmarks.probe import ProbeConfig, main, serve


class _Sleepy:
    """A runner that sleeps ``ms`` per call."""

    input_shape = (None, 3, 8, 8)

    def __init__(self, ms: float) -> None:
        self.ms, self.calls, self.batches = ms, 0, []

    def infer(self, batch):
        self.calls += 1
        self.batches.append(batch.shape[0])
        time.sleep(self.ms / 1000)
        return [batch]


def test_serve_answers_each_request_until_quit():
    replies = []
    lines = [json.dumps({"runs": 3, "warmup": 1}), json.dumps({"runs": 1, "batch": 2}), '{"quit": true}', "never read"]
    serve(_Sleepy(1), iter(lines), replies.append)
    assert replies[0] == {"ready": True, "input_shape": [None, 3, 8, 8]}
    assert [len(r["times_ms"]) for r in replies[1:]] == [3, 1]


def test_config_round_trips_through_the_command_line(tiny_pair, capsys):
    fp32, _ = tiny_pair
    config = ProbeConfig(str(fp32), "onnxruntime", threads=1)
    assert main([*config.argv(), "--runs", "3", "--warmup", "1", "--batch", "2"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert len(reply["times_ms"]) == 3 and reply["input_shape"] == [None, 3, 32, 32]
    assert main([*config.argv(), "--memory", "--runs", "2"]) == 0
    memory = json.loads(capsys.readouterr().out)
    assert memory["peak_rss_mib"] >= memory["model_rss_mib"] >= 0 < memory["peak_rss_mib"]  # this process: no fresh one
    assert memory["gpu_mib"] is None
    assert memory["file_mib"] == fp32.stat().st_size / 2**20 and memory["model"] == str(fp32)


def test_openvino_probe_takes_the_throughput_hint(tiny_pair, capsys, monkeypatch):
    pytest.importorskip("openvino")
    _, int8 = tiny_pair
    monkeypatch.setattr("sys.stdin", io.StringIO('{"runs": 4, "batch": 2, "mode": "throughput"}\n'))
    assert (
        main(["--model", str(int8), "--backend", "openvino", "--threads", "2", "--hint", "THROUGHPUT", "--serve"]) == 0
    )
    ready, block = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert ready["requests"] >= ready["streams"] >= 1 and len(block["times_ms"]) == 1


def test_a_missing_model_is_one_json_error_line(tmp_path, capsys):
    assert main(["--model", str(tmp_path / "none.onnx"), "--backend", "onnxruntime"]) == 1
    assert "not found" in json.loads(capsys.readouterr().out)["error"]
