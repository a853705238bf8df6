"""``make engine`` on a fake TensorRT: our real CLI (deploy.engine.build) inside a fake GPU of one version.

Everything our builder does with TensorRT runs against that version's real API (tests/fakes); the
engine file written is the fake's description, not a TensorRT plan, but the sidecar beside it is
exactly what the real build writes: precision, strongly typed or not, INT8 source, layer report.

    $ python -m tests.fakes.run_engine 11.4 runs/qat/qat/qat.int8.onnx --precision int8
    $ python -m tests.fakes.run_engine 11.4 runs/qat/qat/best.fp16.onnx --precision fp16 --out /tmp/m.fp16.engine
"""

from __future__ import annotations

import json
import sys

from tests.fakes.env import fake_gpu


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__.strip().splitlines()[-2].strip(), file=sys.stderr)
        return 2
    version, args = argv[0], argv[1:]
    from deploy.engine import build
    from deploy.engine.config import engine_path
    from deploy.metadata import ModelMetadata

    with fake_gpu(version) as gpu:
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
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
