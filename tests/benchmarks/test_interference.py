"""The interference study: every case of one row beside another, on a simulated machine."""

from __future__ import annotations

import time

from benchmarks.interference import CASES, after_block, interleave, study
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
        time.sleep(0.02 if time.perf_counter() < self.machine.busy_until else 0.002)  # wide apart: sleeps overshoot under load
        return [batch]


def test_study_finds_a_neighbour_that_slows_the_next_runs():
    machine = _Machine()
    victim = InProcess(_Victim(machine))
    out = study(victim, lambda: _Neighbour(machine), None, threads=1, runs=6, warmup=0)
    assert set(out) == set(CASES) - {"B in own process"}
    assert out["alone"] < 12 and out["B idle"] < 12 and out["alone again"] < 12
    assert out["interleaved"] >= 20 and out["after B: 1st"] >= 20


def test_interleave_and_after_block_count_runs():
    machine = _Machine()
    victim, neighbour = InProcess(_Victim(machine)), InProcess(_Neighbour(machine))
    assert len(interleave(victim, neighbour, 5)) == 5
    positions = after_block(victim, neighbour, repeats=2, length=4)
    assert list(positions) == ["after B: 1st", "2nd", "3rd", "4th-10th"] and positions["after B: 1st"] >= 4
