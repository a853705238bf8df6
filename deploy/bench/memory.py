"""Peak memory of one model, measured in a fresh process: host RSS (peak, and what the model added), the
device memory it took (TensorRT; on a Jetson, unified memory), and the file size.

The one memory measurement of every benchmark: ``make bench`` rows and ``make gpu-check`` engines (through
``benchmarks/probe.py --memory``) and ``deploy.bench`` rows (through ``python -m deploy.bench.memory``) all
call ``measure_memory`` in a child of their own, so its peak is the model's and no other row's.

Example:
    $ python -m deploy.bench.memory --model m.int8.engine --backend tensorrt --runs 20
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from base.errors import ToolchainError
from deploy.bench.timing import input_batch
from deploy.engine.cuda import open_cuda
from deploy.engine.trt import import_cuda_python
from deploy.runtime import create_runner
from deploy.runtime.base import Runner

ROOT = Path(__file__).resolve().parents[2]


def high_water_mib() -> float:
    """This process's peak resident memory (``VmHWM``; ``ru_maxrss`` would carry a parent's peak across exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gpu_free_bytes(cuda: str) -> int:
    """Free device memory, asked with the device's primary context current (the context the runner uses)."""
    gpu = open_cuda(cuda)
    try:
        with gpu.activate():
            if cuda == "cuda-python":
                err, free, _total = import_cuda_python()[0].cudaMemGetInfo()
                if int(err) != 0:
                    raise RuntimeError(f"cudaMemGetInfo failed: {err}")
                return int(free)
            import pycuda.driver as drv

            return int(drv.mem_get_info()[0])
    finally:
        gpu.close()


def measure_memory(open_runner: Callable[[], Runner], model: str | Path, backend: str, cuda: str = "pycuda",
                   runs: int = 20) -> dict:  # fmt: skip
    """In this (fresh) process: load the model with ``open_runner``, run it ``runs`` times at batch 1, and
    return ``peak_rss_mib``, ``model_rss_mib`` (what loading and running added), ``gpu_mib`` (TensorRT only,
    else ``None``) and ``file_mib``."""
    free = gpu_free_bytes(cuda) if backend == "tensorrt" else None
    base = high_water_mib()
    with open_runner() as runner:
        x = input_batch(runner, 1)
        for _ in range(runs):
            runner.infer(x)
        gpu = (free - gpu_free_bytes(cuda)) / 2**20 if free is not None else None
    peak = high_water_mib()
    return {"peak_rss_mib": peak, "model_rss_mib": peak - base, "gpu_mib": gpu,
            "file_mib": Path(model).stat().st_size / 2**20}  # fmt: skip


def peak_memory(model: str | Path, backend: str, label: str, cuda: str = "pycuda", runs: int = 20,
                run: Callable = subprocess.run) -> dict:  # fmt: skip
    """``measure_memory`` of ``model`` on ``backend`` (``tensorrt`` or ``onnxruntime``) in a fresh child process.

    Raises:
        ToolchainError: The child failed (its error, or the end of its stderr).
    """
    command = [sys.executable, "-m", "deploy.bench.memory", "--model", str(model), "--backend", backend,
               "--cuda", cuda, "--runs", str(runs)]  # fmt: skip
    done = run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    lines = [ln for ln in done.stdout.strip().splitlines() if ln.startswith("{")]
    reply = json.loads(lines[-1]) if lines else {"error": done.stderr.strip()[-300:]}
    if done.returncode != 0 or "error" in reply:
        raise ToolchainError(f"{label}: memory probe failed: {reply.get('error') or done.stderr.strip()[-300:]}")
    return {key: reply[key] for key in ("peak_rss_mib", "model_rss_mib", "gpu_mib", "file_mib")}


def main(argv: list[str] | None = None) -> int:
    """Child CLI: one JSON line, the measurement or ``{"error": ...}`` (exit 1)."""
    p = argparse.ArgumentParser(prog="deploy.bench.memory", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--backend", required=True, choices=["tensorrt", "onnxruntime"])
    p.add_argument("--cuda", default="pycuda", choices=["pycuda", "cuda-python"])
    p.add_argument("--runs", type=int, default=20)
    a = p.parse_args(argv)
    options = {"cuda": a.cuda} if a.backend == "tensorrt" else {}
    try:
        reply = measure_memory(lambda: create_runner(a.model, a.backend, **options), a.model, a.backend, a.cuda, a.runs)
    except ToolchainError as exc:
        reply = {"error": str(exc)}
    print(json.dumps(reply), flush=True)
    return 1 if "error" in reply else 0


if __name__ == "__main__":
    sys.exit(main())
