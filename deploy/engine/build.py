"""TensorRT engines from ONNX: FP32, FP16, INT8 (from Q/DQ, or calibrated), with a sidecar.

The network, config and build are Polygraphy's loaders (NVIDIA's tested layer over TensorRT's API);
what they lack and we need stays here: the precision plan, the DLA core, the timing cache file, the
calibrator on our CUDA context, the layer report, the sidecar and one-line errors.

The precision comes from the ONNX as much as from the request (deploy/engine/precision.py): INT8 from
a QDQ ONNX is built strongly typed on TensorRT 10 and later, TensorRT 11 builds only strongly typed
networks, and the sidecar records the precision the engine really has.

Example:
    $ python -m deploy.engine.build runs/qat/demo/qat.int8.onnx --precision int8
    -> runs/qat/demo/qat.int8.engine, qat.int8.engine.json (TensorRT version, GPU, profile, layer report)
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from base.errors import ToolchainError, report_errors
from base.fileio import atomic_path, check_distinct_paths, check_output_file
from base.metadata import ModelMetadata, sidecar_path
from deploy.engine.calibrator import ImageBatcher, entropy_calibrator
from deploy.engine.config import CUDA_LIBRARIES, PRECISIONS, EngineConfig, engine_path, file_sha256, profile_shapes
from deploy.engine.cuda import open_cuda
from deploy.engine.inspect import layer_report
from deploy.engine.precision import BuildPlan, OnnxTypes, plan_build
from deploy.engine.trt import TrtFeatures, checked, import_polygraphy, import_tensorrt, polygraphy_errors
from deploy.runtime.base import check_qdq_arithmetic

logger = logging.getLogger(__name__)


@dataclass
class _Built:
    engine: bytes
    timing_cache: bytes | None
    input_name: str
    input_shape: list[int]
    shapes: tuple | None  # the optimization profile (min, opt, max) of a dynamic batch


def shapes_of(input_, cfg: EngineConfig) -> tuple:
    """The (min, opt, max) profile of the network input: the requested batches, or its one static shape."""
    return profile_shapes(tuple(input_.shape), cfg) or (tuple(input_.shape),) * 3


def _config_loader(poly, trt, cfg: EngineConfig, plan: BuildPlan, input_, calibrator):
    """Polygraphy's CreateConfig for this plan: flags (weakly typed builds only), workspace, the profile (of a
    dynamic batch, or the static shape), detailed profiling, the calibrator. TF32 stays as TensorRT and trtexec
    default it (on), where this version has the flag."""
    shapes = shapes_of(input_, cfg)
    return poly.CreateConfig(
        fp16="FP16" in plan.flags, int8="INT8" in plan.flags, tf32=hasattr(trt.BuilderFlag, "TF32"),
        profiles=[poly.Profile().add(input_.name, *shapes)], calibrator=calibrator, memory_pool_limits={
            trt.MemoryPoolType.WORKSPACE: int(cfg.workspace_gib * (1 << 30))},
        profiling_verbosity=trt.ProfilingVerbosity.DETAILED,
        use_dla=cfg.dla_core is not None, allow_gpu_fallback=cfg.dla_core is not None,
    )  # fmt: skip


def _check_dla(builder, cfg: EngineConfig, config) -> None:
    """Polygraphy builds for DLA core 0 and only warns without one: the requested core, or a one-line refusal."""
    if cfg.dla_core is None:
        return
    if cfg.dla_core >= builder.num_DLA_cores:
        raise ToolchainError(f"engine: DLA core {cfg.dla_core} requested, this device has {builder.num_DLA_cores}")
    config.DLA_core = cfg.dla_core


def _timing_cache(config, cfg: EngineConfig):
    """Our file, read and set here (Polygraphy neither checks what TensorRT returns nor writes atomically)."""
    if not cfg.timing_cache:
        return None
    path = Path(cfg.timing_cache)
    data = path.read_bytes() if path.is_file() else b""
    cache = checked(config.create_timing_cache(data), f"{path}: TensorRT cannot read this timing cache; delete it")
    checked(
        config.set_timing_cache(cache, False),
        f"{path}: TensorRT rejected this timing cache (made by another TensorRT or GPU?); delete it to start anew",
    )
    return cache


def _calibrator(trt, cfg: EngineConfig, input_shape: tuple, gpu):
    shape = tuple(max(1, d) for d in input_shape)
    batcher = ImageBatcher(cfg.calib_images, (cfg.opt_batch, *shape[1:]), cfg.calib_batches)
    return entropy_calibrator(trt, batcher, cfg.calib_cache, gpu)


def _build(trt, onnx: Path, cfg: EngineConfig, plan: BuildPlan, gpu) -> _Built:
    """Parse, configure and build through Polygraphy, in the caller's CUDA context; returns the serialized engine.

    Polygraphy's loaders do what TensorRT's samples do (network flags per version, parser errors, profiles,
    builder flags, the build); kept here: the plan (which precision and typing), the DLA core, the timing
    cache file, the calibrator on our CUDA helper, and a one-line ToolchainError for every failure.
    """
    poly = import_polygraphy()
    with polygraphy_errors(f"{onnx}: TensorRT's ONNX parser failed"):
        builder, network, parser = poly.NetworkFromOnnxPath(str(onnx), strongly_typed=plan.strongly_typed)()
    input_ = network.get_input(0)
    calibrator = _calibrator(trt, cfg, tuple(input_.shape), gpu) if plan.int8_source == "calibration" else None
    try:
        with polygraphy_errors("engine: TensorRT refused the build configuration"):
            config = _config_loader(poly, trt, cfg, plan, input_, calibrator)(builder, network)
        if config.num_optimization_profiles < 1:  # Polygraphy does not check add_optimization_profile's index
            raise ToolchainError(f"engine: TensorRT refused the optimization profile {shapes_of(input_, cfg)}")
        _check_dla(builder, cfg, config)
        timing_cache = _timing_cache(config, cfg)
        with polygraphy_errors(f"{onnx}: TensorRT failed to build the engine; see its log above"):
            serialized = poly.EngineBytesFromNetwork((builder, network, parser), config=config)()
    finally:
        if calibrator is not None:
            calibrator.close()
    return _Built(
        engine=bytes(serialized), timing_cache=bytes(timing_cache.serialize()) if timing_cache is not None else None,
        input_name=input_.name, input_shape=list(input_.shape), shapes=profile_shapes(tuple(input_.shape), cfg),
    )  # fmt: skip


def _inspect(trt, path: Path, built: _Built) -> dict:
    """The layer report; with a dynamic batch, of a context at the profile's opt shape (formats need shapes)."""
    poly = import_polygraphy()
    with polygraphy_errors(f"{path}: TensorRT cannot load its engine"):
        engine = poly.EngineFromBytes(path.read_bytes())()
    inspector = checked(engine.create_engine_inspector(), f"{path}: TensorRT has no inspector for this engine")
    if built.shapes is not None:
        context = checked(engine.create_execution_context(), f"{path}: cannot create an execution context")
        opt = built.shapes[1]
        checked(context.set_input_shape(built.input_name, opt), f"{path}: TensorRT refused the opt shape {opt}")
        inspector.execution_context = context
    report = layer_report(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    if built.shapes is not None:  # the sidecar says the profile the engine has, not the one asked for
        built.shapes = _engine_profile(engine, built.input_name)
    return {**report.to_dict(), "summary": report.summary()}


def _engine_profile(engine, name: str) -> tuple:
    """Profile 0 of input ``name`` as the engine reports it (8.6+ by name; 8.5 by binding index)."""
    if hasattr(engine, "get_tensor_profile_shape"):
        shapes = engine.get_tensor_profile_shape(name, 0)
    else:
        shapes = engine.get_profile_shape(0, engine.get_binding_index(name))
    return tuple(tuple(int(d) for d in s) for s in shapes)


def device_description(cuda: str = "pycuda") -> tuple[str, str]:
    """(GPU name, compute capability ``"8.7"``) of CUDA device 0."""
    gpu = open_cuda(cuda)
    try:
        return gpu.device_name(), gpu.capability()
    finally:
        gpu.close()


def engine_from_onnx(onnx: str | Path, cfg: EngineConfig, out: str | Path | None = None) -> Path:
    """Build, serialize and describe an engine; returns its path (``model.<precision>.engine``).

    Raises:
        ToolchainError: The ONNX is missing or does not parse; its types cannot make the requested
            precision on this TensorRT; INT8 has no source; TensorRT or a GPU is missing.
    """
    onnx = Path(onnx)
    if not onnx.is_file():
        raise ToolchainError(f"{onnx}: ONNX not found; write one with 'make qat' or 'make ptq', or pass its path")
    if out is not None:
        _check_outputs(onnx, Path(out), cfg)
    check_qdq_arithmetic(onnx, tensorrt=True, allow_invalid=cfg.allow_invalid_qdq)
    types = OnnxTypes.read(onnx)
    trt = import_tensorrt()
    features = TrtFeatures.of(trt)
    plan = plan_build(onnx, cfg, types, features)
    out = Path(out) if out else engine_path(onnx, plan.precision)
    _check_outputs(onnx, out, cfg)
    start = time.perf_counter()
    logger.info("Building %s engine from %s with TensorRT %s (strongly typed: %s, INT8 from: %s)",
                plan.precision, onnx, trt.__version__, plan.strongly_typed, plan.int8_source)  # fmt: skip
    gpu = open_cuda(cfg.cuda)
    try:
        with gpu.activate():  # current before trt.Builder exists: TensorRT and the calibrator share it
            built = _build(trt, onnx, cfg, plan, gpu)
            with atomic_path(out) as tmp:
                tmp.write_bytes(built.engine)
            if built.timing_cache is not None:
                with atomic_path(cfg.timing_cache) as tmp:
                    tmp.write_bytes(built.timing_cache)
            report = _inspect(trt, out, built)
            device = (gpu.device_name(), gpu.capability())
    finally:
        gpu.close()
    _check_report(out, plan, report)
    _write_sidecar(onnx, out, cfg, plan, types, trt.__version__, built, report, device)
    logger.info("Finished engine building in %.1f s: %s (%s)", time.perf_counter() - start, out, report["summary"])
    return out


def _check_outputs(onnx: Path, out: Path, cfg: EngineConfig) -> None:
    """The engine, its sidecar and the timing cache: none of them the ONNX or its sidecar, each a file path."""
    outputs = {"--out": out, f"the sidecar of {out}": sidecar_path(out), "--timing-cache": cfg.timing_cache}
    check_distinct_paths(outputs, {"the ONNX": onnx, f"the sidecar of {onnx}": sidecar_path(onnx)})
    for flag, path in outputs.items():
        if path:
            check_output_file(path, flag)


def _check_report(out: Path, plan: BuildPlan, report: dict) -> None:
    expected = {"int8": "INT8", "fp16": "FP16"}.get(plan.precision)
    if expected and expected not in report["precisions"] and "unknown" not in report["precisions"]:
        logger.warning("%s: built as %s but the inspector shows no %s layer: %s", out, plan.precision, expected,
                       report["summary"])  # fmt: skip


def _write_sidecar(onnx: Path, out: Path, cfg: EngineConfig, plan: BuildPlan, types: OnnxTypes, version: str,
                   built: _Built, report: dict, device: tuple[str, str]) -> None:  # fmt: skip
    source = ModelMetadata.load(onnx) if sidecar_path(onnx).is_file() else None
    meta = ModelMetadata(
        names=source.names if source else [], imgsz=tuple(built.input_shape[2:]),
        stride=source.stride if source else 32, precision=plan.precision, source=str(onnx),
        quantization=source.quantization if source else None,
        extra={"tensorrt": version, "gpu": device[0], "compute_capability": device[1],
               "input_shape": built.input_shape, "profile": [list(s) for s in built.shapes] if built.shapes else None,
               "onnx_sha256": file_sha256(onnx), "onnx_types": asdict(types), "strongly_typed": plan.strongly_typed,
               "int8_source": plan.int8_source, "engine": asdict(cfg), "layers": report,
               **_end_to_end(source)},
    )  # fmt: skip
    meta.save(out)


def _end_to_end(source: ModelMetadata | None) -> dict:
    """An end-to-end graph's thresholds (deploy/end_to_end.py), carried over: runners tell it by them."""
    if source is None or not isinstance(source.extra.get("end_to_end"), dict):
        return {}
    return {"end_to_end": source.extra["end_to_end"]}


def build_parser() -> argparse.ArgumentParser:
    """The CLI's flags; every default is EngineConfig's (one home per default)."""
    d = EngineConfig()
    p = argparse.ArgumentParser(prog="build-engine", description=__doc__.split("\n")[0])
    p.add_argument("onnx")
    p.add_argument("--precision", default=d.precision, choices=list(PRECISIONS))
    p.add_argument("--out", default=None)
    p.add_argument("--allow-invalid-qdq", action="store_true",
                   help="build even where a Q/DQ scale is not finite and positive or a zero point is not 0")
    p.add_argument("--min-batch", type=int, default=d.min_batch)
    p.add_argument("--opt-batch", type=int, default=d.opt_batch)
    p.add_argument("--max-batch", type=int, default=d.max_batch)
    p.add_argument("--workspace-gib", type=float, default=d.workspace_gib)
    p.add_argument("--no-fp16-fallback", action="store_true")
    p.add_argument("--strongly-typed", action="store_true")
    p.add_argument("--timing-cache", default=d.timing_cache)
    p.add_argument("--dla-core", type=int, default=d.dla_core)
    p.add_argument("--calib-images", default=d.calib_images)
    p.add_argument("--calib-batches", type=int, default=d.calib_batches)
    p.add_argument("--calib-cache", default=d.calib_cache)
    p.add_argument("--cuda", default=d.cuda, choices=list(CUDA_LIBRARIES))
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m deploy.engine.build MODEL.onnx [--precision int8] [--max-batch 8] [--dla-core 0]``."""
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return report_errors(_build_from_args, a)


def config_from_args(a: argparse.Namespace) -> EngineConfig:
    """The EngineConfig of parsed CLI arguments."""
    return EngineConfig(
        a.precision, a.min_batch, a.opt_batch, a.max_batch, a.workspace_gib, not a.no_fp16_fallback,
        a.strongly_typed, a.timing_cache, a.dla_core, a.calib_images, a.calib_batches, a.calib_cache, a.cuda,
        a.allow_invalid_qdq,
    )  # fmt: skip


def _build_from_args(a: argparse.Namespace) -> None:
    print(engine_from_onnx(a.onnx, config_from_args(a), a.out))


if __name__ == "__main__":
    sys.exit(main())
