"""Container entry point: an engine for this device (built from the QDQ ONNX at first start and cached
in a volume, reused after), then live detection with ``deploy/infer.py``.

Engines are not portable across GPUs or TensorRT versions, so the cache key holds the backend, its
version, the device and the ONNX's hash. Any other backend (ONNX Runtime, OpenVINO) goes through
the same missing / built / reused logic with the ONNX itself as its "engine", which is how this is
tested on machines without a GPU.

Environment: ``MODEL`` (QDQ ONNX), ``ENGINE_DIR`` (cache, a writable volume), ``SOURCE`` (camera
index, URL, GStreamer pipeline, file; unset: the default camera, the CSI camera on a Jetson without
a USB camera), ``BACKEND`` (``tensorrt`` by default, or any of ``deploy.runtime.BACKENDS``; ``auto``
is TensorRT where it is installed); extra arguments go to ``deploy/infer.py``. Exit statuses are
``deploy/infer.py``'s (SIGTERM: outputs finalised, 143).

``bench`` as the first argument runs the engine benchmark instead (``python -m deploy.bench``, the rest of the
arguments are its flags): ``docker run ... IMAGE bench --run /models --data /data/data.yaml --out /results``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import shutil
import sys
from pathlib import Path

from base.errors import ToolchainError, UsageError, report_errors
from base.fileio import atomic_path, check_output_folder
from base.metadata import sidecar_path
from deploy.bench import cli as bench_cli
from deploy.engine.build import device_description, engine_from_onnx
from deploy.engine.config import EngineConfig, file_sha256
from deploy.engine.trt import import_tensorrt
from deploy.live.app import run_command
from deploy.live.flags import build_parser
from deploy.runtime import BACKENDS, default_backend

logger = logging.getLogger("entrypoint")


def resolve_backend(backend: str) -> str:
    """``BACKEND`` checked; ``auto`` becomes ``tensorrt`` where TensorRT is installed, else
    ``deploy.runtime.default_backend()``.

    Raises:
        UsageError: Not one of ``deploy.runtime.BACKENDS``.
    """
    if backend not in BACKENDS:
        raise UsageError(f"BACKEND={backend}: unknown backend; expected one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    return "tensorrt" if importlib.util.find_spec("tensorrt") is not None else default_backend()


def _device_key(backend: str) -> str:
    if backend == "tensorrt":
        _, capability = device_description()
        return f"trt{import_tensorrt().__version__}-sm{capability.replace('.', '')}"
    library = backend.split("-")[0]  # onnxruntime-cuda and onnxruntime-trt run on onnxruntime
    try:
        version = importlib.import_module(library).__version__.split("-")[0]
    except ImportError as exc:
        raise ToolchainError(f"BACKEND={backend}: {library} is not installed in this image") from exc
    return f"{library}{version}-{'cpu' if backend == library else backend.split('-', 1)[1]}"


def _build(onnx: Path, target: Path, backend: str) -> None:
    if backend == "tensorrt":
        engine_from_onnx(onnx, EngineConfig(precision="int8"), target)
        return
    if sidecar_path(onnx).is_file():  # the sidecar first: a model file without its sidecar is never left
        with atomic_path(sidecar_path(target)) as tmp:
            shutil.copyfile(sidecar_path(onnx), tmp)
    with atomic_path(target) as tmp:
        shutil.copyfile(onnx, tmp)


def model_for_device(onnx: str | Path, cache: str | Path, backend: str) -> tuple[Path, str]:
    """The cached engine for this device and ONNX, built when missing; returns it and ``built``/``reused``."""
    onnx, cache = Path(onnx), Path(cache)
    if not onnx.is_file():
        raise ToolchainError(f"{onnx}: model not found; mount the QDQ ONNX (with its .json) at this path")
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ToolchainError(
            f"ENGINE_DIR={cache}: cannot create it ({exc.strerror}); mount a writable volume there"
        ) from exc
    check_output_folder(cache, "ENGINE_DIR")
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
    """Prepare the engine, then run ``deploy/infer.py`` on ``SOURCE`` with any extra arguments; or, with ``bench``
    first, the engine benchmark (``deploy.bench``) with the rest."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        return bench_cli.main(argv[1:])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def start() -> int:
        backend = resolve_backend(os.environ.get("BACKEND", "tensorrt"))
        model, _ = model_for_device(os.environ.get("MODEL", "/models/model.int8.onnx"),
                                    os.environ.get("ENGINE_DIR", "/engines"), backend)  # fmt: skip
        source = ["--source", os.environ["SOURCE"]] if os.environ.get("SOURCE") else []
        return run_command(build_parser().parse_args(["--model", str(model), *source, "--backend", backend, *argv]))

    return report_errors(start)


if __name__ == "__main__":
    sys.exit(main())
