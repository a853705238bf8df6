"""Measurements of one benchmark row (a model variant on a backend): latency, memory, accuracy, pipeline FPS.

How latency is taken, so that a row measures the same in the suite as alone: every row runs in a
process of its own (``benchmarks/probe.py``: its own thread pools, nothing shared), and the rows take
turns in blocks, a block being a few untimed warm-up runs, then timed runs. The order of the rows
rotates from round to round, so machine drift falls on every row alike, and a short pause before
each block lets the previous row's worker threads stop spinning. ``benchmarks/interference.py``
measures why the former round-robin of all rows in one process did not agree with a row alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from base.errors import ToolchainError
from benchmarks.probe import ProbeConfig
from deploy.bench.timing import time_block
from deploy.runtime.base import Runner

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    """One model variant on one backend, and what was measured (or why it could not run)."""

    variant: str
    backend: str
    model: str
    precision: str = "f32"
    skipped: str | None = None
    latency_ms: dict = field(default_factory=dict)
    throughput: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    accuracy: dict = field(default_factory=dict)
    pipeline: dict = field(default_factory=dict)
    layers: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        hint = f" ({self.precision})" if self.backend in ("openvino", "tensorrt") else ""
        return f"{self.variant} / {self.backend}{hint}"

    def probe(self, threads: int | None, hint: str = "LATENCY") -> ProbeConfig:
        """What a probe process loads for this row."""
        return ProbeConfig(self.model, self.backend, self.precision, threads, hint)

    def open(self, threads: int | None) -> Runner:
        return self.probe(threads).open()


class BlockTimer(Protocol):
    def block(self, runs: int, warmup: int, batch: int = 1, mode: str = "latency") -> list[float]: ...


class InProcess:
    """A runner of this process, timed in blocks (what ``RowProcess`` does in a child)."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def block(self, runs: int, warmup: int, batch: int = 1, mode: str = "latency") -> list[float]:
        return time_block(self.runner, runs, warmup, batch, mode)


class RowProcess:
    """A probe child process that holds one row's model and times blocks on request.

    Example:
        >>> with RowProcess(row.probe(threads=2), row.name) as proc:
        ...     times = proc.block(runs=20, warmup=5)
    """

    def __init__(self, config: ProbeConfig, label: str) -> None:
        self.label = label
        self._stderr = tempfile.TemporaryFile("w+")  # a file, not a pipe: a chatty child never blocks on it
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.probe", *config.argv(), "--serve"], cwd=ROOT, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
        )  # fmt: skip
        try:
            self.info = self._read()
        except ToolchainError:
            self.close()
            raise

    def _read(self) -> dict:
        """The next JSON reply (a line that a library printed to stdout is skipped)."""
        while line := self._proc.stdout.readline():
            if line.startswith("{"):
                reply = json.loads(line)
                if "error" in reply:
                    raise ToolchainError(f"{self.label}: {reply['error']}")
                return reply
        self._proc.wait()
        self._stderr.seek(0)
        raise ToolchainError(f"{self.label}: probe process ended: {self._stderr.read().strip()[-300:]}")

    def block(self, runs: int, warmup: int, batch: int = 1, mode: str = "latency") -> list[float]:
        self._proc.stdin.write(json.dumps({"runs": runs, "warmup": warmup, "batch": batch, "mode": mode}) + "\n")
        self._proc.stdin.flush()
        return self._read()["times_ms"]

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.write('{"quit": true}\n')
                self._proc.stdin.close()
                self._proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        self._stderr.close()

    def __enter__(self) -> RowProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Schedule:
    """Rotated blocks: ``rounds`` turns of every row, each ``warmup`` untimed runs then ``runs`` timed ones.

    Attributes:
        rounds: Turns of every row; the order rotates by one row each round.
        runs: Timed runs per block.
        warmup: Untimed runs at the start of each block.
        settle_s: Pause before each block, so the previous row's threads go idle.
    """

    rounds: int = 5
    runs: int = 20
    warmup: int = 5
    settle_s: float = 0.2

    def __post_init__(self) -> None:
        for key in ("rounds", "runs"):
            if getattr(self, key) < 1:
                raise ToolchainError(f"benchmark schedule: {key} must be at least 1, got {getattr(self, key)}")
        if self.warmup < 0 or self.settle_s < 0:
            raise ToolchainError(f"benchmark schedule: warmup and settle_s must be >= 0, got {self}")

    @classmethod
    def for_runs(cls, runs: int, warmup: int, rounds: int = 5) -> Schedule:
        """About ``runs`` timed runs per row, spread over ``rounds`` blocks."""
        rounds = max(1, min(rounds, runs))
        return cls(rounds, max(1, round(runs / rounds)), warmup)


def time_rotated(
    timers: dict[str, BlockTimer], schedule: Schedule, batch: int = 1, mode: str = "latency", desc: str = "latency"
) -> dict[str, list[float]]:
    """Timed values of every timer, rows taking turns block by block in a rotating order."""
    names = list(timers)
    times: dict[str, list[float]] = {name: [] for name in names}
    if not names:
        return times
    for r in tqdm(range(schedule.rounds), desc=desc, unit="round", leave=False):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            time.sleep(schedule.settle_s)
            times[name] += timers[name].block(schedule.runs, schedule.warmup, batch, mode)
    return times


def _cpu_jiffies() -> tuple[int, int] | None:
    """Busy and total CPU time of the whole machine since boot (``/proc/stat``), or ``None`` off Linux."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def _own_cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # child processes already waited for
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@contextlib.contextmanager
def other_load() -> Iterator[dict]:
    """Yield a dict that, on exit, holds ``other_cpu_share``: the share of the machine's CPU time that
    processes other than this one and its finished children used meanwhile (0.5 on 2 cores: one core).
    A benchmark taken while it is over a few percent was disturbed by other work."""
    out: dict = {}
    start, own = _cpu_jiffies(), _own_cpu_s()
    try:
        yield out
    finally:
        end = _cpu_jiffies()
        if start and end and end[1] > start[1]:
            hz = os.sysconf("SC_CLK_TCK")
            busy = (end[0] - start[0]) / hz - (_own_cpu_s() - own)
            out["other_cpu_share"] = max(0.0, busy / ((end[1] - start[1]) / hz))


def peak_memory(config: ProbeConfig, label: str, runs: int = 20, run: Callable = subprocess.run) -> dict:
    """Peak host RSS and model RSS (MiB), device memory and file size of ``config``'s model, measured by a fresh
    probe process (``benchmarks/probe.py --memory``) that loads it and runs it ``runs`` times.

    Raises:
        ToolchainError: The probe failed (its error, or the end of its stderr).
    """
    done = run([sys.executable, "-m", "benchmarks.probe", *config.argv(), "--memory", "--runs", str(runs)],
               capture_output=True, text=True, timeout=600, cwd=ROOT)  # fmt: skip
    lines = done.stdout.strip().splitlines()
    reply = json.loads(lines[-1]) if lines else {"error": done.stderr.strip()[-300:]}
    if done.returncode != 0 or "error" in reply:
        raise ToolchainError(f"{label}: memory probe failed: {reply.get('error') or done.stderr.strip()[-300:]}")
    return {key: reply[key] for key in ("peak_rss_mib", "model_rss_mib", "gpu_mib", "file_mib")}
