"""The one clock: timed calls after warm-up, a runner's latency and throughput blocks, the summary of times."""

from __future__ import annotations

import time

import numpy as np
import pytest

from base.errors import ToolchainError
from deploy.bench.timing import input_batch, summarize, time_block, time_calls


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


def test_calls_are_timed_one_by_one_after_the_untimed_warmup():
    calls = []
    times = time_calls(lambda: calls.append(time.sleep(0.002)), runs=3, warmup=2)
    assert len(calls) == 5 and len(times) == 3 and min(times) >= 2
    assert time_calls(lambda: calls.append(None), runs=0, warmup=1) == [] and len(calls) == 6


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


def test_input_is_capped_by_a_static_batch():
    class _Static(_Sleepy):
        input_shape = (1, 3, 8, 8)

    assert input_batch(_Static(0), 8).shape == (1, 3, 8, 8)
    assert input_batch(_Sleepy(0), 8).shape == (8, 3, 8, 8) and input_batch(_Sleepy(0), 8).dtype == np.float32


def test_summary_percentiles():
    s = summarize(list(range(1, 101)), batch=4)
    assert s["p50"] == pytest.approx(50.5) and s["p10"] == pytest.approx(10.9) and s["p99"] == pytest.approx(99.01)
    assert (s["min"], s["max"], s["runs"], s["batch"]) == (1.0, 100.0, 100, 4)
