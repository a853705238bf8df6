"""``deploy.bench``: the engine benchmark of a ``make qat`` run, where TensorRT is (else ONNX Runtime stands in).

Rows FP32, FP16, INT8 PTQ and INT8 QAT, each built into an engine (reused when its sidecar has the ONNX's
SHA-256), then per row: latency and throughput at batch 1 and the profile's max batch, the ``deploy/infer.py``
pipeline on a video of val images, peak memory in a fresh process, mAP with its bootstrap interval and
paired differences against FP32, and the layer report. ``report.md``, ``report.json``, ``report.png``.

Example:
    >>> report = run_bench(BenchConfig(run="runs/qat/qat", data="data.yaml", out="results/engines"))
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from base.dataset import load_data_yaml, load_split
from base.errors import ToolchainError
from base.fileio import check_output_folder
from deploy.bench.backends import EngineBackend, engine_backend
from deploy.bench.measure import differences, row_accuracy, row_latency, row_layers, row_memory, row_pipeline, timed
from deploy.bench.pipeline import make_video
from deploy.bench.rows import EngineRow, plan_rows, prepare
from deploy.bootstrap import Resamples

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchConfig:
    """What ``deploy.bench`` measures, and where it writes.

    Attributes:
        run: A ``make qat`` run folder (fp32.onnx, fp32.fp16.onnx, ptq.int8.onnx, qat.int8.onnx).
        data: data.yaml whose val split scores every row and makes the pipeline's video.
        out: Folder of the report (engines under ``out/engines``, reused on the next run).
        max_batch: The engines' profile max batch (dynamic-batch ONNX), the throughput batch.
        runs: Timed batch-1 runs per row (a tenth of them at the max batch).
        warmup: Untimed runs before them.
        frames: Video frames through the pipeline.
        resamples: Bootstrap resamples of the mAP intervals.
        backend: ``auto`` (TensorRT where it is, else ONNX Runtime standing in), ``tensorrt``, ``onnxruntime``.
        cuda: CUDA library of the TensorRT runner: ``pycuda`` or ``cuda-python``.
    """

    run: str
    data: str
    out: str
    max_batch: int = 8
    runs: int = 100
    warmup: int = 10
    frames: int = 150
    resamples: int = 1000
    backend: str = "auto"
    cuda: str = "pycuda"

    def __post_init__(self) -> None:
        for name in ("max_batch", "runs", "frames"):
            if getattr(self, name) < 1:
                raise ToolchainError(f"bench: {name} must be at least 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ToolchainError(f"bench: warmup must be at least 0, got {self.warmup}")
        if self.resamples < 10:
            raise ToolchainError(f"bench: resamples must be at least 10, got {self.resamples}")
        if self.cuda not in ("pycuda", "cuda-python"):
            raise ToolchainError(f"bench: cuda must be pycuda or cuda-python, got '{self.cuda}'")


@dataclass
class BenchReport:
    """The rows and how they were run."""

    config: BenchConfig
    backend: str
    backend_label: str
    standin: str | None
    rows: list[EngineRow] = field(default_factory=list)
    minutes: float = 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "config": asdict(self.config)}


def _measure_row(i: int, r: EngineRow, cfg: BenchConfig, backend: EngineBackend, split, boot, videos: Path) -> None:
    label = f"[{i}/4] {r.name}"
    with backend.open(Path(r.model)) as runner:
        timed(f"{label}: latency (batch 1, batch {r.batch})", row_latency, runner, r, cfg.runs, cfg.warmup)
        timed(f"{label}: mAP on {len(split.images)} val images", row_accuracy, runner, r, split, boot)
        size = runner.input_shape[2]
        video = videos / f"val{size}.avi"
        if not video.exists():
            make_video(cfg.data, video, cfg.frames, size)
        timed(f"{label}: deploy/infer.py pipeline, {cfg.frames} frames", row_pipeline, runner, r, video)
    timed(f"{label}: memory (fresh process)", row_memory, r, backend)
    row_layers(r, backend)


def run_bench(cfg: BenchConfig, backend: EngineBackend | None = None) -> BenchReport:
    """Every row, built then measured in turn; a row that fails says why and the others go on."""
    start = time.perf_counter()
    rows = plan_rows(Path(cfg.run))
    split = load_split(load_data_yaml(cfg.data), "val")
    out = Path(cfg.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ToolchainError(f"--out {out}: cannot create it ({exc.strerror}); choose a writable folder") from exc
    check_output_folder(out, "--out")
    backend = backend or engine_backend(cfg.backend, cfg.cuda)
    logger.info("Engine benchmark of %s on %s: %s%s", cfg.run, backend.label, cfg.data,
                f" ({backend.standin})" if backend.standin else "")  # fmt: skip
    prepare(rows, backend, out / "engines", cfg.max_batch)
    boot = Resamples(len(split.images), resamples=cfg.resamples)
    with tempfile.TemporaryDirectory() as tmp:
        for i, r in enumerate(rows, 1):
            if not r.ok:
                continue
            try:
                _measure_row(i, r, cfg, backend, split, boot, Path(tmp))
            except (ToolchainError, OSError, RuntimeError) as exc:
                r.status = f"failed: {exc}"
                logger.error("[%d/4] %s: %s", i, r.name, r.status)
    differences(rows, boot)
    return BenchReport(cfg, backend.name, backend.label, backend.standin, rows, (time.perf_counter() - start) / 60)
