"""Fixtures of the distributed tests: a tiny QAT problem on disk and a launcher of ranks.

The ranks are started as ``torchrun`` starts them (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT`` on a free port) but without its agent, which saves one Python start
on a 2-core machine; the kill tests also run the real ``torchrun``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from toolchain.quantization.config import QuantConfig, QuantizerConfig
from toolchain.quantization.placement import quantize_model

WORKER = Path(__file__).with_name("ddp_worker.py")
REPO = Path(__file__).resolve().parents[3]
IMGSZ, IMAGES, BOXES_PER_IMAGE = 64, 4, (1, 3, 2, 0)  # uneven targets: the ranks' normalisers differ


def tiny_yolo(nc: int = 3) -> torch.nn.Module:
    """YOLOv8 at 1/8 of yolov8n's width (0.9 M parameters), seeded."""
    from ultralytics.nn.tasks import DetectionModel, yaml_model_load

    spec = yaml_model_load("yolov8n.yaml")
    spec["scales"] = {"n": [0.33, 0.125, 1024]}
    torch.manual_seed(0)
    model = DetectionModel(spec, nc=nc, verbose=False)
    model.names = {i: f"class{i}" for i in range(nc)}
    return model


def detection_batch(seed: int = 0) -> dict:
    """``IMAGES`` noise images with ``BOXES_PER_IMAGE`` random boxes each, as ultralytics' loader gives them.

    ultralytics clamps a batch's target-score sum at 1; these boxes give sums of 3.6 (images 0-1) and
    1.6 (images 2-3) for the seeded tiny model, so the ranks normalise differently, as the DDP test needs.
    """
    g = torch.Generator().manual_seed(seed)
    idx = torch.cat([torch.full((n,), i, dtype=torch.float32) for i, n in enumerate(BOXES_PER_IMAGE)])
    n = len(idx)
    sizes = 0.5 + 0.4 * torch.rand(n, 2, generator=g)  # large: the untrained model's boxes overlap them, so
    centers = sizes / 2 + (1 - sizes) * torch.rand(n, 2, generator=g)  # each rank's target sum is above 1 and differs
    return {"img": torch.rand(IMAGES, 3, IMGSZ, IMGSZ, generator=g), "batch_idx": idx,
            "cls": torch.randint(0, 3, (n, 1), generator=g).float(), "bboxes": torch.cat([centers, sizes], 1)}  # fmt: skip


@pytest.fixture(scope="module")
def qat_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``inputs.pt``: the tiny model with LSQ quantizers placed (not calibrated), the batches."""
    model = tiny_yolo()
    quantize_model(model, QuantConfig(weight=QuantizerConfig(axis=0, calibrator="max", learn_amax=True),
                                      input=QuantizerConfig(calibrator="max", learn_amax=True)))  # fmt: skip
    folder = tmp_path_factory.mktemp("ddp")
    calib = torch.rand(2, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(1))
    torch.save({"model": model, "calib": calib, "batch": detection_batch()}, folder / "inputs.pt")
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_env(rank: int, world: int, port: int, **extra: str) -> dict[str, str]:
    """The environment torchrun gives a worker on a single node."""
    return {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
            "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
            "YOLO_OFFLINE": "1", "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])), **extra}  # fmt: skip


@contextmanager
def started_ranks(mode: str, workdir: Path, world: int = 2, **extra: str) -> Iterator[list[subprocess.Popen]]:
    """Start ``world`` ranks of ``ddp_worker.py``; on leaving, kill any still running (no process is left behind)."""
    port = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), mode, str(workdir)],
            env=rank_env(r, world, port, **extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )  # fmt: skip
        for r in range(world)
    ]
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()


def wait_all(procs: list[subprocess.Popen], timeout: float) -> list[tuple[int, str, str]]:
    """Exit status, stdout and stderr of each process; fails the test when one outlives ``timeout``."""
    deadline, out = time.monotonic() + timeout, []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pytest.fail(f"a rank still ran after {timeout} s")
        out.append((p.returncode, stdout, stderr))
    return out


@pytest.fixture(scope="session")
def worker():
    """``ddp_worker.py`` as a module: its step functions compute the one-process reference."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("ddp_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def launch():
    """``started_ranks`` and ``wait_all`` for the tests (conftest helpers are not importable under importlib mode)."""
    return started_ranks, wait_all
