"""gpu-check's config refuses nonsense with the key named; the skip line says what is missing."""

from __future__ import annotations

import importlib.util

import pytest

from base.errors import ToolchainError
from benchmarks.gpu_config import GpuCheckConfig
from deploy.bench.backends import missing_requirement


def test_bad_config_is_named():
    with pytest.raises(ToolchainError, match="gpu-check: runs must be at least 1, got 0"):
        GpuCheckConfig(runs=0)
    with pytest.raises(ToolchainError, match="cuda must be pycuda or cuda-python"):
        GpuCheckConfig(cuda="cupy")


def test_missing_requirement_names_tensorrt_then_the_cuda_library(monkeypatch):
    present: set[str] = set()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name in present else None)
    assert missing_requirement().startswith("TensorRT is not installed")
    present.add("tensorrt")
    assert missing_requirement().startswith("no CUDA library for Python")
    present.add("pycuda")
    assert missing_requirement() is None
