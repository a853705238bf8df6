"""The one clock of every benchmark: milliseconds of calls after untimed warm-up calls, and blocks of a runner.

Every timing in ``benchmarks/`` and ``deploy/bench/`` goes through ``time_calls``: a row's blocks in its probe process
(``time_block``), gpu-check's engine latency, decode + NMS, and the training steps of ``qat_epoch``.

Example:
    >>> times = time_calls(lambda: runner.infer(x), runs=20, warmup=5)
    >>> summarize(times)["p50"]
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from base.errors import ToolchainError
from deploy.runtime.base import Runner

MODES = ("latency", "throughput")


def time_calls(call: Callable[[], object], runs: int, warmup: int = 0) -> list[float]:
    """Milliseconds of each of ``runs`` calls of ``call``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def input_batch(runner: Runner, batch: int) -> np.ndarray:
    """A fixed random input of ``batch`` images (capped by a static model batch)."""
    shape = runner.input_shape
    n = min(batch, shape[0]) if shape[0] else batch
    return np.random.default_rng(0).random((n, *shape[1:]), dtype=np.float32)


def time_block(runner: Runner, runs: int, warmup: int, batch: int = 1, mode: str = "latency") -> list[float]:
    """One block of timed runs after ``warmup`` untimed ones.

    ``latency``: milliseconds of each of ``runs`` runs. ``throughput``: one value, milliseconds per
    batch over ``runs`` batches kept in flight with every request the runner has (OpenVINO's
    ``time_async``; sequential runs on other backends).

    Raises:
        ToolchainError: A mode that is not one of ``MODES``.
    """
    if mode not in MODES:
        raise ToolchainError(f"probe: mode must be one of {list(MODES)}, got '{mode}'")
    x = input_batch(runner, batch)
    if mode == "latency":
        return time_calls(lambda: runner.infer(x), runs, warmup)
    time_calls(lambda: runner.infer(x), 0, warmup)
    timed = getattr(runner, "time_async", None)
    if timed is None:
        return [time_calls(lambda: [runner.infer(x) for _ in range(runs)], 1)[0] / runs]
    return [timed(x, runs) * 1e3 / runs]


def summarize(times: list[float], batch: int = 1) -> dict:
    """p10/p50/p90/p99/min/max of milliseconds, with the number of runs and the batch."""
    a = np.asarray(times, float)
    p10, p50, p90, p99 = (float(v) for v in np.percentile(a, [10, 50, 90, 99]))
    return {"p10": p10, "p50": p50, "p90": p90, "p99": p99, "min": float(a.min()), "max": float(a.max()),
            "runs": int(a.size), "batch": batch}  # fmt: skip
