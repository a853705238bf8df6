"""The interference study: every case of one row beside another, on a simulated machine."""

from __future__ import annotations

import time

import numpy as np

from benchmarks.interference import CASES, NoSpinOnnxRuntime, after_block, interleave, study
from benchmarks.measure import InProcess


class _Machine:
    busy_until = 0.0


class _Neighbour:
    """After each run, its (simulated) threads spin for 30 ms and slow whoever runs next."""

    input_shape = (1, 3, 8, 8)

    def __init__(self, machine):
        self.machine = machine

    def infer(self, batch):
        self.machine.busy_until = time.perf_counter() + 0.03
        return [batch]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


class _Victim(_Neighbour):
    def infer(self, batch):
        time.sleep(0.004 if time.perf_counter() < self.machine.busy_until else 0.002)
        return [batch]


def test_study_finds_a_neighbour_that_slows_the_next_runs():
    machine = _Machine()
    victim = InProcess(_Victim(machine))
    out = study(victim, lambda: _Neighbour(machine), None, threads=1, runs=6, warmup=0)
    assert set(out) == set(CASES) - {"B in own process"}
    assert out["alone"] < 3.5 and out["B idle"] < 3.5 and out["alone again"] < 3.5
    assert out["interleaved"] >= 4 and out["after B: 1st"] >= 4


def test_interleave_and_after_block_count_runs():
    machine = _Machine()
    victim, neighbour = InProcess(_Victim(machine)), InProcess(_Neighbour(machine))
    assert len(interleave(victim, neighbour, 5)) == 5
    positions = after_block(victim, neighbour, repeats=2, length=4)
    assert list(positions) == ["after B: 1st", "2nd", "3rd", "4th-10th"] and positions["after B: 1st"] >= 4


def test_onnxruntime_without_spinning_runs_the_model(tiny_pair):
    fp32, _ = tiny_pair
    runner = NoSpinOnnxRuntime(str(fp32), 2)
    assert runner._session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert runner.input_shape == (None, 3, 32, 32)
    assert runner.infer(np.zeros((2, 3, 32, 32), np.float32))[0].shape == (2, 4, 32, 32)
    runner.close()
