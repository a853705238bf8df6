"""cuda-python, the real module, on the fake device: graphs called with the signature every version has,
the replaced graph freed, and the runner paths on 11.8, 12.x (the supported range) and 13.x.

The venv's cuda-python is 13.x (torch needs it); 12.x and 11.8 are installed beside it by ``make setup``
(``.venv/cuda-bindings/<version>``) and run in a subprocess, since two cannot share one process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.fakes.env import fake_gpu
from tests.fakes.paths import _engine

REPO = Path(__file__).resolve().parents[3]
OTHER_VERSIONS = {"12": "12.", "11.8": "11.8."}


def test_a_recapture_frees_the_graph_it_replaces(tmp_path):
    from deploy.runtime.tensorrt import TensorRTRunner

    with fake_gpu("10.3") as gpu:
        assert gpu.cuda_python, "cuda-python is a dev dependency of this project (installed with torch)"
        runner = TensorRTRunner(_engine(gpu, tmp_path), cuda="cuda-python", cuda_graph=True)
        for batch in (1, 2, 2, 1):
            x = np.full((batch, 3, 16, 16), batch, np.float32)
            assert np.allclose(runner.infer(x)[0], batch)
            assert len(gpu.driver.execs) == 1 and not gpu.driver.graphs  # one exec alive, graphs destroyed
        destroyed = [c for _, c, _ in gpu.driver.calls if c == "cudaGraphExecDestroy"]
        assert len(destroyed) == 2  # the batch-1 and the first batch-2 graphs, replaced
        runner.close()
        assert not any(gpu.driver.live().values()) and not gpu.driver.violations


def _check(directory: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{directory}{os.pathsep}{REPO}"}
    return subprocess.run([sys.executable, "-m", "tests.fakes.cuda_python_check", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip


@pytest.mark.parametrize("version", list(OTHER_VERSIONS))
def test_the_runner_on_other_cuda_python_versions(version):
    directory = REPO / ".venv" / "cuda-bindings" / version
    if not directory.is_dir():
        pytest.skip(f"{directory} absent: 'make setup' installs cuda-bindings {version} there")
    result = _check(directory, "--plant-12x-call")
    plain, planted = result.stdout.splitlines()[-2:]
    assert result.returncode == 0 and plain.startswith(f"cuda-python {OTHER_VERSIONS[version]}"), result.stdout
    if version == "11.8":  # cudaGraphInstantiate(graph, 0), 12.x's signature, is refused by the real 11.8 module
        assert "TypeError: cudaGraphInstantiate() takes exactly 3 positional arguments" in planted, planted
    else:
        assert planted.endswith("paths passed"), planted
