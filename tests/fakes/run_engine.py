"""``make engine`` on a fake TensorRT: our real CLI (deploy.engine.build) inside a fake GPU of one version.

Everything our builder does with TensorRT runs against that version's real API (tests/fakes); the
engine file written is the fake's description, not a TensorRT plan, but the sidecar beside it is
exactly what the real build writes: precision, strongly typed or not, INT8 source, layer report.
The last line printed is the engine's path, as deploy.engine.build prints it (make fake-engine reads it).

``infer`` runs deploy/infer.py on the same fake GPU: the runner's whole path (context, buffers, the
pipeline's worker thread) on a fake engine, whose outputs are each input's mean, not detections.

    $ python -m tests.fakes.run_engine 11.4 runs/qat/qat/qat.int8.onnx --precision int8
    $ python -m tests.fakes.run_engine 11.4 runs/qat/qat/best.fp16.onnx --precision fp16 --out /tmp/m.fp16.engine
    $ python -m tests.fakes.run_engine 11.4 infer --engine model.int8.engine --source video.mp4
"""

from __future__ import annotations

import contextlib
import io
import json
import sys

from deploy.live.app import main as live_main
from tests.fakes.env import fake_gpu

USAGE = "usage: python -m tests.fakes.run_engine VERSION (MODEL.onnx [build flags] | infer [infer.py flags])"


def _build(gpu, args: list[str]) -> int:
    from base.metadata import ModelMetadata
    from deploy.engine import build
    from deploy.engine.config import engine_path

    with contextlib.redirect_stdout(io.StringIO()):  # its path line: printed last, below
        status = build.main(args)
    if status != 0:
        return status
    parsed = build.build_parser().parse_args(args)
    out = parsed.out or engine_path(parsed.onnx, parsed.precision)
    meta = ModelMetadata.load(out)
    print(json.dumps({"tensorrt": gpu.trt.version, "engine": str(out), "precision": meta.precision,
                      "strongly_typed": meta.extra["strongly_typed"], "int8_source": meta.extra["int8_source"],
                      "onnx_types": meta.extra["onnx_types"], "layers": meta.extra["layers"]["summary"],
                      "tensorrt_call_sites": len(gpu.trt.log.sites)}, indent=1))  # fmt: skip
    print(out)
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-") or len(argv) < 2:
        print(USAGE, file=sys.stderr)
        return 2
    version, args = argv[0], argv[1:]
    with fake_gpu(version) as gpu:
        if args[0] == "infer":
            return live_main(args[1:])
        return _build(gpu, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
