"""The child process of one benchmark row: load its model, then time it in blocks, or measure its memory.

``benchmarks/measure.py`` starts one probe per row and drives it over stdin and stdout, one JSON
line per request, so every row has its own process, thread pools and allocator, as a deployed
model would; an idle probe waits on its pipe. ``--memory`` runs ``deploy.bench.memory.measure_memory``,
the one memory measurement of every benchmark, in this fresh process, so its peak is the model's.
By hand it times one row alone, or its memory:

Example:
    $ python -m benchmarks.probe --model m.onnx --backend openvino --precision bf16 --threads 2 --runs 100
    $ python -m benchmarks.probe --model m.onnx --backend onnxruntime --memory
    $ echo '{"runs": 20, "warmup": 5}' | python -m benchmarks.probe --model m.onnx --backend openvino --serve
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass

from base.errors import ToolchainError, report_errors
from deploy.bench.memory import measure_memory
from deploy.bench.timing import MODES, time_block
from deploy.runtime import create_runner
from deploy.runtime.base import Runner


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
    cuda: str = "pycuda"

    def argv(self) -> list[str]:
        """Command-line arguments that recreate this config."""
        out = ["--model", self.model, "--backend", self.backend, "--precision", self.precision, "--hint", self.hint,
               "--concat-workaround", self.concat_workaround, "--int8-remedy", self.int8_remedy,
               "--cuda", self.cuda]  # fmt: skip
        return out + (["--threads", str(self.threads)] if self.threads else [])

    def open(self) -> Runner:
        """The runner: TensorRT takes neither threads nor a precision hint; only OpenVINO takes a hint."""
        if self.backend == "tensorrt":
            return create_runner(self.model, "tensorrt", cuda=self.cuda)
        options = {"threads": self.threads, "precision": self.precision}
        if self.backend == "openvino":
            options.update(hint=self.hint, concat_workaround=self.concat_workaround, int8_remedy=self.int8_remedy)
        return create_runner(self.model, self.backend, **options)


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="probe", description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--model", required=True)
    p.add_argument("--backend", required=True)
    p.add_argument("--precision", default="f32", help="OpenVINO precision hint (f32, bf16, f16)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--hint", default="LATENCY", help="OpenVINO performance hint (LATENCY, THROUGHPUT)")
    p.add_argument("--concat-workaround", default="maximum", help="OpenVINO: maximum, requantize or none")
    p.add_argument("--int8-remedy", default="auto", help="OpenVINO, INT8 without VNNI: auto, float, weights7, none")
    p.add_argument("--cuda", default="pycuda", choices=["pycuda", "cuda-python"], help="TensorRT's CUDA library")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--mode", default="latency", choices=MODES)
    p.add_argument("--memory", action="store_true", help="print peak memory instead of times")
    p.add_argument("--serve", action="store_true", help="answer JSON requests on stdin, one per line")
    return p


def _probe(a: argparse.Namespace) -> int:
    config = ProbeConfig(a.model, a.backend, a.precision, a.threads, a.hint, a.concat_workaround, a.int8_remedy,
                         a.cuda)  # fmt: skip
    try:
        if a.memory:
            measured = measure_memory(config.open, config.model, config.backend, config.cuda, a.runs)
            _write({**asdict(config), **measured})
        elif a.serve:
            with config.open() as runner:
                serve(runner, sys.stdin, _write)
        else:
            with config.open() as runner:
                _write({"times_ms": time_block(runner, a.runs, a.warmup, a.batch, a.mode), **describe(runner)})
    except ToolchainError as exc:  # the parent reads a probe's mistakes from its stdout, as one JSON line
        _write({"error": str(exc)})
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return report_errors(_probe, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
