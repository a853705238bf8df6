"""``bench`` as the first argument of either image runs the engine benchmark (``deploy.bench``): through
``deploy.entrypoint`` in the Jetson image, through ``entrypoint.sh make bench ...`` in the GPU image."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.entrypoint import main

REPO = Path(__file__).resolve().parents[2]


def test_bench_first_runs_the_engine_benchmark(tmp_path, capsys):
    assert main(["bench", "--run", str(tmp_path / "none"), "--data", "d.yaml", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: --run {tmp_path / 'none'}: no such folder; expected a 'make qat' run (runs/qat/NAME)"


@pytest.mark.parametrize("command", [["make", "bench"], ["python3", "-m", "deploy.entrypoint", "bench"]])
def test_both_images_entry_commands_reach_the_benchmark(tmp_path, command):
    """The GPU image's ``make bench FLAGS`` must not hand the flags to make: the shell script rewrites it."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # python3: ours
    done = subprocess.run(["bash", str(REPO / "docker" / "entrypoint.sh"), *command, "--run", str(tmp_path / "none"),
                           "--data", "d.yaml", "--out", str(tmp_path / "o")], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().endswith("no such folder; expected a 'make qat' run (runs/qat/NAME)"), done.stderr
    assert "make:" not in done.stderr


def test_make_bench_without_flags_stays_make(tmp_path):
    """``docker run IMAGE bench`` (or with make variables) is still ``make bench``: the whole suite."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "make").write_text('#!/usr/bin/env bash\necho "make $*"\n')
    (fake / "make").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    for args in (["bench"], ["bench", "QAT_NAME=rs5"]):
        done = subprocess.run(["bash", str(REPO / "docker" / "entrypoint.sh"), "make", *args], env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0 and done.stdout == f"make {' '.join(args)}\n", done.stderr
