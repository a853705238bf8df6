"""TensorRT engines from ONNX: FP32, FP16, INT8 (explicit from Q/DQ, or calibrated), with a sidecar.

Example:
    $ python -m deploy.engine.build runs/qat/demo/qat.int8.onnx --precision int8
    -> runs/qat/demo/qat.int8.engine, qat.int8.engine.json (TensorRT version, GPU, profile, layer report)
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

from deploy.engine.config import EngineConfig, check_int8_source, engine_path, file_sha256, profile_shapes
from deploy.engine.inspect import layer_report
from deploy.engine.trt import import_tensorrt, is_trt10, parse_version
from deploy.errors import ToolchainError, report_errors
from deploy.fileio import atomic_path
from deploy.metadata import ModelMetadata, sidecar_path

logger = logging.getLogger(__name__)


def _network_flags_trt8(trt) -> int:
    return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)


def _network_flags_trt10(trt, cfg: EngineConfig) -> int:
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if cfg.strongly_typed else 0


def _parse(trt, builder, onnx: Path, cfg: EngineConfig, trt10: bool):
    flags = _network_flags_trt10(trt, cfg) if trt10 else _network_flags_trt8(trt)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt.Logger(trt.Logger.WARNING))
    if not parser.parse(onnx.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ToolchainError(f"{onnx}: TensorRT's ONNX parser failed: {errors}")
    return network, parser


def _set_precision(trt, config, cfg: EngineConfig, strongly_typed: bool) -> None:
    if strongly_typed:
        return  # precisions come from the network itself; builder precision flags are not allowed
    if cfg.precision == "fp16" or (cfg.precision == "int8" and cfg.fp16_fallback):
        config.set_flag(trt.BuilderFlag.FP16)
    if cfg.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)


def _set_calibrator(trt, config, network, cfg: EngineConfig) -> None:
    from deploy.engine.calibrator import ImageBatcher, entropy_calibrator

    shape = tuple(max(1, d) for d in network.get_input(0).shape)
    batcher = ImageBatcher(cfg.calib_images, (cfg.opt_batch, *shape[1:]), cfg.calib_batches)
    config.int8_calibrator = entropy_calibrator(batcher, cfg.calib_cache)


def _set_dla(trt, builder, config, cfg: EngineConfig) -> None:
    if cfg.dla_core is None:
        return
    if cfg.dla_core >= builder.num_DLA_cores:
        raise ToolchainError(f"engine: DLA core {cfg.dla_core} requested, this device has {builder.num_DLA_cores}")
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = cfg.dla_core
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)


def _timing_cache(config, cfg: EngineConfig):
    data = Path(cfg.timing_cache).read_bytes() if cfg.timing_cache and Path(cfg.timing_cache).is_file() else b""
    timing_cache = config.create_timing_cache(data)
    config.set_timing_cache(timing_cache, False)
    return timing_cache


def _build_config(trt, builder, network, cfg: EngineConfig, int8_source: str, trt10: bool):
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(cfg.workspace_gib * (1 << 30)))
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    _set_precision(trt, config, cfg, trt10 and cfg.strongly_typed)
    if int8_source == "calibration":
        _set_calibrator(trt, config, network, cfg)
    shapes = profile_shapes(tuple(network.get_input(0).shape), cfg)
    if shapes is not None:
        profile = builder.create_optimization_profile()
        profile.set_shape(network.get_input(0).name, *shapes)
        config.add_optimization_profile(profile)
    _set_dla(trt, builder, config, cfg)
    return config, shapes


def device_description() -> tuple[str, str]:
    """(GPU name, compute capability ``"8.7"``) of CUDA device 0, through pycuda."""
    from deploy.engine.trt import import_pycuda

    cuda = import_pycuda()
    device = cuda.Device(0)
    major, minor = device.compute_capability()
    return device.name(), f"{major}.{minor}"


def engine_from_onnx(onnx: str | Path, cfg: EngineConfig, out: str | Path | None = None) -> Path:
    """Build, serialize and describe an engine; returns its path (``model.<precision>.engine``).

    Raises:
        ToolchainError: The ONNX is missing or does not parse, INT8 has no source, TensorRT or a GPU is missing.
    """
    onnx = Path(onnx)
    if not onnx.is_file():
        raise ToolchainError(f"{onnx}: ONNX not found; write one with 'make qat' or 'make ptq', or pass its path")
    int8_source = check_int8_source(onnx, cfg)
    trt = import_tensorrt()
    version = parse_version(trt.__version__)
    if cfg.strongly_typed and not is_trt10(version):
        raise ToolchainError(f"engine: strongly typed networks need TensorRT 10 or later, this is {trt.__version__}")
    out = Path(out) if out else engine_path(onnx, cfg.precision)
    start = time.perf_counter()
    logger.info(
        "Building %s engine from %s with TensorRT %s (INT8 from %s)", cfg.precision, onnx, trt.__version__, int8_source
    )
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    network, _parser = _parse(trt, builder, onnx, cfg, is_trt10(version))
    config, shapes = _build_config(trt, builder, network, cfg, int8_source, is_trt10(version))
    timing_cache = _timing_cache(config, cfg) if cfg.timing_cache else None
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ToolchainError(f"{onnx}: TensorRT failed to build the engine; see its log above")
    with atomic_path(out) as tmp:
        tmp.write_bytes(bytes(serialized))
    if timing_cache is not None:
        with atomic_path(cfg.timing_cache) as tmp:
            tmp.write_bytes(bytes(timing_cache.serialize()))
    report = _inspect(trt, out)
    _write_sidecar(onnx, out, cfg, trt.__version__, network, shapes, report)
    logger.info("Finished engine building in %.1f s: %s (%s)", time.perf_counter() - start, out, report["summary"])
    return out


def _inspect(trt, path: Path) -> dict:
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(path.read_bytes())
    inspector = engine.create_engine_inspector()
    report = layer_report(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    return {**report.to_dict(), "summary": report.summary()}


def _write_sidecar(onnx: Path, out: Path, cfg: EngineConfig, version: str, network, shapes, report: dict) -> None:
    source = ModelMetadata.load(onnx) if sidecar_path(onnx).is_file() else None
    gpu, capability = device_description()
    input_shape = list(network.get_input(0).shape)
    meta = ModelMetadata(
        names=source.names if source else [], imgsz=tuple(input_shape[2:]), stride=source.stride if source else 32,
        precision=cfg.precision, source=str(onnx), quantization=source.quantization if source else None,
        extra={"tensorrt": version, "gpu": gpu, "compute_capability": capability, "input_shape": input_shape,
               "profile": [list(s) for s in shapes] if shapes else None, "onnx_sha256": file_sha256(onnx),
               "engine": asdict(cfg), "layers": report},
    )  # fmt: skip
    meta.save(out)


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m deploy.engine.build MODEL.onnx --precision int8 [--max-batch 8] [--dla-core 0]``."""
    p = argparse.ArgumentParser(prog="build-engine", description=__doc__.split("\n")[0])
    p.add_argument("onnx")
    p.add_argument("--precision", default="int8", choices=["fp32", "fp16", "int8"])
    p.add_argument("--out", default=None)
    p.add_argument("--min-batch", type=int, default=1)
    p.add_argument("--opt-batch", type=int, default=1)
    p.add_argument("--max-batch", type=int, default=1)
    p.add_argument("--workspace-gib", type=float, default=2.0)
    p.add_argument("--no-fp16-fallback", action="store_true")
    p.add_argument("--strongly-typed", action="store_true")
    p.add_argument("--timing-cache", default=None)
    p.add_argument("--dla-core", type=int, default=None)
    p.add_argument("--calib-images", default=None)
    p.add_argument("--calib-batches", type=int, default=32)
    p.add_argument("--calib-cache", default=None)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return report_errors(_build_from_args, a)


def _build_from_args(a: argparse.Namespace) -> None:
    cfg = EngineConfig(
        a.precision, a.min_batch, a.opt_batch, a.max_batch, a.workspace_gib, not a.no_fp16_fallback,
        a.strongly_typed, a.timing_cache, a.dla_core, a.calib_images, a.calib_batches, a.calib_cache,
    )  # fmt: skip
    print(engine_from_onnx(a.onnx, cfg, a.out))


if __name__ == "__main__":
    sys.exit(main())
