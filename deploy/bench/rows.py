"""The four rows of ``deploy.bench``: FP32, FP16, INT8 PTQ and INT8 QAT, from the files ``make qat`` writes,
and the engine (or, with ONNX Runtime standing in, the ONNX) each one runs.

Example:
    >>> rows = plan_rows(Path("runs/qat/qat"))
    >>> prepare(rows, tensorrt_backend(), Path("results/engines"), max_batch=8)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from base.errors import ToolchainError
from deploy.bench.backends import EngineBackend
from deploy.engine.config import EngineConfig
from deploy.engine.precision import fp16_onnx_path

logger = logging.getLogger(__name__)
FP16_HINT = ("python -c \"from toolchain.jobs.fp16_onnx import fp16_onnx_from_onnx as f; f('{fp32}')\" "
             "(make qat writes it)")  # fmt: skip


@dataclass
class EngineRow:
    """One engine of the benchmark and what was measured on it (``status``: ``ok`` or ``failed: ...``)."""

    name: str
    onnx: str
    precision: str
    model: str = ""  # what runs: the engine, or the ONNX itself with ONNX Runtime standing in
    batch: int = 1  # the profile's max batch (1 for a static-batch ONNX)
    status: str = "pending"
    build_s: float | None = None
    reused: bool = False
    latency: dict = field(default_factory=dict)  # "batch1", "batchN": p50, p99, runs, batch, images_per_s
    pipeline: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    accuracy: dict = field(default_factory=dict)
    layers: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.status.startswith("failed")


def run_files(run: Path) -> dict[str, Path]:
    """Row name -> its ONNX in a ``make qat`` run folder.

    Raises:
        ToolchainError: The folder or any of the four files is missing (one line: which, and how to get them).
    """
    fp32 = run / "fp32.onnx"
    files = {"FP32": fp32, "FP16": fp16_onnx_path(fp32), "INT8 PTQ": run / "ptq.int8.onnx",
             "INT8 QAT": run / "qat.int8.onnx"}  # fmt: skip
    if not run.is_dir():
        raise ToolchainError(f"--run {run}: no such folder; expected a 'make qat' run (runs/qat/NAME)")
    missing = [p.name for p in files.values() if not p.is_file()]
    if missing:
        half = files["FP16"].name
        hint = f"; write {half} with {FP16_HINT.format(fp32=fp32)}" if missing == [half] else ""
        raise ToolchainError(f"--run {run}: {', '.join(missing)} not found; expected the files 'make qat' writes "
                             f"(fp32.onnx, {half}, ptq.int8.onnx, qat.int8.onnx){hint}")  # fmt: skip
    return files


def plan_rows(run: Path) -> list[EngineRow]:
    """The four rows of a run folder (``run_files``), in report order."""
    precision = {"FP32": "fp32", "FP16": "fp16", "INT8 PTQ": "int8", "INT8 QAT": "int8"}
    return [EngineRow(name, str(path), precision[name]) for name, path in run_files(run).items()]


def onnx_batch(onnx: str | Path, max_batch: int) -> int:
    """``max_batch`` for a dynamic-batch ONNX, else its static batch."""
    import onnx as onnx_lib

    try:
        dim = onnx_lib.load(str(onnx), load_external_data=False).graph.input[0].type.tensor_type.shape.dim[0]
    except Exception as exc:  # protobuf decode errors of a truncated or foreign file
        raise ToolchainError(f"{onnx}: not a readable ONNX model ({exc}); export it again") from exc
    return dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else max_batch


def prepare(rows: list[EngineRow], backend: EngineBackend, folder: Path, max_batch: int) -> None:
    """Build (or reuse) each row's engine under ``folder``; a row whose build fails says why and the others go on."""
    for i, r in enumerate(rows, 1):
        start = time.perf_counter()
        stem = Path(r.onnx).name[: -len(".onnx")]
        stem = stem if stem.endswith(r.precision) else f"{stem}.{r.precision}"  # ptq.int8 -> ptq.int8.engine
        target = folder / f"{stem}{backend.engine_suffix}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            r.batch = onnx_batch(r.onnx, max_batch)
            cfg = EngineConfig(precision=r.precision, min_batch=1, opt_batch=r.batch, max_batch=r.batch,
                               cuda=backend.cuda)  # fmt: skip
            r.reused = backend.standin is None and backend.reusable(target, Path(r.onnx), cfg)
            r.model = str(backend.build(Path(r.onnx), cfg, target))
        except ToolchainError as exc:
            r.status = f"failed: {exc}"
            logger.error("[%d/%d] %s: %s", i, len(rows), r.name, r.status)
            continue
        r.status, r.build_s = "ok", time.perf_counter() - start
        what = "reused" if r.reused else ("stand-in: the ONNX itself" if backend.standin else "built")
        logger.info("[%d/%d] %s: %s %s (%.1f s)", i, len(rows), r.name, what, r.model, r.build_s)
