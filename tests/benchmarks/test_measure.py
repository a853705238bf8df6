"""The measurement method: rotated blocks, rows in their own processes, memory of a fresh process."""

from __future__ import annotations

import time

import numpy as np
import pytest

from base.errors import ToolchainError
from benchmarks.measure import InProcess, Row, RowProcess, Schedule, peak_memory, time_rotated


class _Recorder:
    def __init__(self, name: str, log: list) -> None:
        self.name, self.log = name, log

    def block(self, runs, warmup, batch=1, mode="latency"):
        self.log.append((self.name, runs, warmup, batch, mode))
        return [float(len(self.log))] * runs


def test_rows_take_turns_in_blocks_and_the_order_rotates():
    log: list = []
    timers = {n: _Recorder(n, log) for n in "abc"}
    out = time_rotated(timers, Schedule(rounds=3, runs=4, warmup=2, settle_s=0), batch=2)
    assert [x[0] for x in log] == list("abcbcacab")
    assert {x[1:] for x in log} == {(4, 2, 2, "latency")}
    assert {n: len(t) for n, t in out.items()} == {"a": 12, "b": 12, "c": 12}
    assert time_rotated({}, Schedule()) == {}


def test_schedule_spreads_runs_over_rounds_and_refuses_nonsense():
    assert Schedule.for_runs(100, 5) == Schedule(5, 20, 5)
    assert Schedule.for_runs(3, 0).rounds == 3
    with pytest.raises(ToolchainError, match="rounds must be at least 1"):
        Schedule(rounds=0)
    with pytest.raises(ToolchainError, match="warmup and settle_s"):
        Schedule(warmup=-1)


def test_other_load_is_a_share_of_the_machine():
    from benchmarks.measure import other_load

    with other_load() as load:
        time.sleep(0.2)
    assert 0.0 <= load["other_cpu_share"] <= 1.0


class _Machine:
    """Two rows sharing cores: after a run, the neighbour's threads spin for ``spin_s`` and halve the
    victim's speed meanwhile (a simulation, so the test does not depend on the load of the test machine)."""

    def __init__(self, spin_s: float) -> None:
        self.spin_s, self.busy_until = spin_s, 0.0


class _Neighbour:
    input_shape = (1, 3, 8, 8)

    def __init__(self, machine: _Machine) -> None:
        self.machine = machine

    def infer(self, batch):
        time.sleep(0.001)
        self.machine.busy_until = time.perf_counter() + self.machine.spin_s
        return [batch]


class _Victim(_Neighbour):
    def infer(self, batch):
        time.sleep(0.004 if time.perf_counter() < self.machine.busy_until else 0.002)
        return [batch]


def test_blocks_with_a_pause_shield_a_row_from_a_neighbour_that_keeps_spinning():
    machine = _Machine(spin_s=0.05)
    pair = {"neighbour": InProcess(_Neighbour(machine)), "victim": InProcess(_Victim(machine))}
    run_by_run = time_rotated(pair, Schedule(rounds=10, runs=1, warmup=0, settle_s=0))  # the former round-robin
    blocks = time_rotated(pair, Schedule(rounds=4, runs=5, warmup=2, settle_s=0.06))
    no_pause = time_rotated(pair, Schedule(rounds=4, runs=5, warmup=0, settle_s=0))
    assert min(run_by_run["victim"]) >= 4  # every run slowed
    assert np.median(blocks["victim"]) < 3.5  # no run slowed (with margin for a busy test machine)
    assert sorted(no_pause["victim"])[-4] >= 4  # without warm-up or pause, each block's first runs are slowed


def test_a_row_process_times_blocks_of_its_model(tiny_pair):
    fp32, _ = tiny_pair
    row = Row("FP32", "onnxruntime", str(fp32))
    with RowProcess(row.probe(threads=1), row.name) as proc:
        assert proc.info["input_shape"] == [None, 3, 32, 32]
        assert len(proc.block(3, 1)) == 3 and len(proc.block(2, 0, batch=4)) == 2
        assert len(proc.block(5, 0, batch=2, mode="throughput")) == 1
    assert proc._proc.returncode == 0


def test_a_row_process_that_cannot_load_says_which_row(tmp_path):
    row = Row("INT8 QAT", "onnxruntime", str(tmp_path / "none.onnx"))
    with pytest.raises(ToolchainError, match=r"INT8 QAT / onnxruntime: .*not found"):
        RowProcess(row.probe(None), row.name)


def test_peak_memory_of_a_fresh_process(tiny_pair):
    fp32, _ = tiny_pair
    row = Row("FP32", "onnxruntime", str(fp32))
    memory = peak_memory(row.probe(threads=1), row.name, runs=2)
    assert memory["peak_rss_mib"] > memory["model_rss_mib"] > 0
    assert memory["file_mib"] == pytest.approx(fp32.stat().st_size / 2**20) and memory["gpu_mib"] is None


def test_a_failed_memory_probe_names_the_row(tmp_path):
    row = Row("INT8 QAT", "onnxruntime", str(tmp_path / "none.onnx"))
    with pytest.raises(ToolchainError, match=r"INT8 QAT / onnxruntime: memory probe failed: .*not found"):
        peak_memory(row.probe(None), row.name, runs=1)
