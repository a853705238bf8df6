"""Measurements of one benchmark row (a model variant on a backend): latency, memory, accuracy, pipeline FPS.

Latency of all rows is taken together, round-robin (A B C A B C...), so every row sees the same
machine state; each row's peak memory is measured in a child process of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from deploy.errors import ToolchainError
from deploy.runtime import create_runner
from deploy.runtime.base import Runner


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

    @property
    def name(self) -> str:
        hint = f" ({self.precision})" if self.backend in ("openvino", "tensorrt") else ""
        return f"{self.variant} / {self.backend}{hint}"

    def open(self, threads: int | None) -> Runner:
        if self.backend == "tensorrt":
            return create_runner(self.model, "tensorrt")
        return create_runner(self.model, self.backend, threads=threads, precision=self.precision)


def time_round_robin(runners: dict[str, Runner], runs: int, warmup: int, batch: int = 1) -> dict[str, dict]:
    """p50/p90/p99/min/max latency (ms) of each runner at ``batch`` (capped by a static model batch),
    rows interleaved run by run."""
    inputs = {}
    for name, runner in runners.items():
        shape = runner.input_shape
        n = min(batch, shape[0]) if shape[0] else batch
        inputs[name] = np.random.default_rng(0).random((n, *shape[1:]), dtype=np.float32)
        for _ in range(warmup):
            runner.infer(inputs[name])
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in tqdm(range(runs), desc="latency (round-robin)", unit="round"):
        for name, runner in runners.items():
            start = time.perf_counter()
            runner.infer(inputs[name])
            times[name].append((time.perf_counter() - start) * 1e3)
    out = {}
    for name, t in times.items():
        a = np.array(t)
        out[name] = {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
                     "p99": float(np.percentile(a, 99)), "min": float(a.min()), "max": float(a.max()), "runs": len(a),
                     "batch": int(inputs[name].shape[0])}  # fmt: skip
    return out


_HWM = (
    "def hwm():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            return int(line.split()[1])\n"
    "    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
)


def peak_memory(row: Row, threads: int | None, runs: int = 20) -> dict:
    """Peak host RSS (MiB) of a fresh process that loads the row's model and runs it, and the file size.

    The peak is the process's own high-water mark (``VmHWM``): ``ru_maxrss`` would carry the parent's
    peak across fork and exec.
    """
    code = (
        "import json, resource, numpy as np\n" + _HWM +
        "from deploy.runtime import create_runner\n"
        "base, gpu = hwm(), None\n"
        f"if {row.backend == 'tensorrt'}:\n"
        "    import pycuda.autoinit, pycuda.driver as cuda\n"
        "    free0 = cuda.mem_get_info()[0]\n"
        f"r = create_runner({row.model!r}, {row.backend!r}, threads={threads!r}, precision={row.precision!r})\n"
        "s = r.input_shape; x = np.zeros((s[0] or 1, *s[1:]), np.float32)\n"
        f"[r.infer(x) for _ in range({runs})]\n"
        f"if {row.backend == 'tensorrt'}:\n"
        "    gpu = (free0 - cuda.mem_get_info()[0]) / 2**20  # on a Jetson: unified memory\n"
        "print(json.dumps({'base': base, 'peak': hwm(), 'gpu_mib': gpu}))\n"
    )  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    if done.returncode != 0:
        raise ToolchainError(f"{row.name}: memory probe failed: {done.stderr.strip()[-300:]}")
    rss = json.loads(done.stdout.strip().splitlines()[-1])
    return {"peak_rss_mib": rss["peak"] / 1024, "model_rss_mib": (rss["peak"] - rss["base"]) / 1024,
            "gpu_mib": rss["gpu_mib"], "file_mib": Path(row.model).stat().st_size / 2**20}  # fmt: skip
