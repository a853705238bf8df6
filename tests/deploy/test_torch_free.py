"""The deploy half and the base it stands on never import torch, ultralytics or toolchain, and runs in a venv with only its own requirements."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

import base
import deploy

REPO = Path(__file__).resolve().parents[2]


def _modules() -> list[str]:
    return sorted(m.name for pkg in (base, deploy) for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."))


def test_every_deploy_module_imports_with_torch_blocked():
    blocked = "; ".join(f"sys.modules[{m!r}] = None" for m in ("torch", "ultralytics", "toolchain", "torchvision"))
    code = f"import sys, importlib; {blocked}\n" + "\n".join(f"importlib.import_module({m!r})" for m in _modules())
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(_modules()) >= 12 and any(m.startswith("base.") for m in _modules())


def test_the_base_imports_neither_half():
    blocked = "; ".join(f"sys.modules[{m!r}] = None" for m in ("torch", "toolchain", "deploy"))
    names = [m for m in _modules() if m.startswith("base.")]
    code = f"import sys, importlib; {blocked}\n" + "\n".join(f"importlib.import_module({m!r})" for m in names)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(names) >= 5


def test_every_module_imports_on_a_cpu_machine():
    import importlib

    import toolchain

    names = _modules() + sorted(m.name for m in pkgutil.walk_packages(toolchain.__path__, "toolchain."))
    for name in names:
        importlib.import_module(name)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("requirements", "extra"),
    [("requirements-deploy.txt", []), ("docker/requirements-jetson.txt", ["opencv-python-headless"])],
)  # JetPack's python3-opencv stands in as opencv-python-headless here
def test_deploy_runs_in_a_venv_with_only_its_requirements(tmp_path, tiny_checkpoint, requirements, extra):
    """pip-installs the requirements into a fresh venv (needs the package index) and runs infer.py."""
    import cv2
    import numpy as np

    from toolchain.export.onnx import ExportConfig
    from toolchain.jobs.onnx_files import export_onnx
    from toolchain.models.yolo import load_model

    model = export_onnx(load_model(tiny_checkpoint), tmp_path / "m.onnx", ExportConfig(imgsz=64))
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((48, 64, 3), np.uint8))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(REPO / requirements), *extra],
                         capture_output=True, text=True, timeout=900)  # fmt: skip
    assert pip.returncode == 0, pip.stderr[-2000:]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    check = subprocess.run([str(python), "-c", "import importlib.util as u; print(u.find_spec('torch'), u.find_spec('ultralytics'))"],
                           capture_output=True, text=True, env=env)  # fmt: skip
    assert check.stdout.strip() == "None None"
    done = subprocess.run([str(python), str(REPO / "deploy" / "infer.py"), "--model", str(model), "--source",
                           str(tmp_path / "a.jpg"), "--backend", "onnxruntime", "--json", str(tmp_path / "d.jsonl")],
                          capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "d.jsonl").read_text().count("\n") == 1
