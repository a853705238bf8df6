"""The child process of one benchmark row: load its model, then time it in blocks, or measure its memory.

``benchmarks/measure.py`` starts one probe per row and drives it over stdin and stdout, one JSON
line per request, so every row has its own process, thread pools and allocator, as a deployed
model would; an idle probe waits on its pipe. By hand it times one row alone, or its memory:

Example:
    $ python -m benchmarks.probe --model m.onnx --backend openvino --precision bf16 --threads 2 --runs 100
    $ python -m benchmarks.probe --model m.onnx --backend onnxruntime --memory
    $ echo '{"runs": 20, "warmup": 5}' | python -m benchmarks.probe --model m.onnx --backend openvino --serve
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from base.errors import ToolchainError
from deploy.runtime import create_runner
from deploy.runtime.base import Runner

MODES = ("latency", "throughput")


@dataclass
class ProbeConfig:
    """What a probe loads (one row's model on one backend, as ``Row.open`` would)."""

    model: str
    backend: str
    precision: str = "f32"
    threads: int | None = None
    hint: str = "LATENCY"
    concat_workaround: str = "maximum"
    int8_remedy: str = "auto"

    def argv(self) -> list[str]:
        """Command-line arguments that recreate this config."""
        out = ["--model", self.model, "--backend", self.backend, "--precision", self.precision, "--hint", self.hint,
               "--concat-workaround", self.concat_workaround, "--int8-remedy", self.int8_remedy]  # fmt: skip
        return out + (["--threads", str(self.threads)] if self.threads else [])

    def open(self) -> Runner:
        """The runner: TensorRT takes neither threads nor a precision hint; only OpenVINO takes a hint."""
        if self.backend == "tensorrt":
            return create_runner(self.model, "tensorrt")
        options = {"threads": self.threads, "precision": self.precision}
        if self.backend == "openvino":
            options.update(hint=self.hint, concat_workaround=self.concat_workaround, int8_remedy=self.int8_remedy)
        return create_runner(self.model, self.backend, **options)


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
    """
    if mode not in MODES:
        raise ToolchainError(f"probe: mode must be one of {list(MODES)}, got '{mode}'")
    x = input_batch(runner, batch)
    for _ in range(warmup):
        runner.infer(x)
    if mode == "throughput":
        timed = getattr(runner, "time_async", None)
        if timed is None:
            start = time.perf_counter()
            for _ in range(runs):
                runner.infer(x)
            return [(time.perf_counter() - start) * 1e3 / runs]
        return [timed(x, runs) * 1e3 / runs]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runner.infer(x)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def high_water_kib() -> int:
    """This process's peak resident memory (``VmHWM``; ``ru_maxrss`` would carry a parent's peak across exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure_memory(config: ProbeConfig, runs: int) -> dict:
    """Peak RSS before and after loading and running the model; GPU memory taken, for TensorRT."""
    base, free0 = high_water_kib(), None
    if config.backend == "tensorrt":
        import pycuda.autoinit  # noqa: F401
        import pycuda.driver as cuda

        free0 = cuda.mem_get_info()[0]
    with config.open() as runner:
        x = input_batch(runner, 1)
        for _ in range(runs):
            runner.infer(x)
        gpu = (free0 - cuda.mem_get_info()[0]) / 2**20 if free0 is not None else None  # Jetson: unified memory
    return {"base_kib": base, "peak_kib": high_water_kib(), "gpu_mib": gpu}


def describe(runner: Runner) -> dict:
    """The ready line: input shape, and OpenVINO's streams and requests."""
    out = {"ready": True, "input_shape": list(runner.input_shape)}
    for key in ("streams", "requests", "remedy", "kernel_isa"):
        if hasattr(runner, key):
            out[key] = getattr(runner, key)
    return out


def serve(runner: Runner, lines, write) -> None:
    """Answer each request line (``{"runs", "warmup", "batch", "mode"}``) with ``{"times_ms": [...]}``
    until ``{"quit": true}`` or the end of input."""
    write(describe(runner))
    for line in lines:
        request = json.loads(line)
        if request.get("quit"):
            return
        write({"times_ms": time_block(runner, request["runs"], request.get("warmup", 0), request.get("batch", 1),
                                      request.get("mode", "latency"))})  # fmt: skip


def _write(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="probe", description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--model", required=True)
    p.add_argument("--backend", required=True)
    p.add_argument("--precision", default="f32", help="OpenVINO precision hint (f32, bf16, f16)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--hint", default="LATENCY", help="OpenVINO performance hint (LATENCY, THROUGHPUT)")
    p.add_argument("--concat-workaround", default="maximum", help="OpenVINO: maximum, requantize or none")
    p.add_argument("--int8-remedy", default="auto", help="OpenVINO, INT8 without VNNI: auto, float, weights7, none")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--mode", default="latency", choices=MODES)
    p.add_argument("--memory", action="store_true", help="print peak memory instead of times")
    p.add_argument("--serve", action="store_true", help="answer JSON requests on stdin, one per line")
    a = p.parse_args(argv)
    config = ProbeConfig(a.model, a.backend, a.precision, a.threads, a.hint, a.concat_workaround, a.int8_remedy)
    try:
        if a.memory:
            _write({**asdict(config), **measure_memory(config, a.runs)})
        elif a.serve:
            with config.open() as runner:
                serve(runner, sys.stdin, _write)
        else:
            with config.open() as runner:
                _write({"times_ms": time_block(runner, a.runs, a.warmup, a.batch, a.mode), **describe(runner)})
    except ToolchainError as exc:
        _write({"error": str(exc)})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
