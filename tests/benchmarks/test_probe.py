"""The probe child program: blocks of timed runs, the serve loop, memory, and its command line."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest

from base.errors import ToolchainError
from benchmarks.probe import ProbeConfig, main, serve, time_block


class _Sleepy:
    """A runner that sleeps ``ms`` per call; with ``time_async`` when ``async_ms`` is set."""

    input_shape = (None, 3, 8, 8)

    def __init__(self, ms: float, async_ms: float | None = None) -> None:
        self.ms, self.calls, self.batches = ms, 0, []
        if async_ms is not None:
            self.time_async = lambda x, count: count * async_ms / 1000

    def infer(self, batch):
        self.calls += 1
        self.batches.append(batch.shape[0])
        time.sleep(self.ms / 1000)
        return [batch]


def test_latency_block_times_each_run_after_the_warmup():
    runner = _Sleepy(2)
    times = time_block(runner, runs=5, warmup=3, batch=4)
    assert runner.calls == 8 and set(runner.batches) == {4}
    assert len(times) == 5 and min(times) >= 2


def test_throughput_block_uses_async_requests_when_the_runner_has_them():
    assert time_block(_Sleepy(1, async_ms=0.5), runs=10, warmup=0, mode="throughput") == [pytest.approx(0.5)]
    sync = time_block(_Sleepy(2), runs=4, warmup=0, mode="throughput")  # no time_async: sequential runs
    assert len(sync) == 1 and sync[0] >= 2
    with pytest.raises(ToolchainError, match="mode must be one of"):
        time_block(_Sleepy(1), 1, 0, mode="fast")


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
    assert memory["peak_kib"] >= memory["base_kib"] > 0 and memory["gpu_mib"] is None


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


def test_input_is_capped_by_a_static_batch():
    from benchmarks.probe import input_batch

    class _Static(_Sleepy):
        input_shape = (1, 3, 8, 8)

    assert input_batch(_Static(0), 8).shape == (1, 3, 8, 8)
    assert input_batch(_Sleepy(0), 8).shape == (8, 3, 8, 8) and input_batch(_Sleepy(0), 8).dtype == np.float32
