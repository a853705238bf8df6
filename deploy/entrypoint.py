"""Container entry point: an engine for this device (built from the QDQ ONNX at first start and cached
in a volume, reused after), then live detection with ``deploy/infer.py``.

Engines are not portable across GPUs or TensorRT versions, so the cache key holds the backend, its
version, the device and the ONNX's hash. Any other backend (ONNX Runtime, OpenVINO) goes through
the same missing / built / reused logic with the ONNX itself as its "engine", which is how this is
tested on machines without a GPU.

Environment: ``MODEL`` (QDQ ONNX), ``ENGINE_DIR`` (cache), ``SOURCE`` (camera index, URL, GStreamer
pipeline, file), ``BACKEND`` (``tensorrt`` by default); extra arguments go to ``deploy/infer.py``.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

from deploy.engine.config import file_sha256
from deploy.errors import ToolchainError, report_errors
from deploy.fileio import atomic_path
from deploy.metadata import sidecar_path

logger = logging.getLogger("entrypoint")


def _device_key(backend: str) -> str:
    if backend == "tensorrt":
        from deploy.engine.build import device_description
        from deploy.engine.trt import import_tensorrt

        _, capability = device_description()
        return f"trt{import_tensorrt().__version__}-sm{capability.replace('.', '')}"
    module = __import__(backend)
    return f"{backend}{module.__version__.split('-')[0]}-cpu"


def _build(onnx: Path, target: Path, backend: str) -> None:
    if backend == "tensorrt":
        from deploy.engine.build import engine_from_onnx
        from deploy.engine.config import EngineConfig

        engine_from_onnx(onnx, EngineConfig(precision="int8"), target)
        return
    with atomic_path(target) as tmp:
        shutil.copyfile(onnx, tmp)
    if sidecar_path(onnx).is_file():
        shutil.copyfile(sidecar_path(onnx), sidecar_path(target))


def model_for_device(onnx: str | Path, cache: str | Path, backend: str) -> tuple[Path, str]:
    """The cached engine for this device and ONNX, built when missing; returns it and ``built``/``reused``."""
    onnx, cache = Path(onnx), Path(cache)
    if not onnx.is_file():
        raise ToolchainError(f"{onnx}: model not found; mount the QDQ ONNX (with its .json) at this path")
    cache.mkdir(parents=True, exist_ok=True)
    suffix = ".engine" if backend == "tensorrt" else ".onnx"
    stem = onnx.name[: -len(".onnx")]
    target = cache / f"{stem}.{_device_key(backend)}.{file_sha256(onnx)[:12]}{suffix}"
    if target.is_file():
        logger.info("Reusing %s", target)
        return target, "reused"
    logger.info("No engine for this device and model in %s: building %s (first start)", cache, target.name)
    _build(onnx, target, backend)
    return target, "built"


def main(argv: list[str] | None = None) -> int:
    """Prepare the engine, then run ``deploy/infer.py`` on ``SOURCE`` with any extra arguments."""
    from deploy.infer import build_parser, run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    backend = os.environ.get("BACKEND", "tensorrt")

    def start() -> None:
        model, _ = model_for_device(os.environ.get("MODEL", "/models/model.int8.onnx"),
                                    os.environ.get("ENGINE_DIR", "/engines"), backend)  # fmt: skip
        args = ["--model", str(model), "--source", os.environ.get("SOURCE", "0"), "--backend", backend, *argv]
        run(build_parser().parse_args(args))

    return report_errors(start)


if __name__ == "__main__":
    sys.exit(main())
